"""Each bundle under torchrun: 2 CPU processes, gloo backend, a few iterations; rank 0 alone logs and saves."""

import sys

import pytest

from tests.helpers import PRETRAINING, SEGMENTATION, TINY_PRETRAINING, TINY_SEGMENTATION, cli_arguments, outputs, run_cli

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2"]


@pytest.mark.parametrize(
    "configs, overrides, saved",
    [(PRETRAINING, TINY_PRETRAINING, "models/model.pt"), (SEGMENTATION, {**TINY_SEGMENTATION, "max_epochs": 1}, "models/model.pt")],
    ids=["pretext_pretraining", "brain_mri_segmentation"],
)
def test_two_process_gloo_run(tmp_path, configs, overrides, saved):
    files = f"['{configs / 'train.json'}','{configs / 'multi_gpu_train.json'}']"
    command = [*TORCHRUN, "-m", "monai.bundle", "run", "--config_file", files,
               *cli_arguments({**overrides, **outputs(tmp_path)})]
    result = run_cli(command, cwd=tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert (tmp_path / saved).is_file()
    if configs == PRETRAINING:
        assert (result.stdout + result.stderr).count("saved pretrained network") == 1  # rank 0 only
