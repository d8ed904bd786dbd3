"""Enhanced multi-frame DICOM (Philips, Siemens XA): frames are placed by their functional groups, sorted into
stacks, split into volumes by dimension index, rescaled per frame; the result matches dcm2niix."""

import shutil
import subprocess

import nibabel as nib
import numpy as np
import pydicom
import pytest

from monai_ssl.ingest import read_file_record
from tests.dicom_factory import index_folder, write_enhanced


def load(out, entry):
    return nib.load(str(out / entry["image"]))


def test_frames_in_shuffled_order_become_the_volume(tmp_path):
    enhanced = write_enhanced(str(tmp_path / "archive"))
    summary, entries, report = index_folder(tmp_path / "archive", tmp_path / "out")
    assert summary.accepted == 1 and report["skipped"] == [] and entries[0]["num_slices"] == 6
    image = load(tmp_path / "out", entries[0])
    # the shared pixel value transformation (slope 2, intercept -5) is applied
    np.testing.assert_array_equal(np.asarray(image.dataobj), enhanced["volumes"][0])
    np.testing.assert_allclose(image.affine, enhanced["affine"], atol=1e-5)


def test_the_file_record_lists_one_slice_per_frame(tmp_path):
    enhanced = write_enhanced(str(tmp_path), volumes=2)
    record = read_file_record(enhanced["path"], salt="s")
    assert record["frames"] == 12 and [s["frame"] for s in record["slices"]] == list(range(12))
    assert {tuple(s["rescale"]) for s in record["slices"]} == {(2.0, -5.0)}
    # volume tags: temporal position index, trigger delay, b-value, then the temporal dimension index
    assert {tuple(s["volume_tags"]) for s in record["slices"]} == {(1, -1, -1, 1), (2, -1, -1, 2)}


def test_a_4d_object_is_split_by_its_temporal_dimension(tmp_path):
    enhanced = write_enhanced(str(tmp_path / "archive"), volumes=3)
    summary, entries, _ = index_folder(tmp_path / "archive", tmp_path / "out")
    assert summary.accepted == 1 and [e["volume"] for e in entries] == [0, 1, 2]
    for entry, expected in zip(entries, enhanced["volumes"]):
        np.testing.assert_array_equal(np.asarray(load(tmp_path / "out", entry).dataobj), expected)
    summary, entries, _ = index_folder(tmp_path / "archive", tmp_path / "skip", four_d="skip")
    assert entries == [] and summary.skipped == {"time_series_skipped": 1}


def test_stacks_of_one_object_are_volumes_of_their_own(tmp_path):
    enhanced = write_enhanced(str(tmp_path / "archive"))
    ds = pydicom.dcmread(enhanced["path"])
    # a second stack: the same frames again, 100 mm further along the slice normal
    second = [pydicom.Dataset() for _ in ds.PerFrameFunctionalGroupsSequence]
    for copy, frame in zip(second, ds.PerFrameFunctionalGroupsSequence):
        copy.FrameContentSequence = [pydicom.Dataset()]
        copy.FrameContentSequence[0].StackID = "2"
        copy.FrameContentSequence[0].InStackPositionNumber = frame.FrameContentSequence[0].InStackPositionNumber
        copy.FrameContentSequence[0].TemporalPositionIndex = 1
        copy.FrameContentSequence[0].DimensionIndexValues = [2, 1, frame.FrameContentSequence[0].InStackPositionNumber]
        copy.PlanePositionSequence = [pydicom.Dataset()]
        x, y, z = frame.PlanePositionSequence[0].ImagePositionPatient
        copy.PlanePositionSequence[0].ImagePositionPatient = [x, y + 100.0, z]  # the normal of (1,0,0,0,0,-1) is +y
    ds.PerFrameFunctionalGroupsSequence = list(ds.PerFrameFunctionalGroupsSequence) + second
    ds.NumberOfFrames = 12
    ds.PixelData = ds.PixelData * 2
    ds.save_as(enhanced["path"])
    summary, entries, report = index_folder(tmp_path / "archive", tmp_path / "out")
    assert summary.accepted == 1 and len(entries) == 2 and report["skipped"] == []
    assert len({e["series"] for e in entries}) == 1 and len({e["image"] for e in entries}) == 2
    first, other = (load(tmp_path / "out", e) for e in entries)
    np.testing.assert_array_equal(np.asarray(first.dataobj), np.asarray(other.dataobj))
    np.testing.assert_allclose(other.affine[:3, 3] - first.affine[:3, 3], [0, -100.0, 0], atol=1e-5)  # LPS to RAS


