"""Property-based fuzzing of the DICOM header pass: every tag the indexer reads, corrupted with a wrong VR, several
values, an empty or a huge value. No exception may escape, and a file that cannot be used is skipped with a
reason."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataelem import RawDataElement
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from monai_ssl.ingest import index_archive, read_file_record
from tests.dicom_factory import write_series

# every attribute the header pass (records.py) or the conversion (series.py) reads
READ_KEYWORDS = ["SOPClassUID", "Modality", "ImageType", "SeriesInstanceUID", "StudyInstanceUID", "PatientID",
                 "PatientName", "NumberOfFrames", "Rows", "Columns", "PixelSpacing", "ImageOrientationPatient",
                 "ImagePositionPatient", "GantryDetectorTilt", "RescaleSlope", "RescaleIntercept"]
HUGE = 70_000  # beyond a 16-bit value length: explicit-VR short-length elements cannot even hold it

raw_values = st.one_of(
    st.binary(max_size=48),  # garbage of any length, read back with the tag's own VR
    st.just(b""),
    st.just(b"9" * HUGE),
    st.lists(st.sampled_from([b"1", b"-2.5", b"1e308", b"nan", b"X", b"3"]), min_size=2, max_size=4).map(b"\\".join),
)
# bytes written under another VR than the dictionary's
wrong_vr_values = st.sampled_from([("US", struct.pack("<HH", 3, 4)), ("FD", struct.pack("<d", 1e308)),
                                   ("FD", struct.pack("<dd", 1.0, 2.0)), ("DS", b"1.5\\-2"), ("CS", b"ABC\\DEF"),
                                   ("UI", b""), ("OB", b"\x00\xff" * 8), ("SL", struct.pack("<i", -1)),
                                   ("UL", struct.pack("<I", 2**32 - 1)), ("IS", b"2147483648")])


def corrupt(path: Path, keyword: str, corruption) -> None:
    """Rewrite ``keyword`` of the file at ``path`` with raw bytes, written as they are: under ``UN`` (read back with
    the dictionary VR) or under another VR. Raw elements bypass pydicom's own value checks on writing."""
    ds = pydicom.dcmread(path)
    tag = Tag(tag_for_keyword(keyword))
    vr, value = ("UN", corruption) if isinstance(corruption, bytes) else corruption
    ds._dict[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)
    # the file meta is already complete: not rebuilt from the (corrupted) dataset
    ds.save_as(path, enforce_file_format=False)


