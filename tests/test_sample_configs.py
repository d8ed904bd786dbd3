"""The sample configs in sample_configs/ run as the README says (from the repository root)."""

import os

import pytest
import torch
from monai.bundle import ConfigWorkflow

from tests.conftest import shared_path
from tests.helpers import PRETRAINING, REPO, SEGMENTATION, TINY_PRETRAINING, TINY_SEGMENTATION, outputs

SAMPLES = REPO / "sample_configs"


@pytest.fixture(autouse=True)
def from_repository_root(monkeypatch):
    monkeypatch.chdir(REPO)


def run(config_files, **overrides) -> ConfigWorkflow:
    # the sample configs give their data: no demo phantoms
    flow = ConfigWorkflow(config_file=[str(f) for f in config_files], workflow_type="train",
                          **{**overrides, "demo": False})
    flow.initialize()
    assert flow.check_properties() == []
    flow.run()
    flow.finalize()
    return flow


def test_brats_flair_t1c_pretraining_then_segmentation(tmp_path):
    shared_path("brats_deepmedic")
    pretraining = tmp_path / "pretraining"
    run([PRETRAINING / "train.json", SAMPLES / "brats_flair_t1c_pretraining.json"],
        **{**TINY_PRETRAINING, **outputs(pretraining), "epoch_length": 1, "samples_per_volume": 1})
    checkpoint = torch.load(pretraining / "models" / "pretext_checkpoint.pt", weights_only=True)
    assert checkpoint["config"]["network"]["args"]["in_channels"] == 2
    assert any(t["args"].get("mode") == "channels" for t in checkpoint["config"]["tasks"])

    flow = run([SEGMENTATION / "train.json", SAMPLES / "brats_flair_t1c_segmentation.json"],
               **{**TINY_SEGMENTATION, **outputs(tmp_path / "segmentation"), "max_epochs": 1,
                  "pretrained_path": str(pretraining / "models" / "model.pt")})
    metrics = flow.parser.get_parsed_content("validate#evaluator").state.metrics
    assert {"val_dice_necrosis", "val_dice_oedema", "val_dice_non_enhancing", "val_dice_enhancing",
            "val_dice_whole_tumour", "val_dice_tumour_core", "val_dice_enhancing_tumour"} <= set(metrics)
    assert len(flow.parser.get_parsed_content("files")[0]) == 1  # num_labelled


def test_ct_pretraining(tmp_path):
    shared_path("ct", "example_ct.nii.gz")
    flow = run([PRETRAINING / "train.json", SAMPLES / "ct_pretraining.json"],
               **{**TINY_PRETRAINING, **outputs(tmp_path), "epoch_length": 1})
    assert flow.parser.get_parsed_content("modality") == "CT"
    assert os.path.isfile(tmp_path / "models" / "model.pt")


def test_pretrain_my_folder_needs_a_real_folder(tmp_path):
    with pytest.raises(Exception) as error:
        run([PRETRAINING / "train.json", SAMPLES / "pretrain_my_folder.json"], **TINY_PRETRAINING)
    assert "is not a folder" in str(error.value.__cause__ or error.value)
    from monai_ssl.data import write_phantom_dataset

    write_phantom_dataset(str(tmp_path / "scans"), num_subjects=2, shape=(40, 40, 40))
    run([PRETRAINING / "train.json", SAMPLES / "pretrain_my_folder.json"],
        **{**TINY_PRETRAINING, "dataset_dir": str(tmp_path / "scans"), **outputs(tmp_path / "out"),
           "cache_dir": str(tmp_path / "cache")})
    assert list((tmp_path / "cache").iterdir())  # the disk cache was filled


def test_brain_mri_pool_pretraining_scores_held_out_volumes(tmp_path):
    """The pool the shipped encoder was pretrained on: label maps and scans, held-out scores after each epoch."""
    shared_path("synthseg_label_maps")
    shared_path("brats_deepmedic")
    import json

    flow = run([PRETRAINING / "train.json", SAMPLES / "brain_mri_pool_pretraining.json"],
               **{**TINY_PRETRAINING, **outputs(tmp_path), "epoch_length": 1, "samples_per_volume": 1,
                  "max_epochs": 2, "val_interval": 1, "spacing": [4.0, 4.0, 4.0], "resume": False})
    files = flow.parser.get_parsed_content("train#files")
    assert sum("label_map" in f for f in files) == 15 and sum("image" in f for f in files) == 6
    paths = lambda entries: {os.path.realpath(next(iter(e.values()))) for e in entries}  # noqa: E731
    held_out = paths(flow.parser.get_parsed_content("validate#files"))
    assert len(held_out) == 9 and not held_out & paths(files)  # never trained on
    scores = json.loads((tmp_path / "pretext_scores.json").read_text())
    assert [e["epoch"] for e in scores["history"]] == [1, 2]
    assert set(scores["chance"]) == {"jigsaw_accuracy", "rotation_accuracy", "colorization_mse_ratio",
                                     "relative_position_accuracy"}
