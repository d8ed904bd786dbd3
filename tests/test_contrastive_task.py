"""The registered SimCLR task: NT-Xent across processes, the model, the score and the bundle."""

import os

import pytest
import torch
import torch.multiprocessing as mp
from monai.bundle import ConfigWorkflow
from monai.data import DataLoader, Dataset
from monai.losses import ContrastiveLoss

from monai_ssl import PretextModel, create_task, list_tasks
from monai_ssl.losses import GatheredContrastiveLoss
from monai_ssl.tasks.base import VOLUME_ID_KEY
from tests.helpers import PRETRAINING, TINY_PRETRAINING, outputs, phantom_samples, small_unet


def features(seed=0, batch=6, size=8):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, size, generator=generator), torch.randn(batch, size, generator=generator)


def _rank_loss(rank: int, world_size: int, store: str, results: dict) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    first, second = features()
    part = slice(rank * 3, rank * 3 + 3)
    mine = first[part].clone().requires_grad_(True), second[part].clone().requires_grad_(True)
    loss = GatheredContrastiveLoss(temperature=0.2)(*mine)
    loss.backward()
    results[rank] = (float(loss), mine[0].grad.clone(), mine[1].grad.clone())
    torch.distributed.destroy_process_group()


def _rank_loss_with_labels(rank: int, world_size: int, store: str, results: dict) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    first, second = features()
    part = slice(rank * 3, rank * 3 + 3)
    labels = torch.tensor([0, 1, 0, 2, 1, 3])[part]  # bands shared across the two ranks' samples
    results[rank] = float(GatheredContrastiveLoss(temperature=0.2)(first[part], second[part], labels))
    torch.distributed.destroy_process_group()


def test_under_ddp_band_labels_are_gathered_with_the_views(tmp_path):
    """Positives shared across ranks (the same band on both) count as on one process holding the whole batch."""
    first, second = features()
    expected = GatheredContrastiveLoss(temperature=0.2)(first, second, torch.tensor([0, 1, 0, 2, 1, 3]))
    results = mp.Manager().dict()
    mp.spawn(_rank_loss_with_labels, args=(2, str(tmp_path / "store"), results), nprocs=2, join=True)
    assert results[0] == pytest.approx(float(expected), rel=1e-6) == results[1]


def test_under_ddp_negatives_come_from_every_rank(tmp_path):
    """Two gloo processes holding halves of the batch compute the loss of one process holding all of it; the
    gathered gradients, averaged by DDP, are the single-process gradients."""
    first, second = features()
    full = first.clone().requires_grad_(True), second.clone().requires_grad_(True)
    expected = ContrastiveLoss(temperature=0.2)(*full)
    expected.backward()
    results = mp.Manager().dict()
    mp.spawn(_rank_loss, args=(2, str(tmp_path / "store"), results), nprocs=2, join=True)
    for rank in (0, 1):
        loss, grad_first, grad_second = results[rank]
        assert loss == pytest.approx(float(expected), rel=1e-6)
        part = slice(rank * 3, rank * 3 + 3)
        # the gather's backward sums both ranks' identical losses; DDP divides by the world size
        torch.testing.assert_close(grad_first / 2, full[0].grad[part])
        torch.testing.assert_close(grad_second / 2, full[1].grad[part])


def test_one_process_is_monai_contrastive_loss_and_arguments_are_checked():
    first, second = features()
    assert float(GatheredContrastiveLoss(0.5)(first, second)) == pytest.approx(
        float(ContrastiveLoss(temperature=0.5)(first, second)))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        GatheredContrastiveLoss(0.0)
    with pytest.raises(ValueError, match="two \\(B, F\\) tensors"):
        GatheredContrastiveLoss()(first, second[:, :4])


