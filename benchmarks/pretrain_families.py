"""Pretrain the pretext families on one pool at one budget, all at once on one machine.

The families of the label-efficiency issue, each a run of the pretraining bundle with the pool's sample config
(``sample_configs/brain_mri_real_pool_pretraining.json``: 64³ crops at 2 mm, batch 4 volumes x 4 crops, held-out
scores every 500 iterations) in which only the tasks and their arguments change, so that the arms differ in the
pretext task alone. Every run is its own process; a GPU holds them all at once (a 139 GB H200 holds eight), on a
CPU give ``--parallel 1``. A run still going at ``--deadline-s`` is stopped and reported as such, never passed off
as finished: running the same command again resumes it from its last periodic checkpoint (``resume`` is on).

Run: ``python benchmarks/pretrain_families.py --families restoration contrastive cpc --output-root outputs/families``

Each family's weights: ``OUTPUT_ROOT/NAME/models/model.pt`` with ``pretext_checkpoint.pt`` beside it (the
label-efficiency benchmark's ``--pretrained NAME=.../model.pt`` reads the tasks there, to transfer the whole
network after the tasks that train the decoder); ``--export-dir`` also writes a copy for shipping or fetching
(:func:`monai_ssl.checkpoint.export_weights`, as ``monai-ssl export --continuation``: ``model.pt`` and the float16
``pretext_checkpoint.pt`` without optimizer state); ``OUTPUT_ROOT/summary.json`` says what ran, for how long, and
how far.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monai_ssl.checkpoint import (  # noqa: E402
    PRETRAINING_STATE_FILENAME,
    checkpoint_iteration,
    export_weights,
    resume_checkpoint,
)
from monai_ssl.tasks import list_tasks  # noqa: E402

BUNDLE_TRAIN = "bundles/pretext_pretraining/configs/train.json"
DEFAULT_CONFIG = "sample_configs/brain_mri_real_pool_pretraining.json"
# name -> tasks and their arguments (None: the bundle's own); the contrastive options are Chaitanya et al.'s
FAMILIES = {
    "mix": {"tasks": ["jigsaw", "rotation", "colorization", "relative_position"], "task_args": None},
    "restoration": {"tasks": ["restoration"], "task_args": None},
    "contrastive": {"tasks": ["contrastive"], "task_args": None},
    "contrastive_partitions": {"tasks": ["contrastive"], "task_args": {"contrastive": {"partitions": 4}}},
    "contrastive_local": {"tasks": ["contrastive"], "task_args": {"contrastive": {"local_weight": 1.0}}},
    "exemplar": {"tasks": ["exemplar"], "task_args": None},
    "cpc": {"tasks": ["cpc"], "task_args": None},
    "masked_volume": {"tasks": ["masked_volume"], "task_args": None},
}


def family_command(name: str, output_dir: str, config: str, max_epochs: int, datalist: str | None = None,
                   overrides: dict[str, str] | None = None) -> list[str]:
    """The ``monai.bundle run`` command of one family: the bundle, the pool's sample config, the family's tasks."""
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; choose from {sorted(FAMILIES)}.")
    family = FAMILIES[name]
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", repr([BUNDLE_TRAIN, config]),
               "--tasks", repr(family["tasks"]), "--max_epochs", str(max_epochs), "--output_dir", output_dir]
    if family["task_args"] is not None:
        command += ["--task_args", repr(family["task_args"])]
    if datalist is not None:
        command += ["--datalist", datalist]
    for key, value in (overrides or {}).items():
        command += [f"--{key}", value]
    return command


def _parse_overrides(pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set takes KEY=VALUE (a bundle config id and its value), got {pair!r}.")
        overrides[key] = value
    return overrides


def _iteration(models_dir: Path) -> int | None:
    """The trainer iteration of a run's newest checkpoint (``None`` without one)."""
    latest = resume_checkpoint(str(models_dir))
    return None if latest is None else checkpoint_iteration(latest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", required=True, choices=sorted(FAMILIES))
    parser.add_argument("--output-root", required=True, help="a folder of one run folder per family")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="the pool's sample config (default: %(default)s)")
    parser.add_argument("--datalist", help="the pool datalist, instead of the sample config's")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the config's epoch_length iterations")
    parser.add_argument("--parallel", type=int, default=0, help="runs at once (0: all)")
    parser.add_argument("--threads", type=int, default=1, help="OMP threads of each run")
    parser.add_argument("--deadline-s", type=float, default=0, help="stop the runs still going after this many "
                        "seconds (0: none)")
    parser.add_argument("--export-dir", help="also export each finished family here (model.pt, pretext_checkpoint.pt)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more bundle overrides, e.g. "
                        "bf16_autocast=true")
    args = parser.parse_args()
    for name in args.families:
        unknown = [t for t in FAMILIES[name]["tasks"] if t not in list_tasks()]
        if unknown:
            raise SystemExit(f"family {name}: tasks {unknown} are not registered ({list_tasks()}).")
    overrides = _parse_overrides(args.set)
    root = Path(args.output_root)
    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    parallel = args.parallel or len(args.families)
    start = time.monotonic()
    pending, running, finished = list(args.families), {}, {}
    while pending or running:
        while pending and len(running) < parallel:
            name = pending.pop(0)
            command = family_command(name, str(root / name), args.config, args.epochs, args.datalist, overrides)
            log = open(root / f"{name}.log", "a")
            print(f"{name}: {' '.join(command)}", flush=True)
            running[name] = (subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True), log, time.monotonic(), command)
        time.sleep(5)
        overdue = args.deadline_s and time.monotonic() - start > args.deadline_s
        for name, (process, log, began, command) in list(running.items()):
            if process.poll() is None and overdue:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                status = "stopped at the deadline"
            elif process.poll() is None:
                continue
            else:
                status = "finished" if process.returncode == 0 else f"failed (exit {process.returncode})"
            log.close()
            finished[name] = {"status": status, "wall_s": round(time.monotonic() - began), "command": command}
            print(f"{name}: {status} after {finished[name]['wall_s']} s (log {root / (name + '.log')})", flush=True)
            del running[name]
        if overdue:
            for name in pending:
                finished[name] = {"status": "not started before the deadline"}
            pending = []
    for name, record in finished.items():
        models = root / name / "models"
        record["iteration"] = _iteration(models) if models.is_dir() else None
        scores = root / name / "pretext_scores.json"
        record["pretext_scores"] = json.loads(scores.read_text()) if scores.is_file() else None
        if args.export_dir and record["status"] == "finished":
            export = Path(args.export_dir) / name
            for kind, path in export_weights(str(models / PRETRAINING_STATE_FILENAME), str(export / "model.pt"),
                                             str(export / PRETRAINING_STATE_FILENAME)).items():
                print(f"{name}: exported {kind} {path}", flush=True)
    (root / "summary.json").write_text(json.dumps(finished, indent=1))
    failed = [n for n, r in finished.items() if r["status"] != "finished"]
    print(f"{len(finished) - len(failed)} of {len(finished)} families finished"
          + (f"; not finished: {', '.join(failed)} (logs in {root})" if failed else ""), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
