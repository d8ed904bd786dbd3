import os

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow
from monai.networks.nets import UNet

from monai_ssl.data import PHANTOM_LABEL_NAMES
from monai_ssl.networks import get_adapter

from tests.helpers import (
    PRETRAINING,
    SEGMENTATION,
    TINY_NETWORK,
    TINY_PRETRAINING,
    TINY_SEGMENTATION,
    bundle_command,
    outputs,
    run_cli,
    write_phantom_images,
)

TRAIN = str(SEGMENTATION / "train.json")


def expected_load_summary() -> str:
    """The load report of the tiny bundle UNet: every encoder tensor copied, every decoder tensor skipped."""
    network = UNet(3, 1, 4, channels=TINY_NETWORK["network_def#channels"], strides=TINY_NETWORK["network_def#strides"],
                   num_res_units=TINY_NETWORK["network_def#num_res_units"])
    adapter = get_adapter(network)
    encoder = sum(adapter.is_encoder_key(k) for k in network.state_dict())
    decoder = len(network.state_dict()) - encoder
    return f"load_pretrained: loaded {encoder} pretrained tensors; skipped {decoder} ({decoder} decoder, excluded by encoder_only)"


def run(config_files, output_dir, workflow_type="train", **overrides) -> ConfigWorkflow:
    flow = ConfigWorkflow(config_file=config_files, workflow_type=workflow_type,
                          **{**outputs(output_dir), **TINY_SEGMENTATION, **overrides})
    flow.initialize()
    assert flow.check_properties() == []
    flow.run()
    flow.finalize()
    return flow


@pytest.fixture(scope="module")
def pretrained_model(tmp_path_factory) -> str:
    output_dir = tmp_path_factory.mktemp("pretraining")
    flow = ConfigWorkflow(config_file=str(PRETRAINING / "train.json"), workflow_type="train",
                          **outputs(output_dir), **TINY_PRETRAINING)
    flow.initialize()
    flow.run()
    return str(output_dir / "models" / "model.pt")


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory, pretrained_model):
    output_dir = tmp_path_factory.mktemp("fine_tuned")
    return run(TRAIN, output_dir, use_pretrained=True, pretrained_path=pretrained_model), output_dir


def test_fine_tuning_logs_the_tensors_loaded_from_pretraining(tmp_path, pretrained_model, capfd):
    run(TRAIN, tmp_path, use_pretrained=True, pretrained_path=pretrained_model, max_epochs=1)
    assert expected_load_summary() in capfd.readouterr().out  # the bundle's logging.conf logs to stdout


def test_validation_reports_dice_per_class_and_saves_the_best_model(fine_tuned):
    flow, output_dir = fine_tuned
    metrics = flow.parser.get_parsed_content("validate#evaluator").state.metrics
    assert set(metrics) == {"val_mean_dice", "val_dice_brain", "val_dice_ventricles", "val_dice_lesion"}
    # the key metric is the mean over the foreground classes of the per-class Dice, each over the same subjects
    per_class = [metrics[f"val_dice_{name}"] for name in ("brain", "ventricles", "lesion")]
    assert metrics["val_mean_dice"] == pytest.approx(sum(per_class) / 3, abs=1e-6)
    assert (output_dir / "models" / "model.pt").is_file()


def test_training_steps_are_guarded_against_non_finite_gradients(fine_tuned):
    flow, _ = fine_tuned
    trainer = flow.parser.get_parsed_content("train#trainer")
    assert trainer.state.skipped_steps == 0  # NonFiniteGradientGuard counts them; 32³ crops keep 8³ at the bottom
    assert all(torch.isfinite(p).all() for p in flow.parser.get_parsed_content("network_def").parameters())


