"""Settings checks shared by both bundles: unknown settings, the last line of an error, default folders."""

import hashlib
import json
import shutil
import sys

import pytest
from monai.bundle import ConfigWorkflow

from monai_ssl.bundle import bundle_settings, root_cause
from tests.helpers import (
    PRETRAINING,
    SEGMENTATION,
    TINY_NETWORK,
    TINY_PRETRAINING,
    TINY_SEGMENTATION,
    bundle_command,
    run_cli,
)


@pytest.mark.parametrize("configs", [PRETRAINING, SEGMENTATION], ids=["pretext_pretraining", "brain_mri_segmentation"])
def test_a_misspelt_override_is_refused_with_the_closest_setting(configs, tmp_path):
    flow = ConfigWorkflow(config_file=str(configs / "train.json"), workflow_type="train", datset_dir="/data")
    with pytest.raises(RuntimeError) as error:
        flow.initialize()
    assert str(root_cause(error.value)).startswith("unknown setting 'datset_dir' (did you mean 'dataset_dir'?)")


def test_an_override_files_own_helper_keys_are_accepted(tmp_path):
    """MONAI bundles let an override file define keys that its other values refer to; only a key nothing refers
    to is a typo."""
    overrides = tmp_path / "site.json"
    overrides.write_text(json.dumps({"my_root": str(tmp_path), "dataset_dir": "$@my_root + '/scans'",
                                     "my_unused": 1}))
    flow = ConfigWorkflow(config_file=[str(PRETRAINING / "train.json"), str(overrides)], workflow_type="train",
                          meta_file=str(PRETRAINING / "metadata.json"), logging_file=str(PRETRAINING / "logging.conf"))
    with pytest.raises(RuntimeError) as error:
        flow.initialize()
    assert str(root_cause(error.value)).startswith("unknown setting 'my_unused'")
    assert "my_root" not in str(root_cause(error.value))


@pytest.mark.parametrize("configs, overrides", [(PRETRAINING, TINY_PRETRAINING), (SEGMENTATION, TINY_SEGMENTATION)],
                         ids=["pretext_pretraining", "brain_mri_segmentation"])
def test_a_device_given_as_a_string_is_accepted(configs, overrides, tmp_path):
    """``--device cpu`` on the command line is a string; it failed deep in a config expression."""
    settings = {**overrides, "max_epochs": 1, "epoch_length": 1, "output_dir": str(tmp_path),
                "ckpt_dir": str(tmp_path / "models"), "device": "cpu"}
    result = run_cli(bundle_command(str(configs / "train.json"), settings), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    settings = {"demo": True, "num_workers": 0, "output_dir": str(tmp_path), "device": "cpu"}
    if configs == SEGMENTATION:
        settings.update(TINY_NETWORK, ckpt_dir=str(tmp_path / "models"))
    result = run_cli(bundle_command(str(configs / "inference.json"), settings), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]


def test_every_setting_of_the_bundles_and_their_sample_configs_is_known():
    from tests.helpers import REPO

    known = bundle_settings(PRETRAINING) | bundle_settings(SEGMENTATION)
    assert {"dataset_dir", "datalist", "demo", "ckpt_dir", "output_dir", "train", "validate", "_meta_"} <= known
    import json

    for path in (REPO / "sample_configs").glob("*.json"):
        config = json.loads(path.read_text())
        if "training" in config or "testing" in config:  # a datalist, not a config
            continue
        assert set(config) <= known, path.name


def test_the_cli_ends_with_the_message_that_helps(tmp_path):
    """MONAI prints 'Failed to evaluate ConfigExpression' below the cause; the cause must come last."""
    result = run_cli(bundle_command(str(PRETRAINING / "train.json"), {"datset_dir": str(tmp_path)}), cwd=tmp_path)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ValueError: unknown setting 'datset_dir' (did you mean 'dataset_dir'?)"), last_line
    assert "Failed to evaluate" in result.stderr  # the full traceback is still there, above


def test_no_data_is_an_error_that_says_how_to_give_data(tmp_path):
    result = run_cli(bundle_command(str(PRETRAINING / "train.json"), {"output_dir": str(tmp_path)}), cwd=tmp_path)
    assert result.returncode != 0
    assert "--demo true runs on generated demo phantoms" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "demo_unlabelled").exists()


