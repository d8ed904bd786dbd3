"""Siemens mosaic DICOM (fMRI, diffusion): each mosaic image is tiled into its slices with the geometry of the
un-tiled volume; a run of mosaics is a 4D series; the result matches dcm2niix."""

import shutil
import subprocess

import nibabel as nib
import numpy as np
import pydicom
import pytest

from monai_ssl.ingest import read_file_record
from tests.dicom_factory import index_folder, write_mosaic


@pytest.mark.parametrize("normal_sign", [1, -1])
@pytest.mark.parametrize("tiles", [4, 5, 9])
def test_a_mosaic_becomes_its_volume_with_the_untiled_geometry(tmp_path, tiles, normal_sign):
    mosaic = write_mosaic(str(tmp_path / "archive"), tiles=tiles, normal_sign=normal_sign,
                          orientation=(0.8, 0.6, 0, -0.6, 0.8, 0))
    summary, entries, report = index_folder(tmp_path / "archive", tmp_path / "out")
    assert summary.accepted == 1 and report["skipped"] == [] and entries[0]["num_slices"] == tiles
    image = nib.load(str(tmp_path / "out" / entries[0]["image"]))
    np.testing.assert_array_equal(np.asarray(image.dataobj), mosaic["volumes"][0])
    np.testing.assert_allclose(image.affine, mosaic["affine"], atol=1e-4)


def test_the_file_record_lists_one_slice_per_tile(tmp_path):
    mosaic = write_mosaic(str(tmp_path), tiles=5, rows=8, columns=10)
    record = read_file_record(mosaic["paths"][0], salt="s")
    assert record["mosaic_tiles"] == 3 and [s["tile"] for s in record["slices"]] == [0, 1, 2, 3, 4]
    assert {(s["rows"], s["columns"]) for s in record["slices"]} == {(8, 10)}
    steps = np.diff([s["position"] for s in record["slices"]], axis=0)
    np.testing.assert_allclose(steps, [[0, 0, 3.0]] * 4)  # the slice spacing along the slice normal


def test_a_run_of_mosaics_is_a_4d_series(tmp_path):
    mosaic = write_mosaic(str(tmp_path / "archive"), volumes=3)
    summary, entries, _ = index_folder(tmp_path / "archive", tmp_path / "out")
    assert summary.accepted == 1 and [e["volume"] for e in entries] == [0, 1, 2]
    for entry, expected in zip(entries, mosaic["volumes"]):
        np.testing.assert_array_equal(np.asarray(nib.load(str(tmp_path / "out" / entry["image"])).dataobj), expected)


def test_a_tile_count_that_does_not_fit_the_image_is_mosaic_inconsistent(tmp_path):
    # 10 tiles need 4 per side; an 8 x 10 tile grid of 3 per side cannot hold them
    write_mosaic(str(tmp_path / "archive"), tiles=9, mosaic_tiles=10)
    summary, entries, report = index_folder(tmp_path / "archive", tmp_path / "out")
    assert entries == [] and summary.skipped == {"mosaic_inconsistent": 1}
    assert "do not divide" in report["skipped"][0]["detail"]


def test_a_mosaic_without_its_csa_header_is_reported_not_stacked(tmp_path):
    mosaic = write_mosaic(str(tmp_path / "archive"))
    ds = pydicom.dcmread(mosaic["paths"][0])
    del ds[0x00291010]
    ds.save_as(mosaic["paths"][0])
    summary, entries, _ = index_folder(tmp_path / "archive", tmp_path / "out")
    assert entries == [] and summary.skipped == {"mosaic_unreadable": 1}


@pytest.mark.skipif(shutil.which("dcm2niix") is None, reason="dcm2niix is not installed (Debian package dcm2niix)")
def test_each_volume_matches_dcm2niix(tmp_path):
    write_mosaic(str(tmp_path / "archive"), tiles=5, volumes=2, orientation=(0.8, 0.6, 0, -0.6, 0.8, 0))
    _, entries, _ = index_folder(tmp_path / "archive", tmp_path / "ours")
    (tmp_path / "theirs").mkdir()
    subprocess.run(["dcm2niix", "-z", "y", "-b", "n", "-f", "vol", "-o", str(tmp_path / "theirs"),
                    str(tmp_path / "archive")], check=True, capture_output=True)
    theirs = nib.as_closest_canonical(nib.load(str(tmp_path / "theirs" / "vol.nii.gz")))
    assert theirs.shape[3] == 2 and sorted(theirs.shape[:3]) == [5, 8, 10]  # dcm2niix un-tiled it too
    for t, entry in enumerate(entries):
        ours = nib.as_closest_canonical(nib.load(str(tmp_path / "ours" / entry["image"])))
        np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-3)
        np.testing.assert_allclose(np.asarray(ours.dataobj), theirs.get_fdata()[..., t], atol=1e-3)


def test_one_mosaic_in_several_transfer_syntaxes_is_one_volume(tmp_path):
    from pydicom.uid import DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

    mosaic = write_mosaic(str(tmp_path / "archive" / "original"))
    syntaxes = [ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, RLELossless]
    for number, syntax in enumerate(syntaxes):
        copy = pydicom.dcmread(mosaic["paths"][0])
        if syntax.is_compressed:
            copy.compress(syntax, generate_instance_uid=False)  # the same instance, re-encoded
        else:
            copy.file_meta.TransferSyntaxUID = syntax
        (tmp_path / "archive" / f"copy{number}").mkdir()
        copy.save_as(str(tmp_path / "archive" / f"copy{number}" / "m.dcm"), enforce_file_format=True)
    summary, entries, _ = index_folder(tmp_path / "archive", tmp_path / "out")
    assert summary.accepted == 1 and summary.skipped == {"duplicate_instance": len(syntaxes)}
    assert entries[0]["num_slices"] == 5  # not 4 x 5 slices, not a 4-volume series
    np.testing.assert_array_equal(np.asarray(nib.load(str(tmp_path / "out" / entries[0]["image"])).dataobj),
                                  mosaic["volumes"][0])
