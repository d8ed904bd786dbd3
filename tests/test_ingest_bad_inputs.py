"""The bad-input suite: every generated case ends in a correct acceptance or a skip with its specific reason, the
run never crashes, and nothing wrong is accepted."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import RLELossless

from monai_ssl.ingest import index_archive, salted_hash
from tests.dicom_factory import (
    BASIC_TEXT_SR,
    RT_STRUCTURE_SET,
    SECONDARY_CAPTURE,
    rewrite,
    write_enhanced,
    write_mosaic,
    write_series,
    write_time_series,
)

SALT = "bad-input-salt"
MIN_SLICES = 4


def dicom_case(cases, name, expected, folder, **kwargs):
    series = write_series(folder, count=kwargs.pop("count", 6), **kwargs)
    cases[name] = {"kind": "series", "key": salted_hash(SALT, "series", series["uid"]), "expected": expected}
    return series


def series_case(cases, name, expected, series_uid):
    cases[name] = {"kind": "series", "key": salted_hash(SALT, "series", series_uid), "expected": expected}


def file_case(cases, name, expected, path):
    cases[name] = {"kind": "file", "item": path, "expected": expected}


def nifti_case(cases, archive, name, expected, relative, data):
    path = os.path.join(archive, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # nibabel chooses the format by extension, so a misnamed file is saved as .nii and renamed
    saved = path if path.endswith((".nii", ".nii.gz")) else path + ".nii"
    nib.save(nib.Nifti1Image(data, np.eye(4)), saved)
    os.replace(saved, path)
    cases[name] = {"kind": "nifti", "key": salted_hash(SALT, "series", "nifti", relative), "item": relative,
                   "expected": expected}


def build_archive(root: str) -> dict:
    cases: dict[str, dict] = {}
    d = lambda *parts: os.path.join(root, *parts)  # noqa: E731

    # accepted
    dicom_case(cases, "plain CT", "accepted", d("ct"))
    spread = dicom_case(cases, "series spread over two nested folders", "accepted", d("mr", "a"), modality="MR")
    os.makedirs(d("mr", "b", "deeper"))
    for path in spread["paths"][:3]:
        shutil.move(path, d("mr", "b", "deeper", os.path.basename(path)))
    dicom_case(cases, "files without extension", "accepted", d("noext"), extension="")
    dicom_case(cases, "DICOM with a wrong extension", "accepted", d("wrongext"), extension=".jpg")
    dicom_case(cases, "RLE compressed", "accepted", d("rle"), compress=RLELossless)
    dicom_case(cases, "two series in one folder (1)", "accepted", d("mixed"), seed=1)
    dicom_case(cases, "two series in one folder (2)", "accepted", d("mixed"), seed=2, extension=".dicom")
    nifti_case(cases, root, "NIfTI volume", "accepted", "nifti/good.nii.gz", np.ones((8, 8, 8), np.float32))
    nifti_case(cases, root, "NIfTI with a wrong extension", "accepted", "nifti/renamed.dat",
               np.ones((8, 8, 8), np.float32))
    nifti_case(cases, root, "NIfTI 3D with a singleton 4th dimension", "accepted", "nifti/single.nii.gz",
               np.ones((8, 8, 8, 1), np.float32))

    # skipped, per file
    os.makedirs(d("files"))
    open(d("files", "empty.dcm"), "wb").close()
    file_case(cases, "zero-byte file", "empty_file", "files/empty.dcm")
    with open(d("files", "notes.dcm"), "w") as f:
        f.write("this is a text file named .dcm\n" * 20)
    file_case(cases, "non-DICOM content named .dcm", "not_dicom", "files/notes.dcm")
    with open(d("files", "README.txt"), "w") as f:
        f.write("archive notes\n")
    file_case(cases, "text file", "not_dicom", "files/README.txt")
    truncated = write_series(d("tmp_truncated"), count=1)["paths"][0]
    with open(truncated, "rb") as f:
        head = f.read(300)
    with open(d("files", "truncated_header.dcm"), "wb") as f:
        f.write(head)
    shutil.rmtree(d("tmp_truncated"))
    file_case(cases, "file truncated inside the header", "invalid_dicom", "files/truncated_header.dcm")
    os.symlink(d("files", "absent.dcm"), d("files", "dangling.dcm"))
    file_case(cases, "dangling symlink", "unreadable", "files/dangling.dcm")
    os.symlink(d("files", "loop_b.dcm"), d("files", "loop_a.dcm"))
    os.symlink(d("files", "loop_a.dcm"), d("files", "loop_b.dcm"))
    file_case(cases, "symlink loop (a)", "unreadable", "files/loop_a.dcm")
    file_case(cases, "symlink loop (b)", "unreadable", "files/loop_b.dcm")
    os.symlink(root, d("files", "folder_loop"))  # a folder link back to the root must not be followed
    if os.geteuid() != 0:  # root reads any file, so the permission case only means something for other users
        with open(d("files", "locked.dcm"), "wb") as f:
            f.write(b"\0" * 200)
        os.chmod(d("files", "locked.dcm"), 0)
        file_case(cases, "unreadable file (permissions)", "unreadable", "files/locked.dcm")
    shutil.copy(get_testdata_file("MR_truncated.dcm"), d("files", "MR_truncated.dcm"))
    cases["pydicom MR_truncated.dcm (a derived image)"] = {
        "kind": "series", "expected": "derived_image",
        "key": salted_hash(SALT, "series", pydicom.dcmread(get_testdata_file("MR_truncated.dcm"),
                                                            stop_before_pixels=True).SeriesInstanceUID)}

    # skipped, per series
    dicom_case(cases, "missing slice", "missing_slice", d("missing"), count=7)
    os.remove(os.path.join(d("missing"), _middle_slice(d("missing"))))
    duplicate = dicom_case(cases, "duplicate slice", "duplicate_slice", d("duplicate"))
    shutil.copy(duplicate["paths"][2], d("duplicate", "copy.dcm"))
    conflicting = pydicom.dcmread(d("duplicate", "copy.dcm")).pixel_array + 1  # not a copy: other pixels
    rewrite(d("duplicate", "copy.dcm"), SOPInstanceUID=pydicom.uid.generate_uid(), PixelData=conflicting.tobytes())
    uneven = np.array([[0, 0, z] for z in (0, 2.5, 5, 8, 10.5, 13)], float)
    dicom_case(cases, "inconsistent slice spacing", "nonuniform_spacing", d("uneven"), positions=uneven)
    sheared = np.array([[0, 0.8 * k, 2.5 * k] for k in range(6)], float)
    dicom_case(cases, "gantry tilt (sheared positions)", "gantry_tilt", d("tilt_positions"), positions=sheared)
    dicom_case(cases, "gantry tilt (tag)", "gantry_tilt", d("tilt_tag"), extra={"GantryDetectorTilt": 12.0})
    dicom_case(cases, "2D-only series", "too_few_slices", d("single"), count=1)
    dicom_case(cases, "too few slices", "too_few_slices", d("few"), count=3)
    dicom_case(cases, "localizer", "localizer", d("scout"), image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    dicom_case(cases, "derived image", "derived_image", d("derived"), image_type=("DERIVED", "SECONDARY", "MPR"))
    dicom_case(cases, "secondary capture", "secondary_capture", d("sc"), sop_class=SECONDARY_CAPTURE)
    dicom_case(cases, "structured report", "non_image_object", d("sr"), modality="SR", sop_class=BASIC_TEXT_SR)
    dicom_case(cases, "RT structure set", "non_image_object", d("rtstruct"), modality="RTSTRUCT",
               sop_class=RT_STRUCTURE_SET)
    dicom_case(cases, "multi-frame", "multiframe_unsupported", d("multiframe"), extra={"NumberOfFrames": 2})
    dicom_case(cases, "excluded modality", "modality_excluded", d("pet"), modality="PT")
    no_pixels = dicom_case(cases, "DICOM without pixel data", "no_pixel_data", d("nopixels"))
    rewrite(no_pixels["paths"][3], PixelData=None)
    cut = dicom_case(cases, "truncated pixel data in one slice", "undecodable_pixels", d("cut"))
    with open(cut["paths"][1], "rb+") as f:
        f.truncate(os.path.getsize(cut["paths"][1]) - 100)
    rotated = dicom_case(cases, "inconsistent orientation", "inconsistent_orientation", d("orient"))
    rewrite(rotated["paths"][0], ImageOrientationPatient=[0.0, 1.0, 0.0, 0.0, 0.0, -1.0])
    resized = dicom_case(cases, "inconsistent size", "inconsistent_size", d("size"))
    rewrite(resized["paths"][0], Rows=8, PixelData=b"\0" * (8 * 20 * 2))
    spacing = dicom_case(cases, "inconsistent pixel spacing", "inconsistent_pixel_spacing", d("spacing"))
    rewrite(spacing["paths"][0], PixelSpacing=[1.0, 1.0])
    nogeometry = dicom_case(cases, "missing ImagePositionPatient", "missing_geometry", d("nogeometry"))
    rewrite(nogeometry["paths"][0], ImagePositionPatient=None)

    # mosaic, enhanced multi-frame and 4D series
    mosaic = write_mosaic(d("mosaic"), volumes=2)
    series_case(cases, "Siemens mosaic run (4D)", "accepted", mosaic["uid"])
    write_mosaic(d("mosaic_bad"), tiles=9, mosaic_tiles=10)
    file_case(cases, "mosaic whose tile count does not fit its image", "mosaic_inconsistent",
              os.path.join("mosaic_bad", "mosaic000.dcm"))
    series_case(cases, "enhanced multi-frame (4D)", "accepted", write_enhanced(d("enhanced"), volumes=2)["uid"])
    hole = write_enhanced(d("enhanced_hole"), drop_position_of_frame=2)
    series_case(cases, "enhanced object with a frame without position", "missing_geometry", hole["uid"])
    write_time_series(Path(d("short4d")))
    short = sorted(Path(d("short4d", "t2")).iterdir())
    series_case(cases, "4D series with a volume short", "frames_inconsistent",
                pydicom.dcmread(short[0]).SeriesInstanceUID)
    short[0].unlink()

    # skipped NIfTI
    nan = np.ones((8, 8, 8), np.float32)
    nan[2, 3, 4] = np.nan
    nifti_case(cases, root, "NaN in a NIfTI", "non_finite_values", "nifti/nan.nii.gz", nan)
    inf = np.ones((8, 8, 8), np.float32)
    inf[0, 0, 0] = np.inf
    nifti_case(cases, root, "Inf in a NIfTI", "non_finite_values", "nifti/inf.nii.gz", inf)
    nifti_case(cases, root, "4D NIfTI", "not_3d", "nifti/timeseries.nii.gz", np.ones((8, 8, 8, 3), np.float32))
    nifti_case(cases, root, "2D NIfTI", "not_3d", "nifti/flat.nii.gz", np.ones((8, 8), np.float32))
    with open(d("nifti", "good.nii.gz"), "rb") as f:
        payload = f.read()
    with open(d("nifti", "corrupt.nii.gz"), "wb") as f:
        f.write(payload[: len(payload) // 2])
    cases["truncated NIfTI"] = {"kind": "nifti", "key": salted_hash(SALT, "series", "nifti", "nifti/corrupt.nii.gz"),
                                "item": "nifti/corrupt.nii.gz", "expected": "unreadable_nifti"}
    return cases


def _middle_slice(folder: str) -> str:
    """The file of the 4th slice along z (not the first or last, so the gap is inside the series)."""
    by_z = sorted(os.listdir(folder), key=lambda n: float(pydicom.dcmread(os.path.join(folder, n)).ImagePositionPatient[2]))
    return by_z[3]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("archive"))
    cases = build_archive(root)
    out = tmp_path_factory.mktemp("out")
    summary = index_archive(root, str(out / "datalist.json"), modalities=["CT", "MR"], min_slices=MIN_SLICES,
                            salt=SALT, report_paths=True, progress=False)
    datalist = json.loads((out / "datalist.json").read_text())["training"]
    report = json.loads((out / "datalist_report.json").read_text())
    return cases, summary, datalist, report, root


def outcome(case: dict, datalist: list[dict], report: dict) -> list[str]:
    accepted = {e["series"] for e in datalist}
    results = []
    if case.get("key") in accepted:
        results.append("accepted")
    for skipped in report["skipped"]:
        if case["kind"] == "series" and skipped["item"] == "series:" + case["key"][:16]:
            results.append(skipped["reason"])
        elif case["kind"] in ("file", "nifti") and skipped["item"] == case.get("item"):
            results.append(skipped["reason"])
    return results


def test_there_are_at_least_25_cases(indexed):
    assert len(indexed[0]) >= 25


def test_every_case_ends_as_expected(indexed):
    cases, _, datalist, report, _ = indexed
    wrong = {name: (case["expected"], outcome(case, datalist, report)) for name, case in cases.items()
             if outcome(case, datalist, report) != [case["expected"]]}
    assert wrong == {}


def test_nothing_wrong_is_accepted(indexed):
    cases, summary, datalist, _, _ = indexed
    good = {c["key"] for c in cases.values() if c["expected"] == "accepted"}
    assert {e["series"] for e in datalist} == good
    assert summary.accepted == len(good)


def test_accepted_volumes_are_readable_and_described(indexed):
    _, _, datalist, _, _ = indexed
    from monai.transforms import LoadImage

    out_dir = os.path.dirname(indexed[1].datalist_path)
    for entry in datalist:
        image = LoadImage(image_only=True)(os.path.join(out_dir, entry["image"]))
        assert list(image.shape[:3]) == entry["shape"]
        assert len(entry["spacing"]) == 3 and all(s > 0 for s in entry["spacing"])


def test_counts_per_reason_add_up(indexed):
    _, summary, _, report, _ = indexed
    assert sum(report["skipped_counts"].values()) == len(report["skipped"])
    assert dict(summary.skipped) == report["skipped_counts"]
    text = summary.text()
    assert "series accepted" in text and "missing_slice: 1" in text