def test_num_labelled_keeps_the_first_subjects(tmp_path):
    flow = ConfigWorkflow(config_file=TRAIN, workflow_type="train", **outputs(tmp_path), num_labelled=1, demo=True)
    flow.initialize()
    train, validation = flow.parser.get_parsed_content("files")
    assert [t["image"].split("/")[-1] for t in train] == ["phantom_000_image.nii.gz"] and len(validation) == 3
    bad = ConfigWorkflow(config_file=TRAIN, workflow_type="train", **outputs(tmp_path), num_labelled=5, demo=True)
    with pytest.raises(RuntimeError) as error:  # the settings are checked in initialize, before training
        bad.initialize()
    assert "num_labelled must be between 1 and 1" in str(error.value.__cause__)


def test_frozen_encoder_warm_up_is_configurable(tmp_path):
    """--freeze_encoder_epochs 1 of 2: the encoder is unchanged by epoch 1 and trained in epoch 2."""
    from ignite.engine import Events

    flow = ConfigWorkflow(config_file=TRAIN, workflow_type="train",
                          **{**outputs(tmp_path), **TINY_SEGMENTATION, "freeze_encoder_epochs": 1, "max_epochs": 2,
                             "val_interval": 2})
    flow.initialize()
    network = flow.parser.get_parsed_content("network_def")
    adapter = get_adapter(network)
    encoder = lambda: {k: v.clone() for k, v in network.state_dict().items() if adapter.is_encoder_key(k)}  # noqa: E731
    snapshots = [encoder()]
    flow.parser.get_parsed_content("train#trainer").add_event_handler(Events.EPOCH_COMPLETED,
                                                                      lambda _: snapshots.append(encoder()))
    flow.run()
    assert len(snapshots) == 3
    assert all(torch.equal(v, snapshots[0][k]) for k, v in snapshots[1].items())
    assert any(not torch.equal(v, snapshots[1][k]) for k, v in snapshots[2].items())


def test_evaluate_and_inference_write_segmentations_in_the_input_geometry(fine_tuned):
    _, output_dir = fine_tuned
    evaluation = run([TRAIN, str(SEGMENTATION / "evaluate.json")], output_dir)
    assert "val_mean_dice" in evaluation.parser.get_parsed_content("validate#evaluator").state.metrics
    assert (output_dir / "eval" / "metrics.csv").is_file()
    # inference.json stands alone, as the Model Zoo runs it
    run(str(SEGMENTATION / "inference.json"), output_dir, workflow_type="infer")
    for index in (1, 2, 3):
        source = nib.load(str(output_dir / "demo_data" / f"phantom_{index:03d}_image.nii.gz"))
        prediction = nib.load(str(output_dir / "predictions" / f"phantom_{index:03d}_image_seg.nii.gz"))
        assert prediction.shape == source.shape
        np.testing.assert_allclose(prediction.affine, source.affine)
        assert set(np.unique(np.asarray(prediction.dataobj))) <= {0, 1, 2, 3}


def test_inference_on_separate_channel_files_says_how_to_give_channels(fine_tuned, tmp_path):
    """Two channel files in one folder ended in a raw torch shape error; the check names both ways to give
    several channels."""
    _, output_dir = fine_tuned
    for channel, path in zip(("flair", "t1c"), write_phantom_images(tmp_path / "scans", 2)):
        path.rename(tmp_path / "scans" / f"{channel}.nii.gz")
    with pytest.raises(RuntimeError) as error:
        run(str(SEGMENTATION / "inference.json"), tmp_path, workflow_type="infer", ckpt_dir=str(output_dir / "models"),
            dataset_dir=str(tmp_path / "scans"), in_channels=2, demo=False)
    message = str(error.value.__cause__)
    assert "the model takes 2 channel(s) but" in message and "flair.nii.gz has 1" in message
    assert "one 4D NIfTI" in message and '"testing" entries list one file per channel' in message


