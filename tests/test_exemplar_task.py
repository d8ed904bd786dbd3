"""The registered 3D exemplar task: triplets, score, configuration round trip and the bundle."""

import pytest
import torch
from monai.bundle import ConfigWorkflow
from monai.data import DataLoader, Dataset

from monai_ssl import PretextModel, create_task, list_tasks
from tests.helpers import PRETRAINING, TINY_PRETRAINING, outputs, phantom_samples, small_unet


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
    batch = next(iter(DataLoader(Dataset(phantom_samples(3, 32), transform=model.transform()), batch_size=3)))
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
    with pytest.raises(ValueError, match="at least two volumes per batch"):
        task.compute_loss(near[:1], batch)


def test_the_pretraining_bundle_runs_it(tmp_path):
    flow = ConfigWorkflow(config_file=str(PRETRAINING / "train.json"), workflow_type="train",
                          **{**TINY_PRETRAINING, **outputs(tmp_path), "tasks": ["exemplar"],
                             "task_args#exemplar": {"view_size": [16, 16, 16]}})
    flow.initialize()
    flow.run()
    checkpoint = torch.load(tmp_path / "models" / "pretext_checkpoint.pt", weights_only=True)
    assert checkpoint["config"]["tasks"][0]["name"] == "exemplar"
