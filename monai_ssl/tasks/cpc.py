"""3D contrastive predictive coding task: the context rows of a grid of patches predict the encodings of the
rows below, against the encodings of other positions and samples (InfoNCE)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from monai_ssl.networks.adapters import EncoderAdapter
from monai_ssl.networks.heads import pool_features
from monai_ssl.tasks.base import Batch, PretextTask, other_volume_index
from monai_ssl.tasks.registry import register_task
from monai_ssl.transforms import RandCPCPatchesd

__all__ = ["CPCTask", "CPCHead"]


class CPCHead(nn.Module):
    """The context network and the predictors of 3D CPC.

    The context of each column ``(y, z)`` of the grid is its ``context_rows`` encodings along the first axis,
    concatenated and passed through an MLP; one linear predictor per row below maps that context to the
    predicted encoding of the cube in that row and column.

    Args:
        feature_channels: size of a cube's encoding.
        context_rows: rows of the context.
        target_rows: rows to predict.
        hidden_features: width of the context MLP.
    """

    def __init__(self, feature_channels: int, context_rows: int, target_rows: int, hidden_features: int = 256) -> None:
        super().__init__()
        if min(feature_channels, context_rows, target_rows, hidden_features) < 1:
            raise ValueError("feature_channels, context_rows, target_rows and hidden_features must be >= 1.")
        self.context = nn.Sequential(nn.Linear(context_rows * feature_channels, hidden_features),
                                     nn.LayerNorm(hidden_features), nn.ReLU(inplace=True))
        self.predictors = nn.ModuleList(nn.Linear(hidden_features, feature_channels) for _ in range(target_rows))

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        """``context`` ``(B, rows, Y, Z, F)`` to predictions ``(B, target_rows, Y, Z, F)``."""
        columns = self.context(context.permute(0, 2, 3, 1, 4).flatten(3))  # (B, Y, Z, hidden)
        return torch.stack([predict(columns) for predict in self.predictors], dim=1)


@register_task
class CPCTask(PretextTask):
    """3D contrastive predictive coding (van den Oord et al. 2018; 3D as in Taleb et al., NeurIPS 2020).

    Every cube of :py:class:`~monai_ssl.transforms.RandCPCPatchesd` goes through the shared encoder; the pooled
    encodings of the context rows predict, through :py:class:`CPCHead`, those of every other cube. The loss is
    InfoNCE: each prediction must pick its own cube's encoding among all the target cubes of the batch (other
    positions and other samples). Target cubes are never in their own context (disjoint rows).

    The held-out score is the fraction of predictions nearer (cosine) to their own target than to the target of
    the next sample at the same position: 0.5 by chance.

    Args:
        source_key: key of the volume.
        temperature: InfoNCE temperature on cosine similarities.
        kwargs: arguments of :py:class:`~monai_ssl.transforms.RandCPCPatchesd` (``patch_size``, ``grid``,
            ``jitter``, ``context_rows``).
    """

    name = "cpc"
    trains = "encoder (shared across patches)"

    def __init__(self, source_key: str = "image", temperature: float = 0.1, **kwargs) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        super().__init__(source_key, temperature=temperature, **kwargs)
        self.task_transform = RandCPCPatchesd(keys=self.input_key, **kwargs)
        self.temperature = float(temperature)
        self.loss = nn.CrossEntropyLoss()
        self.score_name = "prediction_accuracy"

    @property
    def patches(self):
        return self.task_transform.patches

    def check_setup(self, roi_size: tuple[int, ...], adapter: EncoderAdapter) -> None:
        if any(p > r for p, r in zip(self.patches.patch_size, roi_size)):
            raise ValueError(f"the CPC patch_size {list(self.patches.patch_size)} is larger than roi_size "
                             f"{list(roi_size)}; use a smaller patch_size.")
        adapter.check_input_size(self.patches.patch_size)

    def build_head(self, adapter: EncoderAdapter) -> nn.Module:
        rows = self.patches.grid[0]
        return CPCHead(adapter.feature_channels, self.patches.context_rows, rows - self.patches.context_rows)

    def predict(self, adapter: EncoderAdapter, head: nn.Module, batch: Batch) -> torch.Tensor:
        """Predicted and actual encodings of the target cubes, ``(B, targets, 2, F)``."""
        cubes = batch[self.input_key]
        batch_size = cubes.shape[0]
        adapter.check_input_size(cubes.shape[3:])
        encodings = pool_features(adapter.encode(cubes.flatten(0, 1))[-1])
        grid = encodings.reshape(batch_size, *self.patches.grid, -1)
        rows = self.patches.context_rows
        predicted = head(grid[:, :rows]).flatten(1, 3)
        actual = grid[:, rows:].flatten(1, 3)
        return torch.stack([predicted, actual], dim=2)

    def compute_loss(self, prediction: torch.Tensor, batch: Batch) -> torch.Tensor:
        predicted = F.normalize(prediction[:, :, 0].flatten(0, 1), dim=1)
        actual = F.normalize(prediction[:, :, 1].flatten(0, 1), dim=1)
        logits = predicted @ actual.T / self.temperature
        return self.loss(logits, torch.arange(logits.shape[0], device=logits.device))

    def score_counts(self, prediction: torch.Tensor, batch: Batch) -> tuple[float, float]:
        """``(predictions nearer their own target than the target at the same position of the next sample of
        another volume, predictions)``; samples with no crop of another volume in the batch are not scored."""
        other = other_volume_index(batch, prediction.shape[0], prediction.device)
        scored = other >= 0
        predicted = F.normalize(prediction[scored, :, 0], dim=2)
        actual = F.normalize(prediction[:, :, 1], dim=2)
        own = (predicted * actual[scored]).sum(2)
        negative = (predicted * actual[other[scored]]).sum(2)
        return float((own > negative).sum()), float(own.numel())

    def chance_score(self) -> float:
        return 0.5
