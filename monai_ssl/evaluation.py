"""Held-out evaluation of the pretext tasks: is each task learnt, on volumes outside the pretraining pool?

:py:class:`PretextEvaluator` is MONAI's ``SupervisedEvaluator`` over pretext batches, with one ignite metric per
task (:py:class:`PretextScore`): accuracy for the classification tasks, and for colorization the restoration's
squared error as a fraction of the degraded input's (below 1 means better than doing nothing). The crops and
pseudo-labels are re-drawn from the same seed at every evaluation, so the scores of a run are comparable over
time. :py:class:`PretextScoreHistory` keeps them in a JSON file, and :func:`plot_pretext_scores` draws the curves.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.metrics import Metric
from monai.engines import SupervisedEvaluator
from monai.utils import CommonKeys as Keys

from monai_ssl.engine import prepare_pretext_batch
from monai_ssl.pretext_model import PretextModel
from monai_ssl.tasks import PretextTask
from monai_ssl.utils import atomic_write_text

__all__ = ["PretextScore", "PretextEvaluator", "PretextScoreHistory", "chance_scores", "plot_pretext_scores",
           "score_checkpoint", "score_metric_name"]

logger = logging.getLogger(__name__)


def score_metric_name(task: PretextTask) -> str:
    """The metric name of a task's held-out score, e.g. ``"rotation_accuracy"``."""
    return f"{task.name}_{task.score_name}"


class PretextScore(Metric):
    """An ignite metric: the ratio of the two sums of ``task.score_counts`` over all evaluated batches.

    Args:
        task: the pretext task.
        output_transform: maps the engine output to ``(predictions dict, batch dict)``.
    """

    def __init__(self, task: PretextTask, output_transform=lambda output: (output[Keys.PRED], output[Keys.LABEL])):
        self.task = task
        self._numerator = 0.0
        self._denominator = 0.0
        super().__init__(output_transform=output_transform)

    def reset(self) -> None:
        self._numerator = 0.0
        self._denominator = 0.0

    def update(self, output: tuple[Mapping[str, torch.Tensor], Mapping[str, Any]]) -> None:
        predictions, batch = output
        numerator, denominator = self.task.score_counts(predictions[self.task.name], batch)
        self._numerator += numerator
        self._denominator += denominator

    def compute(self) -> float:
        if self._denominator == 0:
            raise RuntimeError(f"no held-out sample was scored for task {self.task.name!r}.")
        return self._numerator / self._denominator


class PretextEvaluator(SupervisedEvaluator):
    """MONAI ``SupervisedEvaluator`` scoring every task of a :py:class:`~monai_ssl.PretextModel` on held-out data.

    ``state.metrics`` holds ``"<task>_accuracy"`` (or ``"colorization_mse_ratio"``) per task; the key metric is
    the first task's score. The loader's transforms are re-seeded with ``seed`` when each evaluation starts, so
    every evaluation scores the same crops and pseudo-labels (use ``num_workers=0`` for that to hold).

    Args:
        device: device to evaluate on.
        val_data_loader: loader of held-out batches made by ``model.transform()``.
        model: the pretext model.
        network: the module to call, if not ``model`` (e.g. its ``DistributedDataParallel`` wrapper).
        seed: seed of the held-out crops and pseudo-labels.
        kwargs: other ``SupervisedEvaluator`` arguments (``val_handlers``, ``amp``, ...).
    """

    def __init__(
        self,
        device: str | torch.device,
        val_data_loader,
        model: PretextModel,
        network: torch.nn.Module | None = None,
        seed: int = 0,
        **kwargs,
    ) -> None:
        metrics = {score_metric_name(task): PretextScore(task) for task in model.tasks.values()}
        first = next(iter(metrics))
        kwargs.setdefault("decollate", False)
        super().__init__(
            device=device,
            val_data_loader=val_data_loader,
            network=model if network is None else network,
            prepare_batch=prepare_pretext_batch,
            key_val_metric={first: metrics.pop(first)},
            additional_metrics=metrics,
            **kwargs,
        )
        self.seed = seed
        self.add_event_handler(Events.STARTED, self._reseed)

    def _reseed(self, engine: Engine) -> None:
        for dataset in getattr(self.data_loader.dataset, "datasets", [self.data_loader.dataset]):
            transform = getattr(dataset, "transform", None)
            if transform is not None and hasattr(transform, "set_random_state"):
                transform.set_random_state(seed=self.seed)


