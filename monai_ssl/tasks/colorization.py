"""Intensity colorization task: restore the original intensities or channels through the whole network."""

from __future__ import annotations

import torch
from torch import nn

from monai_ssl.losses import RestorationLoss
from monai_ssl.networks.adapters import EncoderAdapter
from monai_ssl.networks.heads import DenseHead
from monai_ssl.tasks.base import Batch, PretextTask
from monai_ssl.tasks.registry import register_task
from monai_ssl.transforms import RandIntensityColorizationd

__all__ = ["ColorizationTask"]


@register_task
class ColorizationTask(PretextTask):
    """Intensity colorization (Models Genesis' non-linear remap; missing MR channels; or binned intensities).

    The degraded volume goes through the *whole* network, encoder and decoder, and a 1x1x1 convolution maps the
    network's output channels to the target: the image's channels (``RestorationLoss``), or channels x ``bins``
    logits (cross-entropy) when ``bins`` is set. The input's spatial size must suit the network (e.g. a multiple
    of 16 for a UNet with four stride-2 levels).

    Args:
        source_key: key of the volume.
        in_channels: channels of the volume (the restoration target); defaults to the network's input channels
            when the head is built.
        loss: ``"mse"`` or ``"l1"`` for a restored image.
        kwargs: arguments of :py:class:`~monai_ssl.transforms.RandIntensityColorizationd` (``mode``,
            ``invert_prob``, ``bins``, ``bin_range``).
    """

    name = "colorization"
    trains = "encoder, decoder and final layer"

    def __init__(self, source_key: str = "image", loss: str = "mse", **kwargs) -> None:
        super().__init__(source_key, loss=loss, **kwargs)
        self.label_key = f"{self.name}_target"
        self.task_transform = RandIntensityColorizationd(keys=self.input_key, target_key=self.label_key, **kwargs)
        self.bins = self.task_transform.colorization.bins
        self.loss = RestorationLoss(loss) if self.bins is None else nn.CrossEntropyLoss()
        self.score_name = "mse_ratio" if self.bins is None else "accuracy"

    def check_setup(self, roi_size: tuple[int, ...], adapter: EncoderAdapter) -> None:
        divisor = adapter.downsampling
        if any(r % divisor for r in roi_size):
            raise ValueError(f"colorization runs the whole network on roi_size {list(roi_size)}; use multiples of "
                             f"{divisor} (the network's total downsampling).")

    def build_head(self, adapter: EncoderAdapter) -> nn.Module:
        outputs = adapter.in_channels * (self.bins or 1)
        return DenseHead(adapter.spatial_dims, adapter.out_channels, outputs)

    def predict(self, adapter: EncoderAdapter, head: nn.Module, batch: Batch) -> torch.Tensor:
        prediction = head(adapter.network(batch[self.input_key]))
        if self.bins is not None:  # (B, C * K, *spatial) -> (B, K, C, *spatial) for the cross-entropy
            b, _, *spatial = prediction.shape
            prediction = prediction.reshape(b, -1, self.bins, *spatial).transpose(1, 2)
        return prediction

    def accuracy(self, prediction: torch.Tensor, batch: Batch) -> float | None:
        if self.bins is None:
            return None
        correct, total = self.score_counts(prediction, batch)
        return correct / total

    def score_counts(self, prediction: torch.Tensor, batch: Batch) -> tuple[float, float]:
        """Restored images: the squared error of the restoration and of the degraded input itself (the identity
        baseline), so the score is the MSE as a fraction of doing nothing; bins: ``(correct voxels, voxels)``."""
        target = batch[self.label_key]
        if self.bins is not None:
            return float((prediction.argmax(1) == target).sum()), float(target.numel())
        restoration = float(((prediction.float() - target) ** 2).sum())
        identity = float(((batch[self.input_key].float() - target) ** 2).sum())
        return restoration, identity

    def chance_score(self) -> float:
        return 1.0 if self.bins is None else 1.0 / self.bins