@pytest.fixture(scope="module")
def good_series(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("good")
    write_series(str(folder / "series"), count=4, rows=8, columns=8)
    return folder / "series"


def check_record(record: dict) -> None:
    assert record["kind"] in ("dicom", "skipped")
    if record["kind"] == "skipped":
        assert record["reason"] and record["detail"]


@settings(max_examples=150, deadline=None, derandomize=True,  # seeded: the same examples on every run
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keyword=st.sampled_from(READ_KEYWORDS), corruption=st.one_of(raw_values, wrong_vr_values))
def test_the_header_pass_never_raises(good_series, tmp_path_factory, keyword, corruption):
    path = Path(tmp_path_factory.mktemp("fuzz")) / "slice.dcm"
    shutil.copy(sorted(good_series.iterdir())[0], path)
    corrupt(path, keyword, corruption)
    check_record(read_file_record(str(path), "salt"))


@settings(max_examples=25, deadline=None, derandomize=True,  # seeded: the same examples on every run
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keyword=st.sampled_from(READ_KEYWORDS), corruption=st.one_of(raw_values, wrong_vr_values))
def test_an_index_accounts_for_every_corrupted_file(good_series, tmp_path_factory, keyword, corruption):
    """The whole index runs; the corrupted file is in an accepted series or in the report with a reason."""
    root = Path(tmp_path_factory.mktemp("archive"))
    shutil.copytree(good_series, root / "archive")
    corrupted = sorted((root / "archive").iterdir())[1]
    corrupt(corrupted, keyword, corruption)
    summary = index_archive(str(root / "archive"), str(root / "out" / "list.json"), salt="s", min_slices=2,
                            report_paths=True, progress=False)
    report = json.loads(Path(summary.report_path).read_text())
    reported = json.dumps(report)
    assert summary.accepted == 1 or corrupted.name in reported or summary.skipped
    assert all(reason for reason in summary.skipped)


def test_a_gantry_tilt_with_two_values_is_skipped_with_a_reason(good_series, tmp_path):
    """It raised TypeError outside the per-file guard and aborted the whole index."""
    path = tmp_path / "slice.dcm"
    shutil.copy(sorted(good_series.iterdir())[0], path)
    corrupt(path, "GantryDetectorTilt", ("DS", b"0\\15"))
    record = read_file_record(str(path), "salt")
    assert (record["kind"], record["reason"]) == ("skipped", "invalid_header")
    assert record["detail"] == "GantryDetectorTilt is not one number (TypeError)"


def test_the_modality_lut_sequence_is_applied(tmp_path):
    """pydicom's apply_modality_lut: a Modality LUT Sequence instead of RescaleSlope/RescaleIntercept."""
    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 16]
    lut.add_new(0x00283006, "US", [2 * v + 7 for v in range(4096)])  # LUTData, "US or OW": US chosen
    lut.ModalityLUTType = "US"
    series = write_series(str(tmp_path / "archive" / "s"), count=4, rows=8, columns=8, modality="MR",
                          extra={"ModalityLUTSequence": [lut]})
    for path in series["paths"]:
        ds = pydicom.dcmread(path)
        del ds.RescaleSlope, ds.RescaleIntercept
        ds.save_as(path, enforce_file_format=True)
    summary = index_archive(str(tmp_path / "archive"), str(tmp_path / "out" / "list.json"), salt="s", min_slices=2,
                            progress=False)
    assert summary.accepted == 1
    entry = json.loads((tmp_path / "out" / "list.json").read_text())["training"][0]
    import nibabel as nib

    volume = np.asarray(nib.load(str(tmp_path / "out" / entry["image"])).dataobj)
    stored = (series["volume"] + 1024.0).astype(np.int64)  # write_series rescales by (1, -1024) by default
    np.testing.assert_array_equal(volume, 2 * stored + 7)


def test_the_dictionary_vr_of_every_read_tag_is_known():
    assert all(dictionary_VR(tag_for_keyword(k)) for k in READ_KEYWORDS)


# what the mosaic and enhanced multi-frame readers add: top-level attributes, and attributes inside a frame's
# functional groups (sequence, item, keyword)
MOSAIC_KEYWORDS = ["ImageType", "SpacingBetweenSlices", "SliceThickness", "SOPInstanceUID", "Rows", "Columns"]
FRAME_ATTRIBUTES = [("PlanePositionSequence", "ImagePositionPatient"),
                    ("FrameContentSequence", "DimensionIndexValues"), ("FrameContentSequence", "StackID"),
                    ("FrameContentSequence", "TemporalPositionIndex")]
SHARED_ATTRIBUTES = [("PixelMeasuresSequence", "PixelSpacing"), ("PlaneOrientationSequence", "ImageOrientationPatient"),
                     ("PixelValueTransformationSequence", "RescaleSlope")]


@pytest.fixture(scope="module")
def multi_slice_files(tmp_path_factory) -> dict[str, Path]:
    from tests.dicom_factory import write_enhanced, write_mosaic

    folder = tmp_path_factory.mktemp("multi")
    return {"mosaic": Path(write_mosaic(str(folder / "mosaic"))["paths"][0]),
            "enhanced": Path(write_enhanced(str(folder / "enhanced"), volumes=2)["path"])}


def corrupt_nested(path: Path, sequence_path: tuple[str, ...], keyword: str, corruption) -> None:
    """Like :func:`corrupt`, inside the first item of each sequence of ``sequence_path``."""
    ds = pydicom.dcmread(path)
    item = ds
    for sequence in sequence_path:
        item = getattr(item, sequence)[0]
    tag = Tag(tag_for_keyword(keyword))
    vr, value = ("UN", corruption) if isinstance(corruption, bytes) else corruption
    item._dict[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)
    ds.save_as(path, enforce_file_format=False)


