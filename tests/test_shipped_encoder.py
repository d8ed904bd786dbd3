"""The pretrained brain-MRI encoder shipped in the pretext_pretraining bundle: Zoo format, loadable, learnt."""

import logging
import os

import pytest
import torch
from monai.bundle import ConfigParser

from monai_ssl import PretextModel, load_pretrained
from monai_ssl.bundle import shipped_encoder_path
from monai_ssl.evaluation import score_checkpoint
from tests.conftest import shared_path
from tests.helpers import PRETRAINING, REPO, SEGMENTATION

MODELS = REPO / "bundles" / "pretext_pretraining" / "models"


def bundle_network(config_dir, **overrides):
    parser = ConfigParser()
    parser.read_config(str(config_dir / "train.json"))
    for key, value in overrides.items():
        parser[key] = value
    return parser.get_parsed_content("network_def")


def test_model_pt_is_a_plain_state_dict_of_network_def_within_10_mb():
    state = torch.load(MODELS / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) and v.dtype == torch.float32 for v in state.values())
    bundle_network(PRETRAINING).load_state_dict(state)  # strict: every key and shape
    total = sum(os.path.getsize(MODELS / name) for name in os.listdir(MODELS))
    assert total <= 10 * 2**20


def test_continuation_checkpoint_restores_float32_weights_and_heads():
    """MONAI's CheckpointLoader resumes from it: weights in float32, trainer counters; no optimizer or random
    state, which start afresh."""
    from ignite.engine import Engine
    from monai.handlers import CheckpointLoader

    from monai_ssl.checkpoint import resumable_objects
    from monai_ssl.engine import pretext_save_dict

    path = str(MODELS / "pretext_checkpoint.pt")
    checkpoint = torch.load(path, weights_only=True)
    assert set(checkpoint) == {"model", "heads", "config", "trainer"} and checkpoint["trainer"]["iteration"] > 0
    model = PretextModel(bundle_network(PRETRAINING), checkpoint["config"]["tasks"])
    engine = Engine(lambda *_: None)
    engine.state.max_epochs = 10**6
    save_dict = pretext_save_dict(model, torch.optim.AdamW(model.parameters()), engine)
    CheckpointLoader(path, resumable_objects(save_dict, path))(engine)
    assert engine.state.iteration == checkpoint["trainer"]["iteration"]
    assert engine.state.epoch == checkpoint["trainer"]["iteration"] // checkpoint["trainer"]["epoch_length"]
    assert all(p.dtype == torch.float32 for p in model.parameters())
    shipped = torch.load(MODELS / "model.pt", weights_only=True)
    for key, value in model.network.state_dict().items():
        torch.testing.assert_close(value, shipped[key], rtol=1e-3, atol=1e-3)  # float16 storage of the same weights


def test_segmentation_bundle_finds_it_without_a_path_and_adapts_to_flair_t1c(caplog):
    assert shipped_encoder_path(str(SEGMENTATION.parent)) == os.path.normpath(MODELS / "model.pt")
    network = bundle_network(SEGMENTATION, in_channels=2, label_names={"background": 0, "tumour": 1})
    with caplog.at_level(logging.INFO):
        report = load_pretrained(network, shipped_encoder_path(str(SEGMENTATION.parent)))
    assert len(report.adapted) == 2 and not [k for k, r in report.skipped.items() if r.startswith("shape")]


def test_found_after_a_download_of_both_bundles_into_one_folder(tmp_path):
    """`python -m monai.bundle download` puts each bundle in a folder named as asked: the segmentation bundle finds
    the pretraining bundle beside it by its metadata, whatever the folder's name."""
    import shutil

    shutil.copytree(SEGMENTATION.parent, tmp_path / "brain_mri_segmentation")
    shutil.copytree(MODELS.parent, tmp_path / "monai_ssl_pretext_pretraining")
    found = shipped_encoder_path(str(tmp_path / "brain_mri_segmentation"))
    assert found == str(tmp_path / "monai_ssl_pretext_pretraining" / "models" / "model.pt")


def test_a_missing_encoder_says_what_to_pass(tmp_path):
    network = bundle_network(SEGMENTATION, in_channels=1, label_names={"background": 0, "brain": 1})
    with pytest.raises(FileNotFoundError, match="pass --pretrained_path with a monai-ssl checkpoint"):
        load_pretrained(network, str(tmp_path / "absent" / "model.pt"))


def test_the_shipped_tasks_are_learnt_on_held_out_mri():
    """The documented targets (bundle docs, Performance): rotation >= 0.90, relative position >= 0.60, jigsaw
    >= 0.80 (chance 0.10, 0.04, 0.01) and colorization under half the identity's error, on the real pool's 12
    validation volumes (T1 of subjects outside the pool, training side: the volumes of the shipping rule)."""
    from monai_ssl.bundle import validation_files

    shared_path("ixi_dlmuse")
    shared_path("openneuro_t1w")
    files = validation_files(str(REPO / "sample_configs" / "brain_mri_real_pool_datalist.json"))
    assert len(files) == 12
    scores = score_checkpoint(str(MODELS / "pretext_checkpoint.pt"), files, samples_per_volume=4)  # 48 crops
    assert scores["rotation_accuracy"] >= 0.9
    assert scores["relative_position_accuracy"] >= 0.6
    assert scores["jigsaw_accuracy"] >= 0.8
    assert scores["colorization_mse_ratio"] < 0.5


def test_tasks_on_tumour_mri_of_another_domain():
    """FLAIR and T1c of a BraTS subject outside the pool (z-scored tumour MRI, unlike the pool's T1): documented as
    measured, rotation 0.84 (under its 0.90 target here), relative position 0.69, jigsaw 1.00, colorization 0.06."""
    subject = shared_path("brats_deepmedic", "validation", "brats_2013_pat0003_1")
    files = [{"image": str(subject / "Flair_subtrMeanDivStd.nii.gz")}, {"image": str(subject / "T1c_subtrMeanDivStd.nii.gz")}]
    scores = score_checkpoint(str(MODELS / "pretext_checkpoint.pt"), files, samples_per_volume=16)  # 32 crops
    assert scores["rotation_accuracy"] >= 0.75
    assert scores["relative_position_accuracy"] >= 0.6
    assert scores["jigsaw_accuracy"] >= 0.8
    assert scores["colorization_mse_ratio"] < 0.5
