"""Pretraining throughput on CPU: samples per second of one training step of the bundle's pretext model, for each
speed lever, as a ratio against today's setting measured in the same run.

The model is the pretraining bundle's (UNet 16-32-64-128, 2 residual units, all four tasks with the bundle's task
arguments); the batches are real pretext samples (64³ crops at 2 mm of the brain-MRI pool's real scans, or
generated phantoms without ``../shared/data``), made once so that only the step is timed. Levers:

- ``threads``: ``torch.set_num_threads`` at the number of physical cores (the baseline keeps torch's default);
- ``channels_last_3d``: the network and its inputs in ``torch.channels_last_3d`` memory format;
- ``bf16 autocast``: the forward pass under ``torch.autocast("cpu", torch.bfloat16)``, losses in float32 (the
  bundle's ``bf16_autocast``, ``monai_ssl.inferers.AutocastInferer``);
- ``channels_last_3d + bf16``: both, the bundle's default on CPUs with bf16 instructions;
- ``torch.compile``: the network's convolution blocks compiled (inductor); compile time is reported apart.

The data side (several crops per loaded volume) is measured by ``benchmarks/pretext_loader.py``.

Run: ``python benchmarks/pretraining_step.py [--steps 5] [--batch 8]``
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monai.bundle import ConfigParser  # noqa: E402
from monai.data import list_data_collate  # noqa: E402

from monai_ssl.data import write_phantom_dataset  # noqa: E402
from monai_ssl.inferers import AutocastInferer  # noqa: E402

POOL = REPO.parent / "shared" / "data"


def batches(count: int, batch: int, scratch: str) -> tuple[object, list[dict], str]:
    """The bundle's model and ``count`` collated batches of ``batch`` pretext samples."""
    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / "pretext_pretraining" / "configs" / "train.json"))
    scans = sorted(glob.glob(str(POOL / "brats_deepmedic" / "train" / "*" / "*_subtrMeanDivStd.nii.gz")))
    if scans:
        files, source = [{"image": p} for p in scans], f"{len(scans)} real BraTS MRI channels"
    else:
        entries = write_phantom_dataset(scratch, 4, (96, 96, 96), spacing=2.0)
        files, source = [{"image": e["image"]} for e in entries], "4 generated phantoms (no shared data)"
    parser["train#files"] = files
    parser["train#dataset#cache"] = "none"
    parser["output_dir"] = scratch
    model = parser.get_parsed_content("model")
    dataset = parser.get_parsed_content("train#dataset")
    samples = [s for i in range(len(dataset)) for s in dataset[i]]
    while len(samples) < count * batch:
        samples += samples
    collated = [list_data_collate(samples[i * batch:(i + 1) * batch]) for i in range(count)]
    return model, collated, source


def time_steps(model, data: list[dict], autocast: bool = False, channels_last: bool = False,
               network=None) -> float:
    """Samples per second over ``data`` (the first batch warms up and is not timed)."""
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    if channels_last:
        model.to(memory_format=torch.channels_last_3d)
        data = [{k: v.contiguous(memory_format=torch.channels_last_3d) if torch.is_tensor(v) and v.ndim == 5 else v
                 for k, v in b.items()} for b in data]
    call = network or model
    inferer = AutocastInferer(device_type="cpu", dtype="bfloat16", enabled=autocast)
    count = 0
    for index, batch in enumerate(data):
        if index == 1:
            start = time.perf_counter()
        optimizer.zero_grad()
        loss = model.compute_loss(inferer(batch, call), batch)
        loss.backward()
        optimizer.step()
        if index >= 1:
            count += len(batch["rotation_label"])
    seconds = time.perf_counter() - start
    if channels_last:
        model.to(memory_format=torch.contiguous_format)
    return count / seconds


def compile_blocks(network: torch.nn.Module) -> int:
    """Compile the outermost convolution blocks in place (``nn.Module.compile``): the tasks call the encoder's
    blocks one by one through the adapter, so compiling the network's own ``forward`` would miss them."""
    from monai.networks.blocks import Convolution, ResidualUnit

    compiled: list[str] = []
    for name, module in network.named_modules():
        if isinstance(module, (Convolution, ResidualUnit)) and not any(name.startswith(c + ".") for c in compiled):
            module.compile(dynamic=False)  # static shapes: one graph per input size (cubes, patches, crops)
            compiled.append(name)
    return len(compiled)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per lever (after one warm-up step)")
    parser.add_argument("--batch", type=int, default=8, help="samples per step (the bundle's 2 x 4 crops)")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        model, data, source = batches(args.steps + 1, args.batch, scratch)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    default_threads = torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"data: {source}; batch {args.batch}; {args.steps} timed steps per lever; torch {torch.__version__}, "
          f"default threads {default_threads}, {cores} cores available")

    results = {}

    def measure(name: str, **kwargs) -> None:
        model.load_state_dict(initial)
        results[name] = time_steps(model, data, **kwargs)
        print(f"{name:<24s} {results[name]:6.2f} samples/s  {results[name] / results['baseline']:5.2f}x baseline",
              flush=True)

    results["baseline"] = 1.0
    measure("baseline")
    torch.set_num_threads(cores)
    measure("threads")
    measure("channels_last_3d", channels_last=True)
    measure("bf16 autocast", autocast=True)
    measure("channels_last_3d + bf16", channels_last=True, autocast=True)
    start = time.perf_counter()
    compiled_blocks = compile_blocks(model.network)
    try:
        model.load_state_dict(initial)
        warm = time_steps(model, data[:2])
        compile_seconds = time.perf_counter() - start
        measure("torch.compile")
        print(f"torch.compile: {compiled_blocks} blocks, {compile_seconds:.0f} s of compilation and warm-up "
              f"({warm:.2f} samples/s meanwhile)")
    except Exception as error:  # noqa: BLE001  the lever is reported as unavailable, with its reason
        print(f"torch.compile: unavailable here ({type(error).__name__}: {str(error).splitlines()[0][:120]})")


if __name__ == "__main__":
    main()
