"""Exemplar task (3D exemplar networks, Taleb et al. 2020): a volume's embedding must be closer to a heavily
augmented copy of itself than to another volume."""

from __future__ import annotations

import torch
from torch import nn

from monai_ssl.tasks.base import Batch
from monai_ssl.tasks.contrastive import TwoViewTask
from monai_ssl.tasks.registry import register_task

__all__ = ["ExemplarTask"]

# Exemplar networks learn invariance to strong augmentation: every augmentation is on by default
HEAVY_AUGMENTATION = {"flip_prob": 0.5, "intensity_prob": 1.0, "noise_prob": 0.8, "noise_std": 0.1, "blur_prob": 0.8}


@register_task
class ExemplarTask(TwoViewTask):
    """3D exemplar (Dosovitskiy et al. 2014; 3D as in Taleb et al., NeurIPS 2020): the anchor is one augmented view
    of a volume, the positive another, heavily augmented, view of the same volume, and the negative the anchor of
    the next volume in the batch. A triplet margin loss on the pooled encoder embeddings pulls the positive closer
    than the negative by ``margin``.

    The held-out score is the fraction of triplets whose positive is nearer than their negative: 0.5 by chance.
    A batch needs at least two volumes (one is the other's negative).

    Args:
        source_key: key of the volume.
        margin: triplet margin.
        embedding_dim: size of the embeddings.
        kwargs: arguments of :py:class:`~monai_ssl.transforms.RandContrastiveViewsd`; heavier augmentation than
            the contrastive task's by default.
    """

    name = "exemplar"

    def __init__(self, source_key: str = "image", margin: float = 1.0, embedding_dim: int = 128, **kwargs) -> None:
        if margin <= 0:
            raise ValueError(f"margin must be > 0, got {margin}.")
        super().__init__(source_key, embedding_dim, {**HEAVY_AUGMENTATION, **kwargs}, margin=margin,
                         embedding_dim=embedding_dim)
        self.loss = nn.TripletMarginLoss(margin=margin)
        self.score_name = "triplet_accuracy"

    def _triplets(self, prediction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if prediction.shape[0] < 2:
            raise ValueError("the exemplar task needs at least two volumes per batch (each one is another's "
                             "negative); raise batch_size or samples_per_volume.")
        anchor, positive = prediction[:, 0], prediction[:, 1]
        return anchor, positive, anchor.roll(1, 0)

    def compute_loss(self, prediction: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.loss(*self._triplets(prediction))

    def score_counts(self, prediction: torch.Tensor, batch: Batch) -> tuple[float, float]:
        """``(triplets whose positive is nearer than the negative, triplets)``; none for a batch of one."""
        if prediction.shape[0] < 2:
            return 0.0, 0.0
        anchor, positive, negative = self._triplets(prediction)
        nearer = (anchor - positive).norm(dim=1) < (anchor - negative).norm(dim=1)
        return float(nearer.sum()), float(nearer.numel())
