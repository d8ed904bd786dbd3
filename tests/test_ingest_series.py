"""Volumes built from DICOM series match the expected geometry, MONAI's ITK reader and dcm2niix."""

import glob
import os
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pydicom
import pytest
from monai.transforms import LoadImage
from pydicom.data import get_testdata_file
from pydicom.uid import JPEG2000Lossless, JPEGLosslessSV1, RLELossless

from monai_ssl.ingest import SeriesProblem, convert_series, read_file_record, series_geometry, validate_series
from tests.conftest import shared_path
from tests.dicom_factory import rewrite, write_series

SALT = "test-salt"
OBLIQUE = (0.9659258, 0.2588190, 0.0, -0.2588190 * 0.7071068, 0.9659258 * 0.7071068, 0.7071068)


def records_of(paths):
    return [read_file_record(p, SALT) for p in paths]


def itk_volume(folder):
    image = LoadImage(reader="ITKReader", image_only=True)(folder)
    return image.numpy(), image.affine.numpy()


@pytest.mark.parametrize(
    "orientation", [(1, 0, 0, 0, 1, 0), (0, 1, 0, 0, 0, -1), OBLIQUE], ids=["axial", "sagittal", "oblique"])
def test_volume_and_affine_match_the_expectation_and_monai_itk(tmp_path, orientation):
    series = write_series(str(tmp_path), orientation=orientation)
    volume, affine = convert_series(records_of(series["paths"]))
    np.testing.assert_array_equal(volume, series["volume"])
    np.testing.assert_allclose(affine, series["affine"], atol=1e-4)
    itk_data, itk_affine = itk_volume(str(tmp_path))
    np.testing.assert_array_equal(volume, itk_data)
    np.testing.assert_allclose(affine, itk_affine, atol=1e-4)


def test_sorting_is_geometric_not_by_name_or_instance_number(tmp_path):
    series = write_series(str(tmp_path), count=6)
    records = records_of(series["paths"])
    order, spacing = series_geometry(records)
    positions = [records[i]["position"][2] for i in order]
    assert positions == sorted(positions) and spacing == pytest.approx(2.5)
    by_instance = sorted(records, key=lambda r: pydicom.dcmread(r["path"]).InstanceNumber)
    assert [r["path"] for r in by_instance] != [records[i]["path"] for i in order]


def test_rescale_slope_and_intercept_give_hounsfield_units(tmp_path):
    series = write_series(str(tmp_path), rescale=(0.5, -1000.0))
    volume, _ = convert_series(records_of(series["paths"]))
    raw = np.stack([pydicom.dcmread(p).pixel_array for p in series["paths"]])
    assert volume.min() == raw.min() * 0.5 - 1000.0 and volume.max() == raw.max() * 0.5 - 1000.0
    np.testing.assert_array_equal(volume, series["volume"])


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless], ids=["rle", "jpeg2000"])
def test_compressed_series_decode_to_the_same_volume(tmp_path, syntax):
    # OpenJPEG's default wavelet levels need images of at least 64 x 64
    series = write_series(str(tmp_path), rows=64, columns=64, count=10, compress=syntax)
    assert pydicom.dcmread(series["paths"][0]).file_meta.TransferSyntaxUID == syntax
    volume, _ = convert_series(records_of(series["paths"]))
    np.testing.assert_array_equal(volume, series["volume"])


@pytest.mark.skipif(shutil.which("dcmcjpeg") is None, reason="dcmtk's dcmcjpeg is not installed (Debian package dcmtk)")
@pytest.mark.parametrize("bits", [12, 16])
def test_jpeg_lossless_process_14_from_dcmtk_decodes_to_the_same_volume(tmp_path, bits):
    """JPEG lossless, first-order prediction (1.2.840.10008.1.2.4.70), the commonest syntax of PACS exports,
    encoded by a real encoder: dcmtk's ``dcmcjpeg`` (its default, ``--encode-lossless-sv1``)."""
    series = write_series(str(tmp_path / "raw"), rows=24, columns=20, count=6, modality="MR")
    encoded = []
    for path in series["paths"]:
        if bits == 12:  # CT and older MR store 12 bits
            rewrite(path, BitsStored=12, HighBit=11)
        target = str(tmp_path / os.path.basename(path))
        subprocess.run(["dcmcjpeg", "--encode-lossless-sv1", path, target], check=True, capture_output=True)
        encoded.append(target)
    assert pydicom.dcmread(encoded[0]).file_meta.TransferSyntaxUID == JPEGLosslessSV1
    volume, _ = convert_series(records_of(encoded))
    np.testing.assert_array_equal(volume, series["volume"])


