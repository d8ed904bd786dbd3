"""Indexing at archive scale, measured in one run on a generated archive of many small DICOM files:

- ``monai-ssl index`` with 1 worker (the baseline) and with 2 workers;
- the same archive in 2 shards (``--shard 0/2`` then ``--shard 1/2``, one after the other, 1 worker each) and their
  ``monai-ssl merge``, checked equal to the single run's datalist;
- files/s and series/s of each, the peak resident memory of each command's process tree (sampled from /proc), and
  a cost model: hours per 10 million files per node, for N nodes each running one shard.

Each configuration runs the command line in a fresh process with a fresh cache. The archive: plain and RLE series
(a few spread over two folders, a few exported twice), Siemens mosaic fMRI runs, enhanced multi-frame objects, a
structured report and non-DICOM files per study.

Run: ``python benchmarks/index_scale.py [--files 50000] [--slices 20] [--size 32]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pydicom.uid import RLELossless  # noqa: E402

from tests.dicom_factory import BASIC_TEXT_SR, write_enhanced, write_mosaic, write_series  # noqa: E402

TEN_MILLION = 10_000_000


def write_archive(archive: str, files: int, slices: int, size: int) -> int:
    """Studies of one series each until ``files`` files: every 10th study a mosaic run or an enhanced object
    (one file holds many slices), every 7th series RLE, every 13th spread over two folders, every 17th exported
    twice, every 25th study also holds a structured report and a non-DICOM file. Returns the number of files."""
    written, study = 0, 0
    while written < files:
        folder = os.path.join(archive, f"patient{study // 4:05d}", f"study{study:06d}")
        if study % 10 == 3:
            write_mosaic(folder, tiles=16, rows=size, columns=size, volumes=4)
            written += 4
        elif study % 10 == 7:
            write_enhanced(folder, slices=slices, rows=size, columns=size, volumes=2, seed=study)
            written += 1
        else:
            series = write_series(folder, count=slices, rows=size, columns=size, seed=study,
                                  compress=RLELossless if study % 7 == 0 else None)
            if study % 13 == 0:  # the series continued in a later export folder
                later = os.path.join(archive, "late_exports", f"study{study:06d}")
                os.makedirs(later)
                for path in series["paths"][: slices // 2]:
                    shutil.move(path, later)
            written += slices
            if study % 17 == 0:
                shutil.copytree(folder, os.path.join(archive, "exported_again", f"study{study:06d}"))
                written += slices - (slices // 2 if study % 13 == 0 else 0)
        if study % 25 == 0:
            write_series(os.path.join(folder, "report"), count=1, rows=4, columns=4, sop_class=BASIC_TEXT_SR,
                         seed=study)
            with open(os.path.join(folder, "notes.txt"), "w") as f:
                f.write("not an image")
            written += 2
        study += 1
    return sum(len(names) for _, _, names in os.walk(archive))


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/statm") as f:
                rss[int(entry)] = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += rss.get(current, 0)
        stack += children.get(current, [])
    return total


def timed_command(arguments: list[str]) -> tuple[float, int, str]:
    """Run ``monai-ssl ARGUMENTS``; returns its seconds, the peak RSS of its process tree and its output."""
    environment = {**os.environ, "MONAI_SSL_SALT": "benchmark", "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "monai_ssl", *arguments], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=environment)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(process.pid))
            done.wait(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    output = process.communicate()[0]
    done.set()
    sampler.join()
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"monai-ssl {' '.join(arguments)} failed:\n{output}")
    return seconds, peak, output


def index(archive: str, out: str, workers: int, shard: str | None = None) -> tuple[float, int, dict]:
    arguments = ["index", archive, "--out", out, "--workers", str(workers), "--min-slices", "2"]
    seconds, peak, _ = timed_command(arguments + (["--shard", shard] if shard else []))
    with open(os.path.splitext(out)[0] + "_report.json") as f:
        return seconds, peak, json.load(f)


def keys(datalist: str) -> list:
    with open(datalist) as f:
        return [{k: v for k, v in e.items() if k != "image"} for e in json.load(f)["training"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=50_000, help="files in the generated archive (at least)")
    parser.add_argument("--slices", type=int, default=20, help="slices of a plain series")
    parser.add_argument("--size", type=int, default=32, help="rows and columns of a slice")
    parser.add_argument("--scratch", help="folder for the archive and outputs (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
        archive = os.path.join(scratch, "archive")
        start = time.perf_counter()
        files = write_archive(archive, args.files, args.slices, args.size)
        print(f"generated {files} files in {time.perf_counter() - start:.0f} s ({args.size}x{args.size} slices, "
              f"{args.slices} per plain series)", flush=True)
        # the start-up of the command (imports), charged once per run, out of the per-file costs
        tiny = os.path.join(scratch, "tiny")
        write_series(tiny, count=4, rows=4, columns=4)
        startup, _, _ = index(tiny, os.path.join(scratch, "tiny_out", "list.json"), workers=1)
        rows = []
        single_seconds, peak, report = index(archive, os.path.join(scratch, "w1", "list.json"), workers=1)
        series = report["accepted_series"]
        rows.append(("1 worker (baseline)", single_seconds, peak))
        seconds, peak, _ = index(archive, os.path.join(scratch, "w2", "list.json"), workers=2)
        rows.append(("2 workers", seconds, peak))
        shard_seconds, shard_peak = 0.0, 0
        for i in range(2):
            seconds, peak, _ = index(archive, os.path.join(scratch, "shards", f"shard_{i}.json"), workers=1,
                                     shard=f"{i}/2")
            rows.append((f"shard {i}/2, 1 worker", seconds, peak))
            shard_seconds, shard_peak = shard_seconds + seconds, max(shard_peak, peak)
        merged = os.path.join(scratch, "shards", "merged.json")
        merge_seconds, merge_peak, _ = timed_command(["merge", os.path.join(scratch, "shards", "shard_*.json"),
                                                      "--out", merged])
        rows.append(("merge of the 2 shards", merge_seconds, merge_peak))
        rows.append(("2 shards + merge, one after the other", shard_seconds + merge_seconds, shard_peak))
        if keys(merged) != keys(os.path.join(scratch, "w1", "list.json")):
            raise RuntimeError("the merged shards differ from the single run")

        print(f"\n{files} files, {series} series accepted, {sum(report['skipped_counts'].values())} items skipped "
              f"({', '.join(f'{k} {v}' for k, v in report['skipped_counts'].items())}); merged shards == single "
              f"run: yes\n")
        print("| configuration | seconds | files/s | series/s | peak RSS (MB) | time ÷ 1 worker |")
        print("|---|---|---|---|---|---|")
        for label, seconds, peak in rows:
            print(f"| {label} | {seconds:.1f} | {files / seconds:.0f} | {series / seconds:.1f} | {peak / 1e6:.0f} | "
                  f"{seconds / single_seconds:.2f} |")
        # a shard reads every file's Series Instance UID (cost k per file) and indexes its own files (f per file,
        # as the single run): T_single = F f, the two shards together 2 F k + F f, one node of N: F (k + f / N)
        per_file = (single_seconds - startup) / files
        key_read = max(shard_seconds - single_seconds - startup, 0.0) / (2 * files)
        print(f"\ncost model, 1 worker per node (start-up of a command, {startup:.1f} s, left out): f = "
              f"{per_file * 1e3:.2f} ms to index a file, k = {key_read * 1e3:.2f} ms to read a file's shard key")
        print("| nodes | hours per 10 million files, per node |")
        print("|---|---|")
        for nodes in (1, 2, 4, 8, 16, 64):
            hours = TEN_MILLION * (per_file / nodes + (key_read if nodes > 1 else 0.0)) / 3600
            print(f"| {nodes}{' (no --shard)' if nodes == 1 else ''} | {hours:.2f} |")

if __name__ == "__main__":
    main()
