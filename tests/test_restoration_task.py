"""The registered Models Genesis restoration task: registry, model, score, learning, bundle and transfer."""

import torch
from monai.bundle import ConfigWorkflow
from monai.data import DataLoader, Dataset

from monai_ssl import PretextModel, create_task, list_tasks, load_pretrained
from monai_ssl.networks import get_adapter
from tests.helpers import PRETRAINING, TINY_PRETRAINING, outputs, phantom_samples, small_unet


def batch_for(model, size=32):
    return next(iter(DataLoader(Dataset(phantom_samples(2, size), transform=model.transform()), batch_size=2)))


def test_registered_with_a_restoration_target():
    assert "restoration" in list_tasks()
    task = create_task("restoration", loss="l1", paint_prob=0.5)
    assert task.label_key == "restoration_target" and task.score_name == "mse_ratio"
    assert task.config() == {"name": "restoration", "args": {"source_key": "image", "loss": "l1", "paint_prob": 0.5}}


def test_trains_the_whole_network_and_scores_against_the_identity():
    network = small_unet()
    model = PretextModel(network, ["restoration"])
    batch = batch_for(model)
    prediction = model(batch)["restoration"]
    assert prediction.shape == batch["restoration_target"].shape
    model.compute_loss(model(batch), batch).backward()
    adapter = get_adapter(network)
    with_grad = {k for k, p in network.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(adapter.is_encoder_key(k) for k in with_grad) and any(not adapter.is_encoder_key(k) for k in with_grad)
    task = model.tasks["restoration"]
    restoration, identity = task.score_counts(batch["restoration_input"], batch)
    assert restoration == identity  # predicting the degraded input is the identity baseline: ratio 1
    assert task.score_counts(batch["restoration_target"], batch)[0] == 0.0


def test_the_loss_falls_when_training_on_a_batch():
    torch.manual_seed(0)
    model = PretextModel(small_unet(), [{"name": "restoration", "args": {"shuffle_prob": 0.0, "remap_prob": 1.0,
                                                                          "paint_prob": 0.0}}])
    batch = batch_for(model)
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss = model.compute_loss(model(batch), batch)
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]


def test_the_pretraining_bundle_runs_it_and_the_whole_network_transfers(tmp_path):
    flow = ConfigWorkflow(config_file=str(PRETRAINING / "train.json"), workflow_type="train",
                          **{**TINY_PRETRAINING, **outputs(tmp_path), "tasks": ["restoration", "rotation"]})
    flow.initialize()
    flow.run()
    checkpoint = torch.load(tmp_path / "models" / "pretext_checkpoint.pt", weights_only=True)
    assert [t["name"] for t in checkpoint["config"]["tasks"]] == ["restoration", "rotation"]
    segmenter = flow.parser.get_parsed_content("network_def").__class__(
        **{**checkpoint["config"]["network"]["args"], "out_channels": 4})
    report = load_pretrained(segmenter, str(tmp_path / "models" / "model.pt"), encoder_only=False)
    adapter = get_adapter(segmenter)
    assert any(not adapter.is_encoder_key(k) for k in report.copied)  # decoder layers transferred too
