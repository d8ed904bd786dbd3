"""4D DICOM series (fMRI, perfusion, diffusion: several volumes at the same slice positions): split, first, mean
or skip; never reported as duplicate slices; each volume as dcm2niix converts it."""

import shutil
import subprocess

import nibabel as nib
import numpy as np
import pytest
import pydicom
from pydicom.uid import RLELossless, generate_uid

from monai_ssl.ingest import index_archive
from tests.dicom_factory import index_folder, rewrite, write_series, write_time_series

COUNT = 6  # slices per volume, as write_time_series writes them


def load(out, entry) -> np.ndarray:
    return np.asarray(nib.load(str(out / entry["image"])).dataobj)


def test_split_gives_one_entry_per_volume_sharing_the_series_key(tmp_path):
    expected = write_time_series(tmp_path / "archive")
    summary, entries, report = index_folder(tmp_path / "archive", tmp_path / "out")
    assert summary.accepted == 1 and summary.volumes == 3 and report["skipped"] == []
    assert [e["volume"] for e in entries] == [0, 1, 2] and {e["num_volumes"] for e in entries} == {3}
    assert len({e["series"] for e in entries}) == 1  # a split never puts one series on both sides
    for entry, volume in zip(entries, expected):
        np.testing.assert_array_equal(load(tmp_path / "out", entry), volume)


def test_first_mean_and_skip(tmp_path):
    expected = write_time_series(tmp_path / "archive")
    _, first, _ = index_folder(tmp_path / "archive", tmp_path / "first", four_d="first")
    assert [e["volume"] for e in first] == [0]
    np.testing.assert_array_equal(load(tmp_path / "first", first[0]), expected[0])
    _, mean, _ = index_folder(tmp_path / "archive", tmp_path / "mean", four_d="mean")
    assert [e["volume"] for e in mean] == ["mean"]
    np.testing.assert_allclose(load(tmp_path / "mean", mean[0]), np.mean(expected, axis=0))
    summary, skipped, report = index_folder(tmp_path / "archive", tmp_path / "skip", four_d="skip")
    assert skipped == [] and summary.skipped == {"time_series_skipped": 1}
    with pytest.raises(ValueError, match="four_d must be one of"):
        index_archive(str(tmp_path / "archive"), str(tmp_path / "x.json"), four_d="all", salt="s")


def test_a_long_run_is_capped_evenly(tmp_path):
    write_time_series(tmp_path / "archive", volumes=5)
    summary, entries, _ = index_folder(tmp_path / "archive", tmp_path / "out", max_volumes_per_series=3)
    assert [e["volume"] for e in entries] == [0, 2, 4] and summary.volumes == 3


def test_a_volume_short_is_frames_inconsistent_never_duplicate_slice(tmp_path):
    write_time_series(tmp_path / "archive")
    next((tmp_path / "archive" / "t2").iterdir()).unlink()
    summary, entries, report = index_folder(tmp_path / "archive", tmp_path / "out")
    assert entries == [] and summary.skipped == {"frames_inconsistent": 1}
    assert "incomplete" in report["skipped"][0]["detail"]


@pytest.mark.skipif(shutil.which("dcm2niix") is None, reason="dcm2niix is not installed (Debian package dcm2niix)")
def test_each_volume_matches_dcm2niix(tmp_path):
    write_time_series(tmp_path / "archive")
    _, entries, _ = index_folder(tmp_path / "archive", tmp_path / "ours")
    (tmp_path / "theirs").mkdir()
    subprocess.run(["dcm2niix", "-z", "y", "-b", "n", "-f", "vol", "-o", str(tmp_path / "theirs"),
                    str(tmp_path / "archive")], check=True, capture_output=True)
    theirs = nib.as_closest_canonical(nib.load(str(tmp_path / "theirs" / "vol.nii.gz")))
    assert theirs.shape[3] == 3
    for t, entry in enumerate(entries):
        ours = nib.as_closest_canonical(nib.load(str(tmp_path / "ours" / entry["image"])))
        np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-3)
        np.testing.assert_allclose(np.asarray(ours.dataobj), theirs.get_fdata()[..., t], atol=1e-3)


