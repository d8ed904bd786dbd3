"""The registered Models Genesis restoration task: registry, model, score, learning, bundle and transfer."""

from monai_ssl import PretextModel, create_task, list_tasks
from monai_ssl.networks import get_adapter
from tests.helpers import (
    fit_one_batch,
    parameters_with_gradient,
    pretext_batch,
    pretrain_tiny_and_transfer,
    small_unet,
)


def test_registered_with_a_restoration_target():
    assert "restoration" in list_tasks()
    task = create_task("restoration", loss="l1", paint_prob=0.5)
    assert task.label_key == "restoration_target" and task.score_name == "mse_ratio"
    assert task.config() == {"name": "restoration", "args": {"source_key": "image", "loss": "l1", "paint_prob": 0.5}}


def test_trains_the_whole_network_and_scores_against_the_identity():
    network = small_unet()
    model = PretextModel(network, ["restoration"])
    batch = pretext_batch(model)
    prediction = model(batch)["restoration"]
    assert prediction.shape == batch["restoration_target"].shape
    model.compute_loss(model(batch), batch).backward()
    adapter = get_adapter(network)
    with_grad = parameters_with_gradient(network)
    assert any(adapter.is_encoder_key(k) for k in with_grad) and any(not adapter.is_encoder_key(k) for k in with_grad)
    task = model.tasks["restoration"]
    restoration, identity = task.score_counts(batch["restoration_input"], batch)
    assert restoration == identity  # predicting the degraded input is the identity baseline: ratio 1
    assert task.score_counts(batch["restoration_target"], batch)[0] == 0.0


def test_the_loss_falls_when_training_on_a_batch():
    model = PretextModel(small_unet(), [{"name": "restoration", "args": {"shuffle_prob": 0.0, "remap_prob": 1.0,
                                                                          "paint_prob": 0.0}}])
    losses = fit_one_batch(model, pretext_batch(model))
    assert losses[-1] < 0.5 * losses[0]


def test_the_pretraining_bundle_runs_it_and_the_whole_network_transfers(tmp_path):
    checkpoint, report, adapter = pretrain_tiny_and_transfer(tmp_path, ["restoration", "rotation"])
    assert [t["name"] for t in checkpoint["config"]["tasks"]] == ["restoration", "rotation"]
    assert any(not adapter.is_encoder_key(k) for k in report.copied)  # decoder layers transferred too
