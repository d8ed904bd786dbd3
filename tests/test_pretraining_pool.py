"""Pretraining pools that mix scans and anatomical label maps (synthesised into new scans at every draw)."""

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_ssl import PretextModel
from monai_ssl.bundle import pretext_dataset, training_files, validation_files
from monai_ssl.data import make_phantom
from tests.helpers import SMALL_TASKS, small_unet


@pytest.fixture()
def pool(tmp_path):
    image, labels = make_phantom(0, shape=(40, 40, 40))
    nib.save(nib.Nifti1Image(np.asarray(image[0], dtype=np.float32), np.eye(4)), str(tmp_path / "scan.nii.gz"))
    nib.save(nib.Nifti1Image(np.asarray(labels[0], dtype=np.int16), np.eye(4)), str(tmp_path / "anatomy.nii.gz"))
    datalist = {"training": [{"image": "scan.nii.gz"}, {"label_map": "anatomy.nii.gz"}],
                "validation": [{"label_map": "anatomy.nii.gz"}]}
    (tmp_path / "pool.json").write_text(json.dumps(datalist))
    return tmp_path


def test_label_maps_become_new_scans_at_every_draw(pool):
    files = training_files(None, str(pool / "pool.json"), str(pool))
    assert files == [{"image": str(pool / "scan.nii.gz")}, {"label_map": str(pool / "anatomy.nii.gz")}]
    model = PretextModel(small_unet(), SMALL_TASKS)
    dataset = pretext_dataset(files, model, "MR", None, (32, 32, 32), samples_per_volume=2)
    assert len(dataset) == 2
    synthetic = dataset[1]
    assert len(synthetic) == 2 and all("label_map" not in s and "rotation_input" in s for s in synthetic)
    again = dataset[1]
    assert not torch.equal(synthetic[0]["colorization_target"], again[0]["colorization_target"])
    assert 0 <= float(synthetic[0]["colorization_target"].min()) and float(synthetic[0]["colorization_target"].max()) <= 1
    assert validation_files(str(pool / "pool.json")) == [{"label_map": str(pool / "anatomy.nii.gz")}]
    assert validation_files(None) == []


def test_bad_pools_say_what_to_fix(pool):
    (pool / "bad.json").write_text(json.dumps({"training": [{"image": "scan.nii.gz", "label_map": "anatomy.nii.gz"}]}))
    with pytest.raises(ValueError, match="exactly one of 'image'"):
        training_files(None, str(pool / "bad.json"), str(pool))
    model = PretextModel(small_unet(), SMALL_TASKS)
    with pytest.raises(ValueError, match="the datalist has no training entries"):
        pretext_dataset([], model, "MR", None, (32, 32, 32))
    assert len(pretext_dataset([], model, "MR", None, (32, 32, 32), allow_empty=True)) == 0