def test_registered_model_and_pair_score():
    assert "contrastive" in list_tasks()
    task = create_task("contrastive", view_size=16, temperature=0.1)
    assert task.chance_score() == 0.5 and task.score_name == "pair_accuracy"
    model = PretextModel(small_unet(), [{"name": "contrastive", "args": {"view_size": 16}}])
    batch = next(iter(DataLoader(Dataset(phantom_samples(4, 32), transform=model.transform()), batch_size=4)))
    prediction = model(batch)["contrastive"]
    assert prediction.shape == (4, 2, 128)
    model.compute_loss(model(batch), batch).backward()
    identical = torch.randn(4, 1, 8).expand(4, 2, 8)  # each pair identical, the samples different
    assert model.tasks["contrastive"].score_counts(identical, batch) == (8.0, 8.0)
    assert model.tasks["contrastive"].score_counts(identical[:1], batch) == (0.0, 0.0)  # no negative in a batch of 1


def test_the_pair_score_takes_its_negative_from_another_volume():
    """Crops of one volume sit together in a batch: with the next sample as negative, a pair was scored against
    its own volume's other crop (identical anatomy, a tie scored as a miss)."""
    task = create_task("contrastive", view_size=16)
    first_volume, second_volume = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    views = torch.stack([first_volume, first_volume, second_volume, second_volume])[:, None].expand(4, 2, 2)
    assert task.score_counts(views, {VOLUME_ID_KEY: torch.tensor([0, 0, 1, 1])}) == (8.0, 8.0)
    assert task.score_counts(views, {VOLUME_ID_KEY: torch.tensor([0, 0, 0, 0])}) == (0.0, 0.0)


def test_the_pretraining_bundle_runs_it(tmp_path):
    flow = ConfigWorkflow(config_file=str(PRETRAINING / "train.json"), workflow_type="train",
                          **{**TINY_PRETRAINING, **outputs(tmp_path), "tasks": ["contrastive", "rotation"],
                             # Chaitanya et al.'s options too: domain-specific positives and the local loss
                             "task_args#contrastive": {"view_size": [16, 16, 16], "partitions": 2,
                                                       "local_weight": 0.5, "local_positions": 8}})
    flow.initialize()
    flow.run()
    checkpoint = torch.load(tmp_path / "models" / "pretext_checkpoint.pt", weights_only=True)
    assert [t["name"] for t in checkpoint["config"]["tasks"]] == ["contrastive", "rotation"]
    assert os.path.isfile(tmp_path / "models" / "model.pt")


def test_domain_positives_and_the_local_loss_train_the_decoder_and_transfer_the_whole_network(tmp_path):
    from monai_ssl.transfer import whole_network_transfer

    args = {"view_size": 16, "partitions": 2, "local_weight": 1.0, "local_positions": 8}
    model = PretextModel(small_unet(), [{"name": "contrastive", "args": args}])
    task = model.tasks["contrastive"]
    assert task.trains_decoder and not create_task("contrastive").trains_decoder
    batch = next(iter(DataLoader(Dataset(phantom_samples(4, 32), transform=model.transform()), batch_size=4)))
    assert batch["contrastive_label"].shape == (4,) and batch["contrastive_geometry"].shape == (4, 2, 4, 4)
    prediction = model(batch)["contrastive"]
    assert prediction["embeddings"].shape == (4, 2, 128) and prediction["local"].shape == (4, 2, 64, 16, 16, 16)
    loss = model.compute_loss(model(batch), batch)
    loss.backward()
    decoder = [p for p in model.adapter.decoder_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert decoder  # the local loss reaches the decoder
    assert task.score_counts(prediction, batch)[1] == 8.0
    config = {"config": {"tasks": [{"name": "contrastive", "args": args}]}}
    assert whole_network_transfer(config) and not whole_network_transfer(
        {"config": {"tasks": [{"name": "contrastive", "args": {"view_size": 16}}]}})
    with pytest.raises(ValueError, match="multiples of 4"):
        create_task("contrastive", view_size=18, local_weight=1.0).check_setup((32, 32, 32), model.adapter)
