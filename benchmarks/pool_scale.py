"""The pretraining pool as it grows, measured in one run: for generated pools of 100 to 10,000 volumes, the memory
cache (``CacheDataset``) against the disk cache (``PersistentDataset``), each in a fresh process:

- the time to fill the cache (every volume loaded and preprocessed once: the first epoch's extra cost);
- pretext samples/s afterwards (random volumes; the bundle's dataset with rotation and colorization, in the main
  process);
- the process's peak resident memory;
- what ``cache: auto`` chooses for that pool on this machine, and why (its log line).

Run: ``python benchmarks/pool_scale.py [--sizes 100 1000 10000] [--shape 48] [--samples 200]``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

ROI = (32, 32, 32)


def write_pool(folder: str, count: int, shape: int) -> list[dict]:
    """``count`` int16 volumes ``shape``³ (a bright ball with a gradient and noise), as NIfTI."""
    import nibabel as nib
    import numpy as np

    rng = np.random.default_rng(0)
    grid = np.indices((shape,) * 3).astype(np.float32)
    ball = (((grid - shape / 2) ** 2).sum(0) < (shape / 3) ** 2) * 800.0 + grid[0] * 4
    os.makedirs(folder, exist_ok=True)
    files = []
    for k in range(count):
        path = os.path.join(folder, f"vol{k:05d}.nii.gz")
        if not os.path.exists(path):
            volume = (ball + rng.normal(0, 20, ball.shape)).astype(np.int16)
            nib.save(nib.Nifti1Image(volume, np.eye(4)), path)
        files.append({"image": path})
    return files


def measure(files_json: str, cache: str, cache_dir: str, samples: int) -> dict:
    """In this process: fill the cache, then time ``samples`` random pretext samples."""
    import torch
    from monai.networks.nets import UNet

    from monai_ssl import PretextModel
    from monai_ssl.bundle import pretext_dataset

    torch.set_num_threads(1)
    with open(files_json) as f:
        files = json.load(f)
    model = PretextModel(UNet(3, 1, 1, (8, 16, 32), (2, 2), num_res_units=1), ["rotation", "colorization"])
    start = time.perf_counter()
    dataset = pretext_dataset(files, model, "MR", None, ROI, samples_per_volume=1, cache=cache, cache_dir=cache_dir)
    if cache == "disk":  # the first epoch writes every volume once
        for index in range(len(dataset)):
            dataset[index]
    fill = time.perf_counter() - start
    order = torch.randint(len(dataset), (samples,), generator=torch.Generator().manual_seed(0)).tolist()
    start = time.perf_counter()
    for index in order:
        dataset[index]
    rate = samples / (time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"fill_s": fill, "samples_per_s": rate, "peak_rss": peak}


def auto_choice(files: list[dict]) -> str:
    from monai_ssl.bundle.cache import choose_cache

    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("monai_ssl.bundle.cache")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        choose_cache(files, None)
    finally:
        logger.removeHandler(handler)
    return records[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--shape", type=int, default=48, help="edge of the generated volumes, in voxels")
    parser.add_argument("--samples", type=int, default=200, help="pretext samples timed after the cache fill")
    parser.add_argument("--scratch", help="folder for the pool and the disk caches (default: a temporary folder)")
    parser.add_argument("--measure", nargs=3, metavar=("FILES", "CACHE", "CACHE_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:  # one configuration, in its own process
        print(json.dumps(measure(*args.measure, samples=args.samples)))
        return
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
        start = time.perf_counter()
        pool = write_pool(os.path.join(scratch, "pool"), max(args.sizes), args.shape)
        print(f"generated {len(pool)} volumes of {args.shape}³ int16 in {time.perf_counter() - start:.0f} s; "
              f"samples: {ROI[0]}³ crops, rotation and colorization, 1 thread\n", flush=True)
        print("| volumes | cache | fill (s) | samples/s after | peak RSS (MB) | RSS ÷ disk's |")
        print("|---|---|---|---|---|---|")
        choices = []
        for size in args.sizes:
            files_json = os.path.join(scratch, f"files{size}.json")
            with open(files_json, "w") as f:
                json.dump(pool[:size], f)
            results = {}
            for cache in ("disk", "memory"):
                output = subprocess.run(
                    [sys.executable, __file__, "--samples", str(args.samples), "--measure", files_json, cache,
                     os.path.join(scratch, f"cache{size}")], capture_output=True, text=True, check=True,
                    env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout
                results[cache] = json.loads(output.strip().splitlines()[-1])
            for cache, result in results.items():
                print(f"| {size} | {cache} | {result['fill_s']:.1f} | {result['samples_per_s']:.1f} | "
                      f"{result['peak_rss'] / 1e6:.0f} | {result['peak_rss'] / results['disk']['peak_rss']:.2f} |",
                      flush=True)
            choices.append(f"- {size} volumes: {auto_choice(pool[:size])}")
        from monai_ssl.bundle.cache import MEMORY_FRACTION, available_memory, cached_bytes

        per_volume = cached_bytes(pool[:1], None)[0]
        threshold = int(MEMORY_FRACTION * (available_memory() or 0) / per_volume)
        print(f"\n`cache: auto` on this machine (disk above about {threshold} volumes of this size, one process):\n"
              + "\n".join(choices))


if __name__ == "__main__":
    main()