def test_segmentations_of_subjects_with_the_same_file_name_do_not_overwrite_each_other(fine_tuned, tmp_path):
    _, output_dir = fine_tuned
    for subject, path in zip(("subject_a", "subject_b"), write_phantom_images(tmp_path / "scans", 2)):
        (tmp_path / "scans" / subject).mkdir()
        path.rename(tmp_path / "scans" / subject / "T1.nii.gz")
    run(str(SEGMENTATION / "inference.json"), tmp_path, workflow_type="infer", ckpt_dir=str(output_dir / "models"),
        dataset_dir=str(tmp_path / "scans"), demo=False, label_names=PHANTOM_LABEL_NAMES)
    written = sorted(str(p.relative_to(tmp_path / "predictions")) for p in (tmp_path / "predictions").rglob("*.nii.gz"))
    assert written == ["subject_a/T1_seg.nii.gz", "subject_b/T1_seg.nii.gz"]


def test_a_model_of_other_classes_names_the_settings_to_pass(fine_tuned, tmp_path):
    """The demo model (4 classes) under the default label_names (the shipped model's 9): the settings, not torch's
    list of mismatched tensors."""
    _, output_dir = fine_tuned
    write_phantom_images(tmp_path / "scans", 1)
    with pytest.raises(RuntimeError) as error:
        run(str(SEGMENTATION / "inference.json"), tmp_path, workflow_type="infer",
            ckpt_dir=str(output_dir / "models"), dataset_dir=str(tmp_path / "scans"), demo=False)
    message = str(error.value.__cause__)
    assert "was trained for another network" in message and "label_names (9 classes: background, cortical_grey" in message
    assert "--demo true for a model trained on the demo phantom" in message


def test_evaluate_and_inference_refuse_the_pretraining_weights(tmp_path, pretrained_model):
    """Both bundles share network_def, so the pretraining model.pt would load and yield a meaningless Dice."""
    ckpt_dir = os.path.dirname(pretrained_model)
    for configs, workflow_type in (([TRAIN, str(SEGMENTATION / "evaluate.json")], "train"),
                                   (str(SEGMENTATION / "inference.json"), "infer")):
        with pytest.raises(RuntimeError) as error:
            run(configs, tmp_path, workflow_type=workflow_type, ckpt_dir=ckpt_dir)
        assert "holds weights of the pretext_pretraining bundle, not a segmentation model" in str(error.value.__cause__)
    with pytest.raises(RuntimeError) as error:
        run(str(SEGMENTATION / "inference.json"), tmp_path, workflow_type="infer", ckpt_dir=str(tmp_path / "none"))
    assert "no segmentation weights at" in str(error.value.__cause__)


def test_cli_fine_tuning_from_pretraining(tmp_path, pretrained_model):
    overrides = {**TINY_SEGMENTATION, **outputs(tmp_path), "max_epochs": 1, "use_pretrained": True,
                 "pretrained_path": pretrained_model}
    result = run_cli(bundle_command(TRAIN, overrides), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert expected_load_summary() in result.stdout + result.stderr


@pytest.mark.parametrize(
    "overrides, message",
    [({"roi_size": [34, 34, 34]}, "roi_size [34, 34, 34] is not divisible by 4, the network's total downsampling"),
     ({"roi_size": [8, 8, 8]}, "shrink to (2, 2, 2) at the bottom of this UNet's encoder, under 3 voxels per axis"),
     ({"in_channels": 2}, "has 1 channel(s); set --in_channels 1"),
     ({"label_names": {"background": 0, "brain": 1, "ventricles": 2}}, "holds values [3] outside label_names"),
     ({"label_names": {"background": 0, "brain": 2}}, "label_names must map to the values 0 .. 1")],
)
def test_settings_are_checked_before_training(tmp_path, overrides, message):
    """Each of these surfaced as a raw torch shape error, or as a wrong Dice, in the middle of training."""
    flow = ConfigWorkflow(config_file=TRAIN, workflow_type="train", **{**outputs(tmp_path), **TINY_SEGMENTATION,
                                                                        **overrides})
    with pytest.raises(RuntimeError) as error:
        flow.initialize()
    assert message in str(error.value.__cause__)
    assert not (tmp_path / "models").exists()
