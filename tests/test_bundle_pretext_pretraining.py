import json
import shutil

import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow
from monai.networks.nets import UNet

from monai_ssl import list_tasks
from monai_ssl.bundle import check_pretext_setup
from monai_ssl.checkpoint import load_checkpoint
from tests.helpers import PRETRAINING, TINY_PRETRAINING, bundle_command, outputs, run_cli

TRAIN = str(PRETRAINING / "train.json")


def workflow(output_dir, **overrides) -> ConfigWorkflow:
    return ConfigWorkflow(config_file=TRAIN, workflow_type="train", **outputs(output_dir),
                          **{**TINY_PRETRAINING, **overrides})


def run(output_dir, **overrides) -> ConfigWorkflow:
    flow = workflow(output_dir, **overrides)
    flow.initialize()
    flow.run()
    flow.finalize()
    return flow


def test_config_workflow_runs_and_writes_the_checkpoint(tmp_path):
    flow = workflow(tmp_path)
    flow.initialize()
    assert flow.check_properties() == []
    flow.run()
    flow.finalize()
    # the Model Zoo layout: model.pt is the plain state_dict of network_def, the training state is separate
    weights = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert weights.keys() == flow.parser.get_parsed_content("network_def").state_dict().keys()
    checkpoint = load_checkpoint(str(tmp_path / "models" / "pretext_checkpoint.pt"))
    assert checkpoint["trainer"] == {"epoch_length": 2, "iteration": 2, "max_epochs": 1}  # Ignite's engine state
    assert set(checkpoint) == {"model", "heads", "config", "optimizer", "trainer", "random_states"}
    assert [t["name"] for t in checkpoint["config"]["tasks"]] == ["jigsaw", "rotation", "colorization",
                                                                   "relative_position"]
    assert all(torch.equal(weights[k], v) for k, v in checkpoint["model"].items())
    args = checkpoint["config"]["network"]["args"]
    UNet(**args).load_state_dict(weights)
    assert list((tmp_path / "logs").glob("events.out.tfevents.*"))
    assert (tmp_path / "models" / "checkpoint_epoch=1.pt").is_file()  # MONAI CheckpointSaver's periodic file
    # NonFiniteGradientGuard is attached, and the tiny settings keep 3 voxels at the bottom of the encoder, where
    # bf16 CPU convolutions give no NaN gradients: not one step is skipped
    assert flow.parser.get_parsed_content("train#trainer").state.skipped_steps == 0
    assert all(torch.isfinite(v).all() for v in weights.values())


def test_tasks_and_loss_weights_are_overridable(tmp_path):
    flow = run(tmp_path, tasks=["rotation", "colorization"], loss_weights={"rotation": 2.0})
    model = flow.parser.get_parsed_content("model")
    assert list(model.tasks) == ["rotation", "colorization"]
    assert model.loss_function.weights == {"rotation": 2.0, "colorization": 1.0}


@pytest.mark.parametrize("task", list_tasks())
def test_every_task_fits_the_bundle_network_and_crops_by_default(task):
    # `--tasks "['cpc']"` alone must start: the bundle's task_args suit its 64³ crops and its 4-level UNet
    parser = ConfigParser()
    parser.read_config(TRAIN)
    parser["tasks"] = [task]
    check_pretext_setup(parser.get_parsed_content("model"), parser["roi_size"])


def test_resume_continues_the_iteration_count(tmp_path, capfd):
    run(tmp_path)
    flow = run(tmp_path, resume=True, max_epochs=2)
    trainer = flow.parser.get_parsed_content("train#trainer")
    assert trainer.state.iteration == 4 and trainer.state.epoch == 2
    # the bundle's logging.conf logs to stdout
    assert "Restored all variables from " + str(tmp_path / "models" / "pretext_checkpoint.pt") in capfd.readouterr().out
    state = load_checkpoint(str(tmp_path / "models" / "pretext_checkpoint.pt"))["trainer"]
    assert state == {"epoch_length": 2, "iteration": 4, "max_epochs": 2}


def test_resume_from_the_final_training_state_without_periodic_checkpoints(tmp_path, capfd):
    run(tmp_path, save_interval=0)
    assert not list((tmp_path / "models").glob("checkpoint_*.pt"))
    flow = run(tmp_path, save_interval=0, resume=True, max_epochs=2)
    assert flow.parser.get_parsed_content("train#trainer").state.iteration == 4
    assert "Restored all variables from " + str(tmp_path / "models" / "pretext_checkpoint.pt") in capfd.readouterr().out


def test_datalist_input_with_relative_paths(tmp_path):
    from monai_ssl.data import write_phantom_dataset

    data = tmp_path / "archive"
    write_phantom_dataset(str(data), num_subjects=2, shape=(40, 40, 40))
    datalist = {"training": [{"image": "phantom_000_image.nii.gz"}, {"image": "phantom_001_image.nii.gz"}]}
    (data / "list.json").write_text(json.dumps(datalist))
    flow = run(tmp_path / "out", datalist=str(data / "list.json"), demo=False)
    files = flow.parser.get_parsed_content("train#files")
    assert [f["image"] for f in files] == [str(data / "phantom_000_image.nii.gz"), str(data / "phantom_001_image.nii.gz")]


def test_dataset_dir_of_nifti_files_and_ct_preset(tmp_path, capfd):
    from monai_ssl.data import write_phantom_dataset

    entries = write_phantom_dataset(str(tmp_path / "scans" / "nested"), num_subjects=2, shape=(40, 40, 40))
    flow = run(tmp_path / "out", dataset_dir=str(tmp_path / "scans"), modality="CT", demo=False)
    # the phantoms' label maps sit beside the images; they are recognised by content and left out, with a reason
    assert flow.parser.get_parsed_content("train#files") == [{"image": e["image"]} for e in entries]
    log = capfd.readouterr().out
    assert all(f"left out {e['label']}, a label map or mask" in log for e in entries)


@pytest.mark.parametrize(
    "overrides, message",
    [({"tasks": ["jigsaw", "inpainting"]}, "unknown pretext task 'inpainting'"),
     ({"roi_size": [33, 32, 32], "tasks": ["jigsaw"]}, "not divisible by the jigsaw grid"),
     ({"dataset_dir": "/nonexistent/scans", "demo": False}, "dataset_dir '/nonexistent/scans' is not a folder"),
     ({"modality": "PET"}, "modality must be one of")],
)
def test_bad_overrides_give_clear_errors(tmp_path, overrides, message):
    with pytest.raises(Exception) as error:
        run(tmp_path, **overrides)
    chain, cause = [], error.value
    while cause is not None:
        chain.append(str(cause))
        cause = cause.__cause__
    assert any(message in text for text in chain), chain


def test_cli_from_the_repository_root(tmp_path):
    result = run_cli(bundle_command(TRAIN, {**TINY_PRETRAINING, **outputs(tmp_path)}), cwd=PRETRAINING.parents[2])
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "models" / "model.pt").is_file()


def test_cli_from_a_copy_of_the_bundle(tmp_path):
    copy = tmp_path / "my_bundle"
    shutil.copytree(PRETRAINING.parent, copy)
    result = run_cli(bundle_command("configs/train.json", TINY_PRETRAINING), cwd=copy)
    assert result.returncode == 0, result.stderr[-3000:]
    # bundle_root is the bundle folder: its models/ receives the weights, as in a Model Zoo bundle
    assert torch.load(copy / "models" / "pretext_checkpoint.pt", weights_only=True)["trainer"]["iteration"] == 2
    assert (copy / "outputs" / "logs").is_dir()
