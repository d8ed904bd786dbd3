"""Exit reliability of a two-process ``torchrun`` fine-tuning run on CPU (gloo): how often a run that finished and
wrote every output still exits with signal 6 ("terminate called without an active exception"), with the multi-GPU
configs' ``finalize`` as shipped (``monai_ssl.bundle.end_distributed()``) against the barrier and
``destroy_process_group`` that it replaced, alternately in the same run.

The run is the one that showed it (``tests/test_bundle_multi_gpu.py``'s frozen-encoder test): the segmentation
bundle on its demo phantoms, a tiny UNet, 3 epochs with the encoder frozen for the first, validation at the end.
Each repetition runs both arms, in turns, so that the machine's load falls on both alike.

Run: ``python benchmarks/ddp_exit.py [--repetitions 30]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import SEGMENTATION, TINY_SEGMENTATION, cli_arguments, outputs  # noqa: E402

# the overrides of test_a_frozen_encoder_warm_up_under_ddp
SETTINGS = {**TINY_SEGMENTATION, "freeze_encoder_epochs": 1, "max_epochs": 3, "val_interval": 3}
ARMS = {"end_distributed (shipped)": None,
        "barrier + destroy_process_group (before)": ["$dist.is_initialized() and dist.barrier()",
                                                     "$dist.is_initialized() and dist.destroy_process_group()"]}


def run_once(finalize: list[str] | None) -> tuple[bool, bool]:
    """One torchrun of 2 processes: (outputs written, aborted by signal 6)."""
    with tempfile.TemporaryDirectory() as out:
        settings = {**SETTINGS, **outputs(out)}
        if finalize is not None:
            settings["finalize"] = finalize
        files = json.dumps([str(SEGMENTATION / "train.json"), str(SEGMENTATION / "multi_gpu_train.json")])
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
                   "-m", "monai.bundle", "run", "--config_file", files, *cli_arguments(settings)]
        result = subprocess.run(command, cwd=out, capture_output=True, text=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
        written = (Path(out) / "models" / "model.pt").is_file()
        aborted = "terminate called without an active exception" in result.stderr + result.stdout
        if result.returncode and not aborted:
            raise SystemExit(f"a run failed for another reason (exit {result.returncode}):\n{result.stderr[-3000:]}")
        return written, aborted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=30, help="runs of each arm")
    args = parser.parse_args()
    aborts = dict.fromkeys(ARMS, 0)
    for repetition in range(args.repetitions):
        for arm, finalize in ARMS.items():
            written, aborted = run_once(finalize)
            if not written:
                raise SystemExit(f"{arm}: the run wrote no models/model.pt")
            aborts[arm] += aborted
        print(f"after {repetition + 1} repetitions, aborts: {aborts}", flush=True)
    for arm, count in aborts.items():
        print(f"{arm}: {count} of {args.repetitions} runs aborted at exit after writing every output")


if __name__ == "__main__":
    main()
