"""Archive ingestion speed, measured in one run:

- folder source: files/s and series/s of ``index_archive`` (header pass, validation, conversion);
- DICOMweb source (when Orthanc and its DICOMweb plugin are installed: Debian packages orthanc and
  orthanc-dicomweb): the same archive loaded into a loopback Orthanc and indexed over QIDO-RS/WADO-RS, as a ratio
  to the folder source;
- per series kind (plain, RLE, Siemens mosaic fMRI, enhanced multi-frame, the real JPEG 2000 CT of
  ../shared/data, read in place, and nibabel's real Siemens mosaic and Philips enhanced files): indexing one series
  against dcm2niix converting it (when installed: Debian package dcm2niix).

Run: ``python benchmarks/ingest.py [--series 12] [--slices 64] [--workers 2]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pydicom.uid import RLELossless  # noqa: E402

from monai_ssl.ingest import index_archive  # noqa: E402
from tests.dicom_factory import write_enhanced, write_mosaic, write_series  # noqa: E402

REAL_CT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "ct",
                       "example_ct_dicom")


def write_archive(archive: str, series: int, slices: int) -> list[tuple[str, str]]:
    """Plain and RLE series, mosaic fMRI runs and enhanced 4D objects; returns one ``(label, folder)`` per kind.
    (The real CT is compared with dcm2niix but kept out of the source comparison: it is anonymised down to empty
    UIDs, which a PACS refuses.)"""
    kinds = {}
    for index in range(series):
        folder = os.path.join(archive, f"study{index:03d}")
        kind = index % 4
        if kind == 2:
            write_mosaic(folder, tiles=36, rows=64, columns=64, volumes=10)
            label = "mosaic fMRI 64x64x36, 10 volumes"
        elif kind == 3:
            write_enhanced(folder, slices=slices, rows=128, columns=128, volumes=2, seed=index)
            label = f"enhanced MR 128x128x{slices}, 2 volumes"
        else:
            write_series(folder, count=slices, rows=128, columns=128, seed=index,
                         compress=RLELossless if kind == 1 else None)
            label = f"generated 128x128x{slices}" + (" RLE" if kind == 1 else "")
        kinds.setdefault(label, folder)
    return list(kinds.items())


def real_scanner_files(folder: str) -> list[tuple[str, str]]:
    """nibabel's real Siemens diffusion mosaic and Philips enhanced MPRAGE, when its test data is installed."""
    import gzip

    import nibabel

    data = os.path.join(os.path.dirname(nibabel.__file__), "nicom", "tests", "data")
    kinds = []
    for name, label in (("siemens_dwi_1000", "real Siemens DWI mosaic 128x128x48"),
                        ("philips_mprage", "real Philips enhanced MPRAGE 176 frames")):
        if os.path.exists(os.path.join(data, f"{name}.dcm.gz")):
            os.makedirs(os.path.join(folder, name))
            with gzip.open(os.path.join(data, f"{name}.dcm.gz")) as source, \
                    open(os.path.join(folder, name, f"{name}.dcm"), "wb") as target:
                shutil.copyfileobj(source, target)
            kinds.append((label, os.path.join(folder, name)))
    return kinds


def timed_index(source, out: str, **options):
    start = time.perf_counter()
    if source.startswith("dicomweb+"):
        from monai_ssl.ingest.dicomweb import index_dicomweb

        summary = index_dicomweb(source, out, salt="benchmark", progress=False, **options)
    else:
        summary = index_archive(source, out, salt="benchmark", progress=False, **options)
    return summary, time.perf_counter() - start


def dicomweb_source(archive: str, scratch: str, folder_seconds: float) -> None:
    from pathlib import Path

    from tests.orthanc import AVAILABLE, PASSWORD, USER, Orthanc

    if not AVAILABLE:
        print("DICOMweb source: Orthanc with its DICOMweb plugin is not installed (apt-get install orthanc "
              "orthanc-dicomweb): not measured")
        return
    server = Orthanc(Path(scratch) / "orthanc")
    server.start()
    try:
        server.upload(Path(archive))
        os.environ["MONAI_SSL_DICOMWEB_USER"], os.environ["MONAI_SSL_DICOMWEB_PASSWORD"] = USER, PASSWORD
        summary, seconds = timed_index(server.source, os.path.join(scratch, "web", "list.json"))
    finally:
        server.stop()
    print(f"DICOMweb source (loopback Orthanc), 1 process: {summary.files} instances, {summary.accepted} series in "
          f"{seconds:.1f} s: {summary.files / seconds:.0f} files/s, {summary.accepted / seconds:.2f} series/s; "
          f"time ratio DICOMweb / folder: {seconds / folder_seconds:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=12)
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        archive = os.path.join(scratch, "archive")
        kinds = write_archive(archive, args.series, args.slices)
        files = sum(len(f) for _, _, f in os.walk(archive))
        summary, seconds = timed_index(archive, os.path.join(scratch, "out", "list.json"), workers=args.workers)
        print(f"folder source, {args.workers} workers: {files} files, {summary.accepted} series ({summary.volumes} "
              f"volumes) in {seconds:.1f} s: {files / seconds:.0f} files/s, {summary.accepted / seconds:.2f} series/s")
        _, one_process = timed_index(archive, os.path.join(scratch, "out1", "list.json"), workers=1)
        print(f"folder source, 1 process: {one_process:.1f} s, {files / one_process:.0f} files/s")
        dicomweb_source(archive, scratch, one_process)

        if os.path.isdir(REAL_CT):
            kinds.append(("real CT 512x512x20 JPEG 2000", REAL_CT))
        kinds += real_scanner_files(os.path.join(scratch, "real"))
        dcm2niix = shutil.which("dcm2niix")
        print(f"\n{'one series, indexed and converted':38s} {'volumes':>7s} {'monai-ssl s':>11s} {'dcm2niix s':>10s} "
              f"{'ratio':>6s}")
        ratios = []
        for number, (label, folder) in enumerate(kinds):
            converted, ours = timed_index(folder, os.path.join(scratch, f"kind{number}", "list.json"), min_slices=2)
            theirs = float("nan")
            if dcm2niix:
                out = os.path.join(scratch, f"dcm2niix{number}")
                os.makedirs(out)
                start = time.perf_counter()
                subprocess.run([dcm2niix, "-z", "y", "-b", "n", "-f", "theirs", "-o", out, folder], check=True,
                               capture_output=True)
                theirs = time.perf_counter() - start
                ratios.append(ours / theirs)
            print(f"{label:38s} {converted.volumes:7d} {ours:11.2f} {theirs:10.2f} {ours / theirs:6.2f}")
        if ratios:
            print(f"median time ratio monai-ssl / dcm2niix: {statistics.median(ratios):.2f}")
        else:
            print("dcm2niix is not installed: no comparison (apt-get install dcm2niix)")


if __name__ == "__main__":
    main()
