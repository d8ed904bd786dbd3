"""The brain-region model shipped in bundles/brain_mri_segmentation/models/model.pt, tried as a new user would: a
copy of the bundle outside the repository, `inference.json` with nothing but `--dataset_dir`, on an unseen IXI T1
(scored against its DLMUSE labels, a silver standard) and on an OpenNeuro T1w from another site."""

import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.transforms import LoadImage

from monai_ssl.bundle import default_labels, segmentation_label_mapping
from tests.conftest import shared_path
from tests.helpers import SEGMENTATION

MODELS = SEGMENTATION.parent / "models"
NAMES = default_labels()["label_names"]


def test_model_pt_is_a_plain_state_dict_of_the_inference_network():
    state = torch.load(MODELS / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) and v.dtype == torch.float32 for v in state.values())
    parser = ConfigParser()
    parser.read_config(str(SEGMENTATION / "inference.json"))
    parser.get_parsed_content("network_def").load_state_dict(state)  # strict: every key and shape
    assert sum(p.stat().st_size for p in MODELS.iterdir()) <= 10_000_000


@pytest.fixture(scope="module")
def bundle_copy(tmp_path_factory):
    """The bundle folder alone, outside the repository (as after a download)."""
    folder = tmp_path_factory.mktemp("downloaded") / "brain_mri_segmentation"
    shutil.copytree(SEGMENTATION.parent, folder, ignore=shutil.ignore_patterns("outputs"))
    return folder


def segment(bundle_copy, scan, tmp_path):
    """``inference.json`` with only --dataset_dir (and an output folder, to keep the copy clean)."""
    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / scan.name).symlink_to(scan)
    result = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file",
                             str(bundle_copy / "configs" / "inference.json"), "--dataset_dir", str(scans),
                             "--output_dir", str(tmp_path / "out")], capture_output=True, text=True, cwd=tmp_path,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (prediction,) = (tmp_path / "out" / "predictions").rglob("*_seg.nii.gz")
    written, source = nib.load(prediction), nib.load(scan)
    assert written.shape[:3] == source.shape[:3] and np.allclose(written.affine, source.affine, atol=1e-4)
    return np.asarray(written.dataobj).squeeze().astype(np.int64)


def test_segments_an_unseen_ixi_scan_close_to_its_silver_standard(bundle_copy, tmp_path):
    subject = shared_path("ixi_dlmuse", "eval", "IXI034-HH-1260")
    predicted = segment(bundle_copy, subject / "IXI034-HH-1260_T1.nii.gz", tmp_path)
    atlas = LoadImage(image_only=True, ensure_channel_first=True)(str(subject / "IXI034-HH-1260_T1_DLMUSE.nii.gz"))
    (mapping,) = segmentation_label_mapping(NAMES, default_labels()["label_sources"])
    truth = np.asarray(mapping({"label": atlas})["label"]).squeeze().astype(np.int64)
    dice = [2 * np.sum((predicted == v) & (truth == v)) / (np.sum(predicted == v) + np.sum(truth == v))
            for v in NAMES.values() if v]
    assert np.mean(dice) >= 0.80 and min(dice) >= 0.6, dict(zip(list(NAMES)[1:], np.round(dice, 3)))


def test_segments_a_t1w_of_another_site(bundle_copy, tmp_path):
    scan = shared_path("openneuro_t1w", "ds000011", "sub-01_T1w.nii.gz")
    predicted = segment(bundle_copy, scan, tmp_path)
    counts = {name: int(np.sum(predicted == value)) for name, value in NAMES.items()}
    # every region found, in plausible proportions (2 mm voxels: hippocampus and amygdala are about 1,000)
    assert all(count >= 200 for count in counts.values()), counts
    assert counts["cerebral_white"] > counts["lateral_ventricles"] and counts["cortical_grey"] > counts["brainstem"]