@pytest.mark.parametrize("name", ["MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm", "MR_small_RLE.dcm"])
def test_pydicom_reference_files_in_compressed_syntaxes(tmp_path, name):
    """pydicom's MR_small in other transfer syntaxes, made into 2-slice series, decode to the same pixels."""
    reference = pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array.astype(np.float32)
    paths = []
    for k in range(2):
        path = str(tmp_path / f"{k}.dcm")
        shutil.copy(get_testdata_file(name), path)
        ds = pydicom.dcmread(path)
        position = np.asarray(ds.ImagePositionPatient, float) + k * np.cross(
            np.asarray(ds.ImageOrientationPatient[:3], float), np.asarray(ds.ImageOrientationPatient[3:], float))
        rewrite(path, ImagePositionPatient=[float(v) for v in position], SeriesInstanceUID="1.2.3.4")
        paths.append(path)
    volume, _ = convert_series(records_of(paths))
    slope = float(pydicom.dcmread(paths[0]).get("RescaleSlope", 1))
    intercept = float(pydicom.dcmread(paths[0]).get("RescaleIntercept", 0))
    np.testing.assert_array_equal(volume[..., 0], reference.T * slope + intercept)


def test_real_jpeg2000_ct_series_matches_monai_itk():
    folder = shared_path("ct", "example_ct_dicom")
    records = records_of(sorted(glob.glob(str(folder / "*"))))
    validate_series(records, ["CT"], min_slices=10)
    volume, affine = convert_series(records)
    itk_data, itk_affine = itk_volume(str(folder))
    np.testing.assert_array_equal(volume, itk_data)
    np.testing.assert_allclose(affine, itk_affine, atol=1e-4)
    assert volume.min() < -900  # air in HU: the rescale was applied


@pytest.mark.skipif(shutil.which("dcm2niix") is None, reason="dcm2niix is not installed (Debian package dcm2niix)")
@pytest.mark.parametrize("orientation", [(1, 0, 0, 0, 1, 0), OBLIQUE], ids=["axial", "oblique"])
def test_matches_dcm2niix_after_reorienting_both(tmp_path, orientation):
    series = write_series(str(tmp_path / "dicom"), orientation=orientation)
    volume, affine = convert_series(records_of(series["paths"]))
    (tmp_path / "out").mkdir()
    subprocess.run(["dcm2niix", "-z", "y", "-b", "n", "-f", "vol", "-o", str(tmp_path / "out"),
                    str(tmp_path / "dicom")], check=True, capture_output=True)
    theirs = nib.as_closest_canonical(nib.load(str(tmp_path / "out" / "vol.nii.gz")))
    ours = nib.as_closest_canonical(nib.Nifti1Image(volume, affine))
    np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-3)
    np.testing.assert_allclose(np.asarray(ours.dataobj), theirs.get_fdata(), atol=1e-3)


def test_validation_reasons_are_specific(tmp_path):
    series = write_series(str(tmp_path), count=8)
    records = records_of(series["paths"])
    validate_series(records, ["CT"], min_slices=8)
    cases = {
        "too_few_slices": (records, {"min_slices": 9}),
        "modality_excluded": (records, {"modalities": ["MR"]}),
        "missing_slice": ([r for r in records if r["position"][2] != 30 + 3 * 2.5], {}),
        "duplicate_slice": (records + [dict(records[0], path="copy")], {}),
    }
    for reason, (subset, options) in cases.items():
        with pytest.raises(SeriesProblem) as problem:
            validate_series(subset, options.get("modalities", ["CT"]), options.get("min_slices", 2))
        assert problem.value.reason == reason
