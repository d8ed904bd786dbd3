"""Speed of the pretext transforms on a 1x128x128x128 float32 volume, one thread.

Each transform's median time is divided by the median time of ``torch.clone`` of the same volume, measured in
the same run, so the ratios compare across machines. The time includes making every output tensor contiguous
(free when it already is): a transform that returns a strided view (``torch.rot90`` does) only defers its copy to
collation, which pays it at a strided copy's speed. MONAI's ``RandCoarseShuffle`` is measured the same way for
reference. Goals: 3x or less, 6x for colorization remap; restoration, the contrastive views and masked volume miss
it (see ``GOALS`` for why).

Run: ``python benchmarks/transforms.py [--repeats N]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from monai.transforms import RandCoarseShuffle
from monai.transforms.utils import convert_to_contiguous

from monai_ssl.transforms import (
    RandContrastiveViews,
    RandCPCPatches,
    RandIntensityColorization,
    RandRelativePatchPosition,
    RandRestorationDegradation,
    RandSliceRotation,
    RandVolumeJigsaw,
    RandVolumeMasking,
)

# Restoration and the contrastive views miss 3x, by MONAI's transforms they are built on (each part alone, x clone,
# 2026-11-23, 2 cores): out-painting 15.3x (RandCoarseDropout fills everything outside its boxes with float64
# numpy noise), remap 5.9x (look-up table then; the polynomial now), local shuffling 3.6x; two 96^3 views: Gaussian
# blur 135x (GaussianSmooth, one thread), Gaussian noise 44x (float64 numpy normal), intensity 9.8x, crop and flips
# 7.3x. Kept as MONAI's. Rotation misses 3x by its transposed copy (torch.rot90 made contiguous), 5-20x a plain copy
# at 128^3 on 2026-11-23; copying in cache-sized tiles gained at most 1.6x in one plane (README, Speed). Masked
# volume misses it by building its mask of kept voxels (a float copy of the volume's size) before the product:
# 6.0-8.9x on 2026-11-27 with two fine-tuning runs on the 2 cores (masked_fill was 37x, numpy repeats 7-11x).
GOALS = {"jigsaw": 3.0, "rotation": 3.0, "relative_position": 3.0, "colorization_remap": 6.0, "cpc_patches": 3.0,
         "restoration": 3.0, "contrastive_views": 3.0, "masked_volume": 3.0}


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    volume = torch.rand(1, 128, 128, 128, generator=torch.Generator().manual_seed(0))
    candidates = {
        "jigsaw": RandVolumeJigsaw(grid=(2, 2, 2), gap=4, jitter=2),
        "rotation": RandSliceRotation(planes=((0, 1), (0, 2), (1, 2))),
        "relative_position": RandRelativePatchPosition(patch_size=(32, 32, 32)),
        "colorization_remap": RandIntensityColorization(mode="remap"),
        "restoration": RandRestorationDegradation(),
        "contrastive_views": RandContrastiveViews(view_size=96),
        "cpc_patches": RandCPCPatches(patch_size=32, grid=4),
        "masked_volume": RandVolumeMasking(mask_ratio=0.6, cube_size=8),
        "monai_RandCoarseShuffle (reference)": RandCoarseShuffle(holes=10, spatial_size=8, prob=1.0),
    }
    baseline = median_seconds(lambda: torch.clone(volume), args.repeats)
    print(f"torch.clone baseline: {baseline * 1e3:.2f} ms (median of {args.repeats}, 1 thread)")
    print(f"{'transform':40s} {'median ms':>10s} {'x clone':>8s} {'goal':>6s}")
    for name, transform in candidates.items():
        transform.set_random_state(0)
        seconds = median_seconds(lambda t=transform: convert_to_contiguous(t(volume)), args.repeats)
        goal = GOALS.get(name)
        verdict = "" if goal is None else ("ok" if seconds / baseline <= goal else "MISSED")
        goal_text = f"{goal:.0f}x" if goal else "-"
        print(f"{name:40s} {seconds * 1e3:10.2f} {seconds / baseline:8.2f} {goal_text:>6s} {verdict}")


if __name__ == "__main__":
    main()
