"""Real scanner files shipped with nibabel's test data: two Siemens diffusion mosaics (b=0 and b=1000, one series)
and a Philips enhanced multi-frame MPRAGE. Each becomes the volume dcm2niix makes of it."""

import gzip
import os
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pytest

from tests.dicom_factory import index_folder

DATA = os.path.join(os.path.dirname(nib.__file__), "nicom", "tests", "data")
# each volume's shape as converted (columns, rows, slices), before any reorientation
FILES = {"siemens_dwi_0": (128, 128, 48), "siemens_dwi_1000": (128, 128, 48), "philips_mprage": (256, 256, 176)}
pytestmark = pytest.mark.skipif(not all(os.path.exists(os.path.join(DATA, f"{n}.dcm.gz")) for n in FILES),
                                reason=f"nibabel's real DICOM test files are not installed under {DATA}")


def unpack(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        with gzip.open(os.path.join(DATA, f"{name}.dcm.gz")) as source, open(folder / f"{name}.dcm", "wb") as target:
            shutil.copyfileobj(source, target)
    return folder


def test_two_diffusion_mosaics_of_one_series_are_a_4d_series_of_their_b_values(tmp_path):
    summary, entries, _ = index_folder(unpack(tmp_path / "dwi", "siemens_dwi_0", "siemens_dwi_1000"), tmp_path / "out")
    assert summary.accepted == 1 and summary.skipped == {}
    assert [(e["volume"], e["shape"]) for e in entries] == [(0, [128, 128, 48]), (1, [128, 128, 48])]


@pytest.mark.skipif(shutil.which("dcm2niix") is None, reason="dcm2niix is not installed (Debian package dcm2niix)")
@pytest.mark.parametrize("name", ["siemens_dwi_1000", "philips_mprage"])
def test_the_volume_and_geometry_are_dcm2niix_s(tmp_path, name):
    archive = unpack(tmp_path / "archive", name)
    summary, entries, _ = index_folder(archive, tmp_path / "ours")
    assert summary.accepted == 1 and entries[0]["shape"] == list(FILES[name])
    (tmp_path / "theirs").mkdir()
    subprocess.run(["dcm2niix", "-z", "y", "-b", "n", "-f", "vol", "-o", str(tmp_path / "theirs"), str(archive)],
                   check=True, capture_output=True)
    ours = nib.as_closest_canonical(nib.load(str(tmp_path / "ours" / entries[0]["image"])))
    theirs = nib.as_closest_canonical(nib.load(str(tmp_path / "theirs" / "vol.nii.gz")))
    np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-3)
    np.testing.assert_allclose(np.asarray(ours.dataobj), theirs.get_fdata(), atol=1e-3)
