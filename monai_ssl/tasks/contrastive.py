"""Contrastive task (SimCLR): the two augmented views of a volume must be closer to each other than to the views
of the other volumes of the (global) batch."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from monai_ssl.losses import GatheredContrastiveLoss
from monai_ssl.networks.adapters import EncoderAdapter
from monai_ssl.networks.heads import ClassificationHead, pool_features
from monai_ssl.tasks.base import Batch, PretextTask
from monai_ssl.tasks.registry import register_task
from monai_ssl.transforms import RandContrastiveViewsd

__all__ = ["TwoViewTask", "ContrastiveTask"]


class TwoViewTask(PretextTask):
    """Two augmented views of each volume (:py:class:`~monai_ssl.transforms.RandContrastiveViewsd`) through the
    shared encoder; their pooled deepest features through an MLP to ``output_size`` values, ``(B, 2, D)``.
    Subclasses set the loss and the score on these embeddings.

    Args:
        source_key: key of the volume.
        output_size: size of the embeddings the loss compares.
        view_args: arguments of :py:class:`~monai_ssl.transforms.RandContrastiveViewsd`.
        kwargs: the subclass's own arguments, recorded in :py:meth:`config`.
    """

    trains = "encoder (shared across views)"

    def __init__(self, source_key: str, output_size: int, view_args: dict, **kwargs) -> None:
        super().__init__(source_key, **kwargs, **view_args)
        self.task_transform = RandContrastiveViewsd(keys=self.input_key, **view_args)
        self.output_size = int(output_size)

    def check_setup(self, roi_size: tuple[int, ...], adapter: EncoderAdapter) -> None:
        view = self.task_transform.views.view_size
        if any(v > r for v, r in zip(view, roi_size)):
            raise ValueError(f"the {self.name} view_size {list(view)} is larger than roi_size {list(roi_size)}; use "
                             "a smaller view_size.")
        adapter.check_input_size(view)

    def build_head(self, adapter: EncoderAdapter) -> nn.Module:
        return ClassificationHead(adapter.feature_channels, self.output_size)

    def predict(self, adapter: EncoderAdapter, head: nn.Module, batch: Batch) -> torch.Tensor:
        """The embeddings of both views, ``(B, 2, output_size)``."""
        views = batch[self.input_key]
        batch_size = views.shape[0]
        adapter.check_input_size(views.shape[3:])
        features = pool_features(adapter.encode(views.flatten(0, 1))[-1])
        return head(features).reshape(batch_size, 2, -1)

    def chance_score(self) -> float:
        return 0.5


@register_task
class ContrastiveTask(TwoViewTask):
    """SimCLR (Chen et al., ICML 2020) on 3D volumes: both views go through the shared encoder, their pooled
    deepest features through a projection MLP, and :py:class:`~monai_ssl.losses.GatheredContrastiveLoss` (NT-Xent)
    pulls each pair together against the other samples of the batch, gathered from every process under DDP.

    The held-out score is the fraction of views whose own pair is more similar than the other view of the next
    sample in the batch: 0.5 by chance, whatever the batch size.

    Args:
        source_key: key of the volume.
        temperature: NT-Xent temperature.
        projection_dim: size of the projections the loss compares.
        kwargs: arguments of :py:class:`~monai_ssl.transforms.RandContrastiveViewsd` (``view_size``,
            ``flip_prob``, ``intensity_prob``, ``noise_prob``, ``noise_std``, ``blur_prob``).
    """

    name = "contrastive"

    def __init__(self, source_key: str = "image", temperature: float = 0.5, projection_dim: int = 128,
                 **kwargs) -> None:
        super().__init__(source_key, projection_dim, kwargs, temperature=temperature, projection_dim=projection_dim)
        self.loss = GatheredContrastiveLoss(temperature)
        self.score_name = "pair_accuracy"

    def compute_loss(self, prediction: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.loss(prediction[:, 0], prediction[:, 1])

    def score_counts(self, prediction: torch.Tensor, batch: Batch) -> tuple[float, float]:
        """``(views closer to their own pair than to the next sample's other view, views)``; none for a batch of
        one, which has no negative."""
        if prediction.shape[0] < 2:
            return 0.0, 0.0
        first, second = F.normalize(prediction[:, 0], dim=1), F.normalize(prediction[:, 1], dim=1)
        positive = (first * second).sum(1)
        correct = ((first * second.roll(1, 0)).sum(1) < positive).sum() + (
            (second * first.roll(1, 0)).sum(1) < positive).sum()
        return float(correct), float(2 * prediction.shape[0])