def test_a_frame_without_its_position_is_missing_geometry(tmp_path):
    write_enhanced(str(tmp_path / "archive"), drop_position_of_frame=3)
    summary, entries, report = index_folder(tmp_path / "archive", tmp_path / "out")
    assert entries == [] and summary.skipped == {"missing_geometry": 1}


def test_per_frame_groups_that_do_not_match_the_frame_count_are_frames_inconsistent(tmp_path):
    enhanced = write_enhanced(str(tmp_path / "archive"))
    ds = pydicom.dcmread(enhanced["path"])
    ds.PerFrameFunctionalGroupsSequence = list(ds.PerFrameFunctionalGroupsSequence)[:-1]
    ds.save_as(enhanced["path"])
    summary, entries, report = index_folder(tmp_path / "archive", tmp_path / "out")
    assert entries == [] and summary.skipped == {"frames_inconsistent": 1}
    assert "5 per-frame functional groups for 6 frames" in report["skipped"][0]["detail"]


def test_a_4d_object_with_a_volume_short_is_frames_inconsistent(tmp_path):
    enhanced = write_enhanced(str(tmp_path / "archive"), volumes=2)
    ds = pydicom.dcmread(enhanced["path"])
    keep = [i for i, f in enumerate(ds.PerFrameFunctionalGroupsSequence)
            if not (f.FrameContentSequence[0].TemporalPositionIndex == 2
                    and f.FrameContentSequence[0].InStackPositionNumber == 6)]
    frames = np.frombuffer(ds.PixelData, np.uint16).reshape(12, 8, 10)[keep]
    ds.PerFrameFunctionalGroupsSequence = [ds.PerFrameFunctionalGroupsSequence[i] for i in keep]
    ds.NumberOfFrames, ds.PixelData = 11, frames.tobytes()
    ds.save_as(enhanced["path"])
    summary, entries, _ = index_folder(tmp_path / "archive", tmp_path / "out")
    assert entries == [] and summary.skipped == {"frames_inconsistent": 1}


def test_a_multiframe_object_without_functional_groups_is_still_refused(tmp_path):
    enhanced = write_enhanced(str(tmp_path / "archive"))
    ds = pydicom.dcmread(enhanced["path"])
    del ds.PerFrameFunctionalGroupsSequence
    ds.save_as(enhanced["path"])
    summary, _, report = index_folder(tmp_path / "archive", tmp_path / "out")
    assert summary.skipped == {"multiframe_unsupported": 1}
    assert "without per-frame functional groups" in report["skipped"][0]["detail"]


@pytest.mark.skipif(shutil.which("dcm2niix") is None, reason="dcm2niix is not installed (Debian package dcm2niix)")
def test_each_volume_matches_dcm2niix(tmp_path):
    write_enhanced(str(tmp_path / "archive"), volumes=2, orientation=(0.8, 0.6, 0, 0, 0, -1))
    _, entries, _ = index_folder(tmp_path / "archive", tmp_path / "ours")
    (tmp_path / "theirs").mkdir()
    subprocess.run(["dcm2niix", "-z", "y", "-b", "n", "-f", "vol", "-o", str(tmp_path / "theirs"),
                    str(tmp_path / "archive")], check=True, capture_output=True)
    outputs = sorted((tmp_path / "theirs").glob("*.nii.gz"))
    assert [p.name for p in outputs] == ["vol.nii.gz"], outputs
    theirs = nib.as_closest_canonical(nib.load(str(outputs[0])))
    assert theirs.shape[3] == 2
    for t, entry in enumerate(entries):
        ours = nib.as_closest_canonical(load(tmp_path / "ours", entry))
        np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-3)
        np.testing.assert_allclose(np.asarray(ours.dataobj), theirs.get_fdata()[..., t], atol=1e-3)
