"""Intensity colorization task: restore the original intensities or channels through the whole network."""

from __future__ import annotations

import torch
from torch import nn

from monai_ssl.networks.adapters import EncoderAdapter
from monai_ssl.networks.heads import DenseHead
from monai_ssl.tasks.base import Batch, DenseRestorationTask
from monai_ssl.tasks.registry import register_task
from monai_ssl.transforms import RandIntensityColorizationd

__all__ = ["ColorizationTask"]


@register_task
class ColorizationTask(DenseRestorationTask):
    """Intensity colorization (Models Genesis' non-linear remap; missing MR channels; or binned intensities).

    The degraded volume goes through the *whole* network, encoder and decoder, and a 1x1x1 convolution maps the
    network's output channels to the target: the image's channels (``RestorationLoss``), or channels x ``bins``
    logits (cross-entropy) when ``bins`` is set. The input's spatial size must suit the network (e.g. a multiple
    of 16 for a UNet with four stride-2 levels).

    Args:
        source_key: key of the volume.
        loss: ``"mse"`` or ``"l1"`` for a restored image.
        kwargs: arguments of :py:class:`~monai_ssl.transforms.RandIntensityColorizationd` (``mode``,
            ``invert_prob``, ``bins``, ``bin_range``).
    """

    name = "colorization"

    def __init__(self, source_key: str = "image", loss: str = "mse", **kwargs) -> None:
        super().__init__(source_key, loss=loss, **kwargs)
        self.task_transform = RandIntensityColorizationd(keys=self.input_key, target_key=self.label_key, **kwargs)
        self.bins = self.task_transform.colorization.bins
        if self.bins is not None:
            self.loss = nn.CrossEntropyLoss()
            self.score_name = "accuracy"

    def build_head(self, adapter: EncoderAdapter) -> nn.Module:
        if self.bins is None:
            return super().build_head(adapter)
        return DenseHead(adapter.spatial_dims, adapter.out_channels, adapter.in_channels * self.bins)

    def predict(self, adapter: EncoderAdapter, head: nn.Module, batch: Batch) -> torch.Tensor:
        prediction = super().predict(adapter, head, batch)
        if self.bins is not None:  # (B, C * K, *spatial) -> (B, K, C, *spatial) for the cross-entropy
            b, _, *spatial = prediction.shape
            prediction = prediction.reshape(b, -1, self.bins, *spatial).transpose(1, 2)
        return prediction

    def score_counts(self, prediction: torch.Tensor, batch: Batch) -> tuple[float, float]:
        """Restored images: see :py:class:`DenseRestorationTask`; bins: ``(correct voxels, voxels)``."""
        if self.bins is None:
            return super().score_counts(prediction, batch)
        target = batch[self.label_key]
        return float((prediction.argmax(1) == target).sum()), float(target.numel())

    def chance_score(self) -> float:
        return 1.0 if self.bins is None else 1.0 / self.bins