@settings(max_examples=60, deadline=None, derandomize=True,  # seeded: the same examples on every run
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keyword=st.sampled_from(MOSAIC_KEYWORDS), corruption=st.one_of(raw_values, wrong_vr_values))
def test_the_mosaic_reader_never_raises(multi_slice_files, tmp_path_factory, keyword, corruption):
    path = Path(tmp_path_factory.mktemp("fuzz")) / "mosaic.dcm"
    shutil.copy(multi_slice_files["mosaic"], path)
    corrupt(path, keyword, corruption)
    record = read_file_record(str(path), "salt")
    check_record(record)
    assert record.get("reason") != "unreadable"  # a bad header value is named, never an unexpected error


def test_an_image_type_under_a_numeric_vr_is_read_not_an_unexpected_error(multi_slice_files, tmp_path):
    path = tmp_path / "mosaic.dcm"
    shutil.copy(multi_slice_files["mosaic"], path)
    corrupt(path, "ImageType", ("US", struct.pack("<H", 3)))
    record = read_file_record(str(path), "salt")
    assert record["kind"] == "dicom" and record["image_type"] == "3" and record["slices"] is None


@settings(max_examples=40, deadline=None, derandomize=True,  # seeded: the same examples on every run
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(max_size=64))
def test_a_garbage_csa_header_is_a_skipped_mosaic(multi_slice_files, tmp_path_factory, garbage):
    path = Path(tmp_path_factory.mktemp("fuzz")) / "mosaic.dcm"
    shutil.copy(multi_slice_files["mosaic"], path)
    ds = pydicom.dcmread(path)
    ds[0x00291010].value = garbage
    ds.save_as(path)
    record = read_file_record(str(path), "salt")
    assert (record["kind"], record["reason"]) == ("skipped", "mosaic_unreadable")


@settings(max_examples=80, deadline=None, derandomize=True,  # seeded: the same examples on every run
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(attribute=st.one_of(st.sampled_from([("PerFrameFunctionalGroupsSequence", s, k) for s, k in FRAME_ATTRIBUTES]),
                           st.sampled_from([("SharedFunctionalGroupsSequence", s, k) for s, k in SHARED_ATTRIBUTES])),
       corruption=st.one_of(raw_values, wrong_vr_values))
def test_the_functional_group_reader_never_raises_and_the_index_accounts_for_the_object(
        multi_slice_files, tmp_path_factory, attribute, corruption):
    root = Path(tmp_path_factory.mktemp("fuzz"))
    path = root / "archive" / "enhanced.dcm"
    path.parent.mkdir()
    shutil.copy(multi_slice_files["enhanced"], path)
    *sequences, keyword = attribute
    corrupt_nested(path, tuple(sequences), keyword, corruption)
    record = read_file_record(str(path), "salt")
    check_record(record)
    assert record.get("reason") != "unreadable"
    summary = index_archive(str(root / "archive"), str(root / "out" / "list.json"), salt="s", min_slices=2,
                            progress=False)
    assert summary.accepted == 1 or (summary.skipped and all(summary.skipped))


def test_a_single_float_dimension_index_is_a_named_problem(multi_slice_files, tmp_path):
    """Found by the fuzzing above: one FD value where DimensionIndexValues holds ints raised TypeError; it is one
    value for three dimensions."""
    path = tmp_path / "enhanced.dcm"
    shutil.copy(multi_slice_files["enhanced"], path)
    corrupt_nested(path, ("PerFrameFunctionalGroupsSequence", "FrameContentSequence"), "DimensionIndexValues",
                   ("FD", b"\xa0\xc8\xeb\x85\xf3\xcc\xe1\x7f"))
    record = read_file_record(str(path), "salt")
    assert (record["kind"], record["reason"]) == ("skipped", "frames_inconsistent")
    assert record["detail"] == "frame 1 has 1 dimension index values for 3 dimensions"


def test_a_non_numeric_dimension_index_is_a_named_bad_header(multi_slice_files, tmp_path):
    path = tmp_path / "enhanced.dcm"
    shutil.copy(multi_slice_files["enhanced"], path)
    corrupt_nested(path, ("PerFrameFunctionalGroupsSequence", "FrameContentSequence"), "DimensionIndexValues",
                   ("FD", struct.pack("<ddd", 1.0, float("nan"), 2.0)))
    record = read_file_record(str(path), "salt")
    assert (record["kind"], record["reason"]) == ("skipped", "invalid_header")
    assert record["detail"] == "DimensionIndexValues is not finite"
