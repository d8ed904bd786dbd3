"""Archive ingestion speed: files per second while indexing, and series-to-volume conversion time against
dcm2niix on the same series, measured in the same run (when dcm2niix is installed: Debian package dcm2niix).

The archive is generated with pydicom (series of 128x128 slices; every 4th series RLE-compressed) plus, when
present, the real JPEG 2000 CT series of ../shared/data/ct/example_ct_dicom.

Run: ``python benchmarks/ingest.py [--series 12] [--slices 64] [--workers 2]``
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pydicom.uid import RLELossless  # noqa: E402

from monai_ssl.ingest import convert_series, index_archive, read_file_record  # noqa: E402
from monai_ssl.ingest.series import write_nifti_atomically  # noqa: E402
from tests.dicom_factory import write_series  # noqa: E402

REAL_CT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "ct",
                       "example_ct_dicom")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=12)
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        archive = os.path.join(scratch, "archive")
        folders = []
        for index in range(args.series):
            folder = os.path.join(archive, f"study{index:03d}")
            write_series(folder, count=args.slices, rows=128, columns=128, seed=index,
                         compress=RLELossless if index % 4 == 3 else None)
            folders.append((f"generated 128x128x{args.slices}" + (" RLE" if index % 4 == 3 else ""), folder))
        if os.path.isdir(REAL_CT):
            shutil.copytree(REAL_CT, os.path.join(archive, "real_ct"))
            folders.append(("real CT 512x512x20 JPEG 2000", os.path.join(archive, "real_ct")))
        files = sum(len(f) for _, _, f in os.walk(archive))

        start = time.perf_counter()
        summary = index_archive(archive, os.path.join(scratch, "out", "list.json"), workers=args.workers,
                                salt="benchmark", progress=False)
        seconds = time.perf_counter() - start
        print(f"indexing {files} files ({summary.accepted} series) with {args.workers} workers, header pass, "
              f"validation and conversion: {seconds:.1f} s, {files / seconds:.0f} files/s")
        start = time.perf_counter()
        for folder, _, names in os.walk(archive):
            for name in names:
                read_file_record(os.path.join(folder, name), "benchmark")
        header_seconds = time.perf_counter() - start
        print(f"header pass alone, 1 process: {files / header_seconds:.0f} files/s")

        dcm2niix = shutil.which("dcm2niix")
        print(f"\n{'series':34s} {'monai-ssl s':>11s} {'dcm2niix s':>10s} {'ratio':>6s}")
        ratios = []
        for label, folder in (folders[0], folders[3], folders[-1]):
            records = [read_file_record(p, "benchmark") for p in sorted(glob.glob(os.path.join(folder, "*")))]
            out = os.path.join(scratch, "converted")
            os.makedirs(out, exist_ok=True)
            start = time.perf_counter()
            volume, affine = convert_series(records)
            write_nifti_atomically(volume, affine, os.path.join(out, "ours.nii.gz"))
            ours = time.perf_counter() - start
            theirs = float("nan")
            if dcm2niix:
                start = time.perf_counter()
                subprocess.run([dcm2niix, "-z", "y", "-b", "n", "-f", "theirs", "-o", out, folder], check=True,
                               capture_output=True)
                theirs = time.perf_counter() - start
                ratios.append(ours / theirs)
            print(f"{label:34s} {ours:11.2f} {theirs:10.2f} {ours / theirs:6.2f}")
        if ratios:
            print(f"median conversion time ratio monai-ssl / dcm2niix: {statistics.median(ratios):.2f}")
        else:
            print("dcm2niix is not installed: no comparison (apt-get install dcm2niix)")


if __name__ == "__main__":
    main()
