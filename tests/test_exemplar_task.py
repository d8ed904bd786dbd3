"""The registered 3D exemplar task: triplets, score, configuration round trip and the bundle."""

import pytest
import torch
from monai.bundle import ConfigWorkflow
from monai.data import DataLoader

from monai_ssl import PretextModel, create_task, list_tasks
from monai_ssl.bundle import pretext_dataset
from monai_ssl.tasks.base import VOLUME_ID_KEY, other_volume_index
from tests.helpers import PRETRAINING, TINY_PRETRAINING, outputs, pretext_batch, small_unet, write_phantom_images


def test_registered_with_heavy_augmentation_and_a_rebuildable_config():
    assert "exemplar" in list_tasks()
    task = create_task("exemplar", view_size=16, margin=0.5)
    views = task.task_transform.views
    assert views.view_size == (16, 16, 16)
    config = task.config()
    assert config["args"]["intensity_prob"] == 1.0 and config["args"]["margin"] == 0.5
    rebuilt = create_task(config["name"], **config["args"])
    assert rebuilt.config() == config
    with pytest.raises(ValueError, match="margin must be > 0"):
        create_task("exemplar", margin=0.0)


def test_triplets_anchor_positive_and_the_next_volume_as_negative():
    model = PretextModel(small_unet(), [{"name": "exemplar", "args": {"view_size": 16}}])
    batch = pretext_batch(model, 3)
    prediction = model(batch)["exemplar"]
    assert prediction.shape == (3, 2, 128)
    model.compute_loss(model(batch), batch).backward()
    task = model.tasks["exemplar"]
    anchors = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    near = torch.stack([anchors, anchors + 0.1], dim=1)  # every positive beside its anchor, far from the others
    assert task.score_counts(near, batch) == (3.0, 3.0)
    far = torch.stack([anchors, 2 * anchors.roll(1, 0) - anchors], dim=1)  # every positive beyond the negative
    assert task.score_counts(far, batch) == (0.0, 3.0)
    assert float(task.compute_loss(near, batch)) == pytest.approx(0.0)


def test_negatives_come_from_other_volumes_when_a_batch_holds_several_crops_of_each(tmp_path):
    """The bundle's batches hold samples_per_volume crops of each volume side by side: batch 2 x 4 crops gave 6 of
    8 negatives from the anchor's own volume with the next sample as negative."""
    model = PretextModel(small_unet(), [{"name": "exemplar", "args": {"view_size": 16}}])
    files = [{"image": str(p)} for p in write_phantom_images(tmp_path, 3)]
    dataset = pretext_dataset(files, model, "MR", None, (32, 32, 32), samples_per_volume=4)
    batch = next(iter(DataLoader(dataset, batch_size=2, shuffle=False)))
    volumes = batch[VOLUME_ID_KEY].tolist()
    assert volumes[:4] == [volumes[0]] * 4 and volumes[4:] == [volumes[4]] * 4 and volumes[0] != volumes[4]
    task = model.tasks["exemplar"]
    embeddings = torch.randn(8, 2, 4)
    anchor, positive, negative = task._triplets(embeddings, batch)
    others = other_volume_index(batch, 8)
    assert all(volumes[int(j)] != volumes[i] for i, j in enumerate(others))
    assert torch.equal(negative, embeddings[others, 0]) and torch.equal(anchor, embeddings[:, 0])
    # a batch that holds one volume only (the last of an epoch) adds nothing, with a warning, and does not stop
    one_volume = {VOLUME_ID_KEY: torch.zeros(4, dtype=torch.long)}
    assert float(task.compute_loss(embeddings[:4], one_volume)) == 0.0
    assert task.score_counts(embeddings[:4], one_volume) == (0.0, 0.0)


def test_other_volume_index_takes_the_next_sample_of_another_volume():
    batch = {VOLUME_ID_KEY: torch.tensor([5, 5, 7, 7, 7, 9])}
    assert other_volume_index(batch, 6).tolist() == [2, 2, 5, 5, 5, 0]
    assert other_volume_index({}, 3).tolist() == [1, 2, 0]  # no ids: every sample its own volume
    assert other_volume_index({VOLUME_ID_KEY: torch.tensor([1, 1])}, 2).tolist() == [-1, -1]
    with pytest.raises(ValueError, match="3 volume_id values for 2 samples"):
        other_volume_index({VOLUME_ID_KEY: torch.tensor([1, 2, 3])}, 2)


def test_the_pretraining_bundle_runs_it(tmp_path):
    flow = ConfigWorkflow(config_file=str(PRETRAINING / "train.json"), workflow_type="train",
                          **{**TINY_PRETRAINING, **outputs(tmp_path), "tasks": ["exemplar"],
                             "task_args#exemplar": {"view_size": [16, 16, 16]}})
    flow.initialize()
    flow.run()
    checkpoint = torch.load(tmp_path / "models" / "pretext_checkpoint.pt", weights_only=True)
    assert checkpoint["config"]["tasks"][0]["name"] == "exemplar"
