"""PretextEvaluator: held-out scores per task, the same crops at every evaluation, a history file and its plot."""

import json

import pytest
import torch
from monai.data import DataLoader, Dataset
from monai.transforms import Compose

from monai_ssl import PretextModel
from monai_ssl.evaluation import PretextEvaluator, PretextScore, PretextScoreHistory, chance_scores, plot_pretext_scores
from tests.helpers import SMALL_TASKS, phantom_samples, small_unet


def evaluator(model: PretextModel, seed: int = 0, **kwargs) -> PretextEvaluator:
    dataset = Dataset(phantom_samples(3, 32), Compose([model.transform()]))
    return PretextEvaluator("cpu", DataLoader(dataset, batch_size=2), model, seed=seed, **kwargs)


def test_each_task_is_scored_and_evaluations_repeat_exactly():
    model = PretextModel(small_unet(), SMALL_TASKS)
    engine = evaluator(model)
    engine.run()
    first = dict(engine.state.metrics)
    assert set(first) == {"jigsaw_accuracy", "rotation_accuracy", "colorization_mse_ratio",
                          "relative_position_accuracy"}
    assert all(0 <= v <= 1 for k, v in first.items() if k.endswith("accuracy")) and first["colorization_mse_ratio"] > 0
    engine.run()
    assert engine.state.metrics == first  # the held-out crops and pseudo-labels are re-drawn from the seed
    other = evaluator(model, seed=1)
    other.run()
    assert other.state.metrics != first


def test_evaluations_leave_the_training_stream_alone():
    """Training and validation datasets built from one model get transforms of their own: re-seeding the held-out
    ones at every evaluation made a num_workers=0 training stream replay the same pseudo-labels after each."""
    model = PretextModel(small_unet(), [{"name": "rotation"}])
    training = Dataset(phantom_samples(1, 32) * 8, model.transform())
    training.transform.set_random_state(5)

    def labels() -> list[int]:
        return [int(training[i]["rotation_label"]) for i in range(8)]

    engine = PretextEvaluator("cpu", DataLoader(Dataset(phantom_samples(2, 32), model.transform()), batch_size=2),
                              model, seed=5)
    engine.run()
    first = labels()
    engine.run()
    assert labels() != first  # the stream went on; before, it started over at the evaluator's seed
    task = model.tasks["rotation"]
    first_transform, second_transform = task.transform().transforms[1], task.transform().transforms[1]
    assert first_transform is not second_transform and first_transform.R is not second_transform.R


def test_score_counts():
    model = PretextModel(small_unet(), [{"name": "rotation"}, {"name": "colorization"}])
    rotation, colorization = model.tasks["rotation"], model.tasks["colorization"]
    logits = torch.zeros(4, 10)
    logits[torch.arange(4), torch.tensor([1, 2, 3, 0])] = 1
    assert rotation.score_counts(logits, {"rotation_label": torch.tensor([1, 2, 0, 0])}) == (3.0, 4.0)
    target = torch.ones(1, 1, 2, 2, 2)
    batch = {"colorization_input": torch.zeros_like(target), "colorization_target": target}
    assert colorization.score_counts(target * 0.5, batch) == (2.0, 8.0)  # a quarter of the identity's error
    metric = PretextScore(rotation)
    with pytest.raises(RuntimeError, match="no held-out sample"):
        metric.compute()
    assert chance_scores(model) == {"rotation_accuracy": 0.1, "colorization_mse_ratio": 1.0}


def test_history_file_survives_a_resume_and_plots(tmp_path):
    model = PretextModel(small_unet(), SMALL_TASKS)
    path = str(tmp_path / "scores.json")
    history = PretextScoreHistory(path, chance_scores(model), iterations_per_epoch=10)
    engine = evaluator(model, val_handlers=[history])
    for epoch in (1, 2, 3):
        engine.run(global_epoch=epoch)
    engine.run(global_epoch=2)  # a run resumed from epoch 1 evaluates epoch 2 again: later entries are replaced
    data = json.loads(open(path).read())
    assert [e["epoch"] for e in data["history"]] == [1, 2]
    assert [e["iteration"] for e in data["history"]] == [10, 20]
    assert data["chance"]["rotation_accuracy"] == 0.1
    png = plot_pretext_scores(path, str(tmp_path / "scores.png"), title="test")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
