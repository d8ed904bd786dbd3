"""The pretext model: a MONAI segmentation network instance plus small task heads, trained on any mix of tasks."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.transforms import Compose, EnsureTyped
from torch import nn

from monai_ssl.losses import MultiTaskLoss
from monai_ssl.networks.adapters import get_adapter
from monai_ssl.tasks import PretextTask, create_task

__all__ = ["PretextModel"]

logger = logging.getLogger(__name__)

TaskSpec = PretextTask | str | Mapping[str, Any]


def _as_task(spec: TaskSpec) -> PretextTask:
    if isinstance(spec, PretextTask):
        return spec
    if isinstance(spec, str):
        return create_task(spec)
    if isinstance(spec, Mapping) and "name" in spec:
        return create_task(spec["name"], **dict(spec.get("args", {})))
    raise ValueError(f"a task is a PretextTask, a registered name or {{'name': ..., 'args': {{...}}}}; got {spec!r}.")


class PretextModel(nn.Module):
    """Wrap a MONAI segmentation network *instance* with heads for a set of pretext tasks.

    The network's own parameters are trained, not a copy: after pretraining, ``network.state_dict()`` is the
    pretrained network, with MONAI's own key names. What each task trains:

    - ``jigsaw`` and ``relative_position``: the encoder, shared across the cubes or patches (siamese), and an MLP
      head on their concatenated, pooled deepest features;
    - ``rotation``: the encoder and an MLP head on the pooled deepest features;
    - ``colorization``: the whole network (encoder, decoder and final layer) and a 1x1x1 convolution head.

    Multi-task training sums the weighted losses of *every* task on *every* batch (no task sampling): each
    sample carries one input per task, made by :py:meth:`transform` from the same preprocessed volume.

    ``forward(batch)`` takes the collated batch dict and returns ``{task name: prediction}``;
    :py:meth:`compute_loss` turns predictions into the weighted total, the signature MONAI's
    ``SupervisedTrainer`` expects of a loss function.

    Args:
        network: the network instance, e.g. ``monai.networks.nets.UNet(...)``; it needs a registered adapter
            (:py:func:`~monai_ssl.networks.get_adapter`).
        tasks: task names, task configs ``{"name": ..., "args": {...}}`` or :py:class:`PretextTask` objects.
        loss_weights: ``{task name: weight}``; missing tasks weigh 1.
        network_args: the network's constructor arguments, recorded in checkpoints; by default they are read
            off the instance where the network keeps them.
    """

    def __init__(
        self,
        network: nn.Module,
        tasks: Sequence[TaskSpec],
        loss_weights: Mapping[str, float] | None = None,
        network_args: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        task_objects = [_as_task(t) for t in tasks]
        if not task_objects:
            raise ValueError("tasks must name at least one pretext task.")
        names = [t.name for t in task_objects]
        if len(set(names)) != len(names):
            raise ValueError(f"each task may appear once, got {names}.")
        unknown = set(loss_weights or {}) - set(names)
        if unknown:
            raise ValueError(f"loss_weights name tasks that are not trained: {sorted(unknown)}; tasks are {names}.")
        self.network = network
        self.adapter = get_adapter(network)
        self.tasks = {t.name: t for t in task_objects}
        self.heads = nn.ModuleDict({t.name: t.build_head(self.adapter) for t in task_objects})
        self.loss_function = MultiTaskLoss({n: (loss_weights or {}).get(n, 1.0) for n in names})
        self.network_args = dict(network_args) if network_args is not None else self.adapter.network_args()
        logger.info(
            "pretext model on %s: %s",
            type(network).__name__,
            "; ".join(f"{t.name} trains the {t.trains}" for t in task_objects),
        )

    def transform(self) -> Compose:
        """Every task's transform from the preprocessed ``source_key`` volume, then plain tensors for collation."""
        keys = [k for t in self.tasks.values() for k in t.batch_keys]
        stages = [t.transform() for t in self.tasks.values()]
        return Compose([*stages, EnsureTyped(keys=keys, track_meta=False, allow_missing_keys=True)])

    def forward(self, batch: Mapping[Hashable, Any]) -> dict[str, torch.Tensor]:
        return {name: task.predict(self.adapter, self.heads[name], batch) for name, task in self.tasks.items()}

    def compute_loss(self, predictions: Mapping[str, torch.Tensor], batch: Mapping[Hashable, Any]) -> torch.Tensor:
        """Weighted sum of the task losses; unweighted values are in ``loss_function.last_losses``."""
        return self.loss_function({n: t.compute_loss(predictions[n], batch) for n, t in self.tasks.items()})

    def accuracies(self, predictions: Mapping[str, torch.Tensor], batch: Mapping[Hashable, Any]) -> dict[str, float]:
        """Batch accuracy of each classification task."""
        values = {n: t.accuracy(predictions[n], batch) for n, t in self.tasks.items()}
        return {n: v for n, v in values.items() if v is not None}

    def config(self) -> dict:
        """Network class and arguments, tasks with their arguments, and loss weights (JSON-serialisable)."""
        cls = type(self.network)
        return {
            "network": {"class": f"{cls.__module__}.{cls.__qualname__}", "args": self.network_args},
            "tasks": [t.config() for t in self.tasks.values()],
            "loss_weights": dict(self.loss_function.weights),
        }
