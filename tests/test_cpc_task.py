"""The registered 3D CPC task: shapes, InfoNCE, score and the bundle."""

import math

import pytest
import torch
from monai.bundle import ConfigWorkflow

from monai_ssl import PretextModel, create_task, list_tasks
from monai_ssl.tasks.base import VOLUME_ID_KEY
from tests.helpers import PRETRAINING, TINY_PRETRAINING, outputs, pretext_batch, small_unet


def test_registered_and_predicts_every_target_cube():
    assert "cpc" in list_tasks()
    model = PretextModel(small_unet(), [{"name": "cpc", "args": {"patch_size": 12, "grid": 4}}])
    batch = pretext_batch(model)
    prediction = model(batch)["cpc"]
    assert prediction.shape == (2, 32, 2, 32)  # 2 target rows of 4 x 4 cubes; the tiny UNet's 32 channels
    loss = model.compute_loss(model(batch), batch)
    assert float(loss) == pytest.approx(math.log(64), abs=1.0)  # near chance among the 64 targets at the start
    loss.backward()


def test_infonce_and_score_reward_predictions_that_find_their_own_target():
    task = create_task("cpc", patch_size=12, temperature=0.1)
    targets = torch.nn.functional.one_hot(torch.arange(6)).float().reshape(2, 3, 6)  # 6 orthogonal encodings
    perfect = torch.stack([targets, targets], dim=2)
    wrong = torch.stack([targets.roll(1, 0), targets], dim=2)  # predicting the other sample's target
    assert float(task.compute_loss(perfect, {})) < 1e-3
    assert float(task.compute_loss(wrong, {})) > 5.0
    assert task.score_counts(perfect, {}) == (6.0, 6.0) and task.score_counts(wrong, {}) == (0.0, 6.0)
    assert task.score_counts(perfect[:1], {}) == (0.0, 0.0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        create_task("cpc", temperature=0.0)


def test_the_score_contrasts_each_prediction_with_a_crop_of_another_volume():
    """Crops of one volume sit together in a batch; the held-out score took the next sample, often the same
    volume's other crop, as the negative: identical anatomy, so a tie scored as a miss (2 of 4 here)."""
    task = create_task("cpc", patch_size=12)
    first_volume, second_volume = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])
    actual = torch.stack([first_volume, first_volume, second_volume, second_volume])[:, None]  # (4, 1 target, 3)
    prediction = torch.stack([actual, actual], dim=2)
    assert task.score_counts(prediction, {VOLUME_ID_KEY: torch.tensor([0, 0, 1, 1])}) == (4.0, 4.0)
    assert task.score_counts(prediction, {VOLUME_ID_KEY: torch.tensor([0, 0, 0, 0])}) == (0.0, 0.0)  # no negative


def test_the_pretraining_bundle_runs_it(tmp_path):
    flow = ConfigWorkflow(config_file=str(PRETRAINING / "train.json"), workflow_type="train",
                          **{**TINY_PRETRAINING, **outputs(tmp_path), "tasks": ["cpc"],
                             "task_args#cpc": {"patch_size": [12, 12, 12], "grid": [4, 4, 4]}})
    flow.initialize()
    flow.run()
    checkpoint = torch.load(tmp_path / "models" / "pretext_checkpoint.pt", weights_only=True)
    assert checkpoint["config"]["tasks"][0]["name"] == "cpc"
    assert any(k.startswith("cpc.predictors.") for k in checkpoint["heads"])