def chance_scores(model: PretextModel) -> dict[str, float]:
    """The score of guessing for each task of ``model``, by metric name."""
    return {score_metric_name(t): t.chance_score() for t in model.tasks.values()}


class PretextScoreHistory:
    """Ignite handler appending an evaluator's metrics after each evaluation to a JSON file.

    The file, ``{"chance": {...}, "history": [{"epoch": E, "iteration": N, "<metric>": value, ...}, ...]}``, is
    rewritten atomically after every evaluation and survives a resume (entries up to the resumed epoch are kept).
    ``epoch`` is the training epoch the evaluator was run after (``ValidationHandler`` passes it on).

    Args:
        path: the JSON file.
        chance: metric name to chance score, stored alongside for the plots (see :func:`chance_scores`).
        iterations_per_epoch: training iterations per epoch, to label entries with the iteration as well.
    """

    def __init__(self, path: str, chance: Mapping[str, float] | None = None,
                 iterations_per_epoch: int | None = None) -> None:
        self.path = path
        self.chance = dict(chance or {})
        self.iterations_per_epoch = iterations_per_epoch

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        epoch = int(engine.state.epoch)
        history = []
        if os.path.isfile(self.path):
            with open(self.path) as f:
                history = [e for e in json.load(f).get("history", []) if e["epoch"] < epoch]
        entry: dict[str, float] = {"epoch": epoch}
        if self.iterations_per_epoch:
            entry["iteration"] = epoch * int(self.iterations_per_epoch)
        entry.update({k: float(v) for k, v in engine.state.metrics.items()})
        history.append(entry)
        atomic_write_text(self.path, json.dumps({"chance": self.chance, "history": history}, indent=1))


def score_checkpoint(
    checkpoint_path: str,
    files: Sequence[Mapping[str, Any]],
    modality: str = "MR",
    spacing: Sequence[float] | None = (2.0, 2.0, 2.0),
    roi_size: Sequence[int] = (64, 64, 64),
    samples_per_volume: int = 4,
    seed: int = 0,
    batch_size: int = 2,
) -> dict[str, float]:
    """Held-out scores of a pretraining checkpoint (network, heads and config, e.g. ``pretext_checkpoint.pt``) on
    ``files`` (``{"image"}`` or ``{"label_map"}`` entries): the network and tasks are rebuilt from its config."""
    import importlib

    from monai.data import DataLoader

    from monai_ssl.bundle import pretext_dataset
    from monai_ssl.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(checkpoint_path)
    if "heads" not in checkpoint or "config" not in checkpoint:
        raise ValueError(f"{checkpoint_path} has no task heads or config: score a pretraining checkpoint, not a "
                         "plain network state_dict.")
    network_config = checkpoint["config"]["network"]
    module, _, name = network_config["class"].rpartition(".")
    network = getattr(importlib.import_module(module), name)(**network_config["args"])
    model = PretextModel(network, checkpoint["config"]["tasks"])
    model.network.load_state_dict(checkpoint["model"])
    model.heads.load_state_dict(checkpoint["heads"])
    dataset = pretext_dataset(files, model, modality, spacing, roi_size, samples_per_volume=samples_per_volume)
    evaluator = PretextEvaluator("cpu", DataLoader(dataset, batch_size=batch_size), model, seed=seed)
    evaluator.run()
    return {k: float(v) for k, v in evaluator.state.metrics.items()}


def plot_pretext_scores(history_path: str, output_path: str, title: str | None = None) -> str:
    """Draw each task's held-out score against the training iteration, with its chance level, as a PNG."""
    from matplotlib.figure import Figure

    with open(history_path) as f:
        data = json.load(f)
    history: Sequence[dict] = data["history"]
    if not history:
        raise ValueError(f"{history_path} holds no evaluation yet.")
    axis = "iteration" if "iteration" in history[0] else "epoch"
    names = [k for k in history[0] if k not in ("epoch", "iteration")]
    fig = Figure(figsize=(3.6 * len(names), 3.2))  # no pyplot: the user's matplotlib backend is left alone
    axes = fig.subplots(1, len(names), squeeze=False)
    for ax, name in zip(axes[0], names):
        ax.plot([e[axis] for e in history], [e[name] for e in history], marker=".", label="held-out")
        if name in data.get("chance", {}):
            ax.axhline(data["chance"][name], color="grey", linestyle="--", label="chance / identity")
        ax.set_title(name.replace("_", " "), fontsize=10)
        ax.set_xlabel(f"training {axis}")
        ax.set_ylim(0, max(1.05, max(e[name] for e in history) * 1.05))
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(output_path, dpi=100)
    return output_path
