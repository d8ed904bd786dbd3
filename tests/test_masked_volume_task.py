"""The registered masked-volume (SimMIM-style) task: registry, masked loss, score, learning, bundle and transfer."""

import pytest
import torch

from monai_ssl import PretextModel, create_task, list_tasks
from monai_ssl.losses import RestorationLoss
from monai_ssl.networks import get_adapter
from tests.helpers import (
    fit_one_batch,
    parameters_with_gradient,
    pretext_batch,
    pretrain_tiny_and_transfer,
    small_unet,
)


def test_registered_with_a_target_and_a_mask():
    assert "masked_volume" in list_tasks()
    task = create_task("masked_volume", mask_ratio=0.5, cube_size=4)
    assert task.batch_keys == ("masked_volume_input", "masked_volume_target", "masked_volume_mask")
    assert task.score_name == "mse_ratio" and task.loss.kind == "l1"
    assert task.config() == {"name": "masked_volume", "args": {"source_key": "image", "loss": "l1",
                                                               "mask_ratio": 0.5, "cube_size": 4}}


def test_the_loss_counts_the_masked_voxels_only():
    torch.manual_seed(0)
    target = torch.rand(2, 1, 4, 4, 4)
    mask = (torch.rand(2, 1, 4, 4, 4) < 0.5).float()
    prediction = target + torch.where(mask.bool(), 0.5, 10.0)  # far off outside the mask
    assert torch.isclose(RestorationLoss("l1")(prediction, target, mask), torch.tensor(0.5))
    assert torch.isclose(RestorationLoss("mse")(prediction, target, mask), torch.tensor(0.25))
    assert RestorationLoss("l1")(prediction, target, torch.zeros_like(mask)) == 0.0
    with pytest.raises(ValueError, match=r"\(B, 1, \*spatial\)"):
        RestorationLoss("l1")(prediction, target, mask[:, :, :2])


def test_trains_the_whole_network_and_scores_against_the_fill():
    network = small_unet()
    model = PretextModel(network, [{"name": "masked_volume", "args": {"cube_size": 4}}])
    batch = pretext_batch(model)
    assert set(batch["masked_volume_mask"].unique().tolist()) == {0.0, 1.0}
    prediction = model(batch)["masked_volume"]
    assert prediction.shape == batch["masked_volume_target"].shape
    model.compute_loss(model(batch), batch).backward()
    adapter = get_adapter(network)
    with_grad = parameters_with_gradient(network)
    assert any(adapter.is_encoder_key(k) for k in with_grad) and any(not adapter.is_encoder_key(k) for k in with_grad)
    task = model.tasks["masked_volume"]
    masked, identity = task.score_counts(batch["masked_volume_input"], batch)
    assert masked == identity > 0  # predicting the masked input is the baseline: ratio 1
    # outside the mask nothing is scored: the target there with the fill inside scores as the baseline too
    outside = torch.where(batch["masked_volume_mask"].bool(), batch["masked_volume_input"],
                          batch["masked_volume_target"] + 5.0)
    assert task.score_counts(outside, batch) == (masked, identity)
    assert task.score_counts(batch["masked_volume_target"], batch)[0] == 0.0


def test_the_loss_falls_when_training_on_a_batch():
    model = PretextModel(small_unet(), [{"name": "masked_volume", "args": {"cube_size": 4}}])
    losses = fit_one_batch(model, pretext_batch(model))
    assert losses[-1] < 0.5 * losses[0]


def test_a_cube_covering_the_crop_is_refused_at_setup():
    adapter = get_adapter(small_unet())
    create_task("masked_volume", cube_size=16).check_setup((32, 32, 32), adapter)
    with pytest.raises(ValueError, match="use a smaller cube_size"):
        create_task("masked_volume", cube_size=32).check_setup((32, 32, 32), adapter)


def test_the_pretraining_bundle_runs_it_and_the_whole_network_transfers(tmp_path):
    checkpoint, report, adapter = pretrain_tiny_and_transfer(tmp_path, ["masked_volume", "rotation"])
    assert [t["name"] for t in checkpoint["config"]["tasks"]] == ["masked_volume", "rotation"]
    assert any(not adapter.is_encoder_key(k) for k in report.copied)  # decoder layers transferred too
