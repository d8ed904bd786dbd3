"""Exemplar task (3D exemplar networks, Taleb et al. 2020): a volume's embedding must be closer to a heavily
augmented copy of itself than to another volume."""

from __future__ import annotations

import logging

import torch
from torch import nn

from monai_ssl.tasks.base import Batch, other_volume_index
from monai_ssl.tasks.contrastive import TwoViewTask
from monai_ssl.tasks.registry import register_task

__all__ = ["ExemplarTask"]

logger = logging.getLogger(__name__)

# Exemplar networks learn invariance to strong augmentation: every augmentation is on by default
HEAVY_AUGMENTATION = {"flip_prob": 0.5, "intensity_prob": 1.0, "noise_prob": 0.8, "noise_std": 0.1, "blur_prob": 0.8}


@register_task
class ExemplarTask(TwoViewTask):
    """3D exemplar (Dosovitskiy et al. 2014; 3D as in Taleb et al., NeurIPS 2020): the anchor is one augmented view
    of a volume, the positive another, heavily augmented, view of the same volume, and the negative the anchor of
    the next sample in the batch cut from *another volume* (``volume_id``; the crops of one volume sit together in
    a batch). A triplet margin loss on the pooled encoder embeddings pulls the positive closer than the negative by
    ``margin``.

    The held-out score is the fraction of triplets whose positive is nearer than their negative: 0.5 by chance.
    Samples with no crop of another volume in their batch (a last batch of one volume) have no triplet.

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

    def _triplets(self, prediction: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        other = other_volume_index(batch, prediction.shape[0], prediction.device)
        has_negative = other >= 0
        anchor, positive = prediction[has_negative, 0], prediction[has_negative, 1]
        return anchor, positive, prediction[other[has_negative], 0]

    def compute_loss(self, prediction: torch.Tensor, batch: Batch) -> torch.Tensor:
        anchor, positive, negative = self._triplets(prediction, batch)
        if not anchor.shape[0]:
            logger.warning("exemplar: every sample of this batch is a crop of one volume, so none has a negative; "
                           "the batch adds nothing to this task's loss (raise batch_size to 2 volumes or more).")
            return prediction.sum() * 0.0
        return self.loss(anchor, positive, negative)

    def score_counts(self, prediction: torch.Tensor, batch: Batch) -> tuple[float, float]:
        """``(triplets whose positive is nearer than the negative, triplets)``."""
        anchor, positive, negative = self._triplets(prediction, batch)
        nearer = (anchor - positive).norm(dim=1) < (anchor - negative).norm(dim=1)
        return float(nearer.sum()), float(nearer.numel())