def test_error_summary_prints_the_root_cause_last(capsys, monkeypatch):
    from monai_ssl import bundle

    monkeypatch.setattr(sys, "excepthook", lambda *args: print("traceback", file=sys.stderr))
    bundle.install_error_summary()
    bundle.install_error_summary()  # once only
    try:
        try:
            raise ValueError("roi_size [33] is not divisible by 8")
        except ValueError as cause:
            raise RuntimeError("Failed to evaluate ConfigExpression") from cause
    except RuntimeError as error:
        sys.excepthook(type(error), error, error.__traceback__)
    assert capsys.readouterr().err.splitlines() == ["traceback", "ValueError: roi_size [33] is not divisible by 8"]


def test_the_error_summary_is_scoped_to_the_bundle_command_line(tmp_path, monkeypatch):
    """A program that runs a bundle in its own process keeps its own sys.excepthook."""
    hook = sys.excepthook
    flow = ConfigWorkflow(config_file=str(PRETRAINING / "train.json"), workflow_type="train",
                          **{**TINY_PRETRAINING, "output_dir": str(tmp_path)})
    flow.initialize()
    assert sys.excepthook is hook
    monkeypatch.setattr(sys, "argv", ["/venv/lib/python3.11/site-packages/monai/bundle/__main__.py", "run"])
    monkeypatch.setattr(sys, "excepthook", hook)
    ConfigWorkflow(config_file=str(PRETRAINING / "train.json"), workflow_type="train",
                   **{**TINY_PRETRAINING, "output_dir": str(tmp_path)}).initialize()
    assert getattr(sys.excepthook, "monai_ssl_error_summary", False)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_default_folders_keep_each_bundle_in_its_own_folder(tmp_path, monkeypatch):
    """Both bundles run with default folders from the same working directory, as a user who downloaded them
    would: each writes into its own models/, and fine-tuning finds the pretraining bundle's weights beside it."""
    bundles = tmp_path / "bundles"
    for configs in (PRETRAINING, SEGMENTATION):
        shutil.copytree(configs.parent, bundles / configs.parent.name, ignore=shutil.ignore_patterns("outputs"))
    monkeypatch.chdir(tmp_path)
    shipped = bundles / "pretext_pretraining" / "models" / "model.pt"
    before = _digest(shipped)
    flow = ConfigWorkflow(config_file=str(bundles / "brain_mri_segmentation" / "configs" / "train.json"),
                          workflow_type="train", **{**TINY_SEGMENTATION, "max_epochs": 1, "use_pretrained": True,
                                                    "network_def#channels": [16, 32, 64, 128],
                                                    "network_def#strides": [2, 2, 2], "network_def#num_res_units": 2})
    flow.initialize()
    flow.run()
    assert flow.parser.get_parsed_content("pretrained_path") == str(shipped)
    assert (bundles / "brain_mri_segmentation" / "models" / "model.pt").is_file()
    assert (bundles / "brain_mri_segmentation" / "outputs" / "logs").is_dir()
    assert _digest(shipped) == before
    assert not (tmp_path / "models").exists() and not (tmp_path / "outputs").exists()

    pretraining = ConfigWorkflow(config_file=str(bundles / "pretext_pretraining" / "configs" / "train.json"),
                                 workflow_type="train", **TINY_PRETRAINING)
    pretraining.initialize()
    pretraining.run()
    assert _digest(shipped) != before  # the Zoo convention: training writes the bundle's own models/model.pt
    assert (bundles / "pretext_pretraining" / "models" / "pretext_checkpoint.pt").is_file()


def test_run_outputs_are_ignored_by_git():
    import subprocess

    from tests.helpers import REPO

    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    paths = ["outputs/demo/model.pt", "runs/ct/models/model.pt", "bundles/pretext_pretraining/outputs/logs/x",
             "bundles/pretext_pretraining/models/checkpoint_epoch=2.pt"]
    result = subprocess.run(["git", "check-ignore", *paths], cwd=REPO, capture_output=True, text=True)
    assert result.stdout.split() == paths