def test_a_series_exported_twice_is_one_volume_and_its_copies_are_reported(tmp_path):
    series = write_series(str(tmp_path / "archive" / "a"), count=COUNT, rows=8, columns=10)
    shutil.copytree(tmp_path / "archive" / "a", tmp_path / "archive" / "copy")
    summary, entries, report = index_folder(tmp_path / "archive", tmp_path / "out")
    assert summary.accepted == 1 and "volume" not in entries[0]
    assert summary.skipped == {"duplicate_instance": COUNT}
    np.testing.assert_array_equal(load(tmp_path / "out", entries[0]), series["volume"])


def test_pixel_identical_copies_with_new_instance_uids_are_one_series_not_time_points(tmp_path):
    """One series exported again in another transfer syntax with new instance UIDs: every slice has a copy with
    the same pixels; one copy is kept and the others reported, instead of rejecting the series as duplicate_slice."""
    series = write_series(str(tmp_path / "archive" / "a"), count=COUNT, rows=8, columns=10)
    shutil.copytree(tmp_path / "archive" / "a", tmp_path / "archive" / "copy")
    for path in (tmp_path / "archive" / "copy").iterdir():
        ds = pydicom.dcmread(path)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.compress(RLELossless)
        ds.save_as(path, enforce_file_format=True)
    summary, entries, report = index_folder(tmp_path / "archive", tmp_path / "out")
    assert summary.accepted == 1 and summary.skipped == {"duplicate_instance": COUNT}
    assert {s["detail"] for s in report["skipped"]} == {"a pixel-identical copy of another slice at the same "
                                                         "position (another SOP Instance UID)"}
    np.testing.assert_array_equal(load(tmp_path / "out", entries[0]), series["volume"])


def test_slices_that_an_anonymiser_gave_one_instance_uid_are_all_kept(tmp_path):
    """Copies were found by SOP Instance UID alone, so a series whose UIDs were collapsed lost every slice but
    one; different positions and pixels make them different images."""
    series = write_series(str(tmp_path / "archive"), count=COUNT, rows=8, columns=10)
    collapsed = generate_uid()
    for path in series["paths"]:
        rewrite(path, SOPInstanceUID=collapsed)
    summary, entries, _ = index_folder(tmp_path / "archive", tmp_path / "out")
    assert summary.accepted == 1 and summary.skipped == {}
    np.testing.assert_array_equal(load(tmp_path / "out", entries[0]), series["volume"])


def test_slices_at_one_position_with_different_pixels_are_duplicate_slices(tmp_path):
    write_series(str(tmp_path / "archive" / "a"), count=COUNT, rows=8, columns=10)
    shutil.copytree(tmp_path / "archive" / "a", tmp_path / "archive" / "copy")
    for path in (tmp_path / "archive" / "copy").iterdir():
        ds = pydicom.dcmread(path)
        ds.SOPInstanceUID = generate_uid()
        ds.PixelData = (ds.pixel_array + 1).astype(np.uint16).tobytes()
        ds.save_as(path, enforce_file_format=True)
    summary, entries, _ = index_folder(tmp_path / "archive", tmp_path / "out")
    assert entries == [] and summary.skipped == {"duplicate_slice": 1}


def test_slices_whose_instance_uids_were_emptied_are_not_copies_of_each_other(tmp_path):
    series = write_series(str(tmp_path / "archive"), count=COUNT, rows=8, columns=10)
    for path in series["paths"]:  # as some anonymisers leave them (the real CT of ../shared/data)
        rewrite(path, SOPInstanceUID="")
    summary, entries, _ = index_folder(tmp_path / "archive", tmp_path / "out")
    assert summary.accepted == 1 and summary.skipped == {}
    np.testing.assert_array_equal(load(tmp_path / "out", entries[0]), series["volume"])
