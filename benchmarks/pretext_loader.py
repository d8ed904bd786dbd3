"""Pretraining data pipeline throughput: samples per second of the bundle's pipeline against a naive MONAI one.

- naive: a plain ``Dataset``, one load (and resampling, scaling, cropping) per pretext sample;
- monai-ssl: ``monai_ssl.bundle.pretext_dataset``, deterministic preprocessing cached once per volume, then
  ``samples_per_volume`` random crops per loaded volume, each turned into every task's sample.

Both run the same four tasks through a ``DataLoader`` with 2 workers, in the same run. Real BraTS volumes from
``../shared/data`` are used when present, else generated phantoms (the output says which). Filling the cache
(one preprocessing pass over the volumes) is timed separately; the speed-up is reported in steady state and
with the fill time charged to the measured samples. Goal: >= 4x.

Run: ``python benchmarks/pretext_loader.py [--samples 64] [--workers 2]``
"""

from __future__ import annotations

import argparse
import glob
import os
import tempfile
import time

import torch
from monai.data import DataLoader, Dataset
from monai.networks.nets import UNet
from monai.transforms import Compose, RandSpatialCropd

from monai_ssl import PretextModel
from monai_ssl.bundle import preprocessing, pretext_dataset
from monai_ssl.data import write_phantom_dataset

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "brats_deepmedic")
TASKS = [
    {"name": "jigsaw", "args": {"grid": [2, 2, 2], "num_permutations": 100, "gap": 4, "jitter": 2}},
    {"name": "rotation"},
    {"name": "colorization"},
    {"name": "relative_position", "args": {"patch_size": [28, 28, 28], "gap": 2, "jitter": 2}},  # the bundle default
]
ROI = (64, 64, 64)
SPACING = (1.5, 1.5, 1.5)


def volumes(scratch: str) -> tuple[list[dict], str]:
    brats = sorted(glob.glob(os.path.join(SHARED, "*", "*", "Flair_subtrMeanDivStd.nii.gz")))
    if brats:
        return [{"image": p} for p in brats], f"{len(brats)} real BraTS FLAIR volumes (240x240x155, 1 mm)"
    entries = write_phantom_dataset(scratch, num_subjects=4, shape=(160, 160, 128), spacing=1.0)
    return [{"image": e["image"]} for e in entries], "4 generated phantoms (160x160x128, 1 mm; no shared data)"


def samples_per_second(dataset, batch_size: int, workers: int, samples: int) -> float:
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0)
    seen, start = 0, time.perf_counter()
    while seen < samples:
        for batch in loader:
            seen += batch["rotation_label"].shape[0]
            if seen >= samples:
                break
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=64, help="pretext samples drawn per measurement")
    parser.add_argument("--samples-per-volume", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = PretextModel(UNet(3, 1, 4, channels=(16, 32, 64, 128), strides=(2, 2, 2)), TASKS)
    with tempfile.TemporaryDirectory() as scratch:
        files, source = volumes(scratch)
        naive = Dataset(files, Compose([*preprocessing("MR", SPACING, ROI, track_meta=False),
                                        RandSpatialCropd("image", roi_size=ROI, random_size=False),
                                        model.transform()]))
        start = time.perf_counter()
        cached = pretext_dataset(files, model, "MR", SPACING, ROI, samples_per_volume=args.samples_per_volume,
                                 num_workers=args.workers)
        fill_seconds = time.perf_counter() - start
        print(f"data: {source}; tasks: all four; crops {ROI} at {SPACING} mm; {args.workers} loader workers")
        naive_rate = samples_per_second(naive, args.samples_per_volume, args.workers, args.samples)
        cached_rate = samples_per_second(cached, 1, args.workers, args.samples)
        print(f"naive MONAI pipeline (one load per sample): {naive_rate:7.2f} samples/s")
        with_fill = args.samples / (args.samples / cached_rate + fill_seconds)
        print(f"monai-ssl pipeline (cached, {args.samples_per_volume} samples per load): {cached_rate:7.2f} samples/s "
              f"after a {fill_seconds:.1f} s cache fill; {with_fill:.2f} samples/s with the fill charged to "
              f"{args.samples} samples")
        print(f"speed-up: {cached_rate / naive_rate:.1f}x in steady state, {with_fill / naive_rate:.1f}x including "
              "the cache fill (goal >= 4x)")


if __name__ == "__main__":
    main()
