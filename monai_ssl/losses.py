"""Pretext losses: small modules that validate their arguments."""

from __future__ import annotations

from collections.abc import Mapping

import ignite.distributed as idist
import torch
from monai.losses import ContrastiveLoss
from torch import nn
from torch.nn import functional as F

__all__ = ["JigsawLoss", "RestorationLoss", "GatheredContrastiveLoss", "LocalContrastiveLoss", "MultiTaskLoss"]


class JigsawLoss(nn.Module):
    """Cross-entropy over the permutation logits, plus binary cross-entropy over per-cube rotation flags.

    The prediction holds ``num_permutations`` logits followed by ``num_flags`` flag logits.

    Args:
        num_permutations: number of permutation classes.
        num_flags: number of per-cube flags (cubes x flip axes), 0 without Rubik's-cube rotations.
        flag_weight: weight of the flag term.
    """

    def __init__(self, num_permutations: int, num_flags: int = 0, flag_weight: float = 1.0) -> None:
        super().__init__()
        if num_permutations < 2:
            raise ValueError(f"num_permutations must be >= 2, got {num_permutations}.")
        if num_flags < 0 or flag_weight < 0:
            raise ValueError(f"num_flags and flag_weight must be >= 0, got {num_flags} and {flag_weight}.")
        self.num_permutations = num_permutations
        self.num_flags = num_flags
        self.flag_weight = flag_weight

    def forward(self, prediction: torch.Tensor, label: torch.Tensor, flags: torch.Tensor | None = None):
        expected = self.num_permutations + self.num_flags
        if prediction.shape[-1] != expected:
            raise ValueError(f"expected {expected} logits, got {prediction.shape[-1]}.")
        loss = F.cross_entropy(prediction[:, : self.num_permutations], label)
        if self.num_flags:
            if flags is None:
                raise ValueError("this jigsaw predicts per-cube flags: pass the flag targets.")
            flag_logits = prediction[:, self.num_permutations :]
            loss = loss + self.flag_weight * F.binary_cross_entropy_with_logits(flag_logits, flags.flatten(1))
        return loss


class RestorationLoss(nn.Module):
    """Voxel-wise restoration loss between a prediction and the original image, averaged over every voxel or, with
    a ``mask``, over the masked voxels only (SimMIM: the visible voxels would only teach copying the input).

    Args:
        kind: ``"mse"`` (Models Genesis) or ``"l1"`` (SimMIM).
    """

    KINDS = ("mse", "l1")

    def __init__(self, kind: str = "mse") -> None:
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, got {kind!r}.")
        self.kind = kind

    def forward(self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """
        Args:
            prediction, target: ``(B, C, *spatial)``.
            mask: optional ``(B, 1, *spatial)`` weights (1 where a voxel counts), shared by the channels.
        """
        if prediction.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(prediction.shape)} differs from target {tuple(target.shape)}.")
        if mask is None:
            return F.mse_loss(prediction, target) if self.kind == "mse" else F.l1_loss(prediction, target)
        if mask.shape != (prediction.shape[0], 1, *prediction.shape[2:]):
            raise ValueError(f"mask shape {tuple(mask.shape)} must be (B, 1, *spatial) of the prediction's "
                             f"{tuple(prediction.shape)}.")
        error = (prediction - target) ** 2 if self.kind == "mse" else (prediction - target).abs()
        # a batch without a masked voxel has nothing to restore: loss 0 (not NaN), no gradient
        return (error * mask).sum() / (mask.sum() * prediction.shape[1]).clamp_min(1)


def _gather_with_gradients(features: torch.Tensor) -> torch.Tensor:
    """``features`` of every process, concatenated in rank order, differentiable with respect to this process's
    part; unchanged outside ``torch.distributed``."""
    if idist.get_world_size() == 1:
        return features
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(features), dim=0)


class GatheredContrastiveLoss(nn.Module):
    """SimCLR's NT-Xent loss (MONAI's ``ContrastiveLoss``) over the pairs of *every* process.

    Under ``torch.distributed`` each process holds part of the batch; its projections are gathered from all ranks
    with gradients (``torch.distributed.nn.functional.all_gather``), so every pair is contrasted with the negatives
    of the whole global batch and the loss equals that of one process holding the concatenated batch. Each rank
    computes that same loss; the gather's backward sums the ranks' gradients, and DDP's averaging brings them back
    to the single-process gradient.

    Args:
        temperature: softmax temperature of the cosine similarities, > 0 (SimCLR: 0.1 to 0.5).
    """

    def __init__(self, temperature: float = 0.5) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        self.temperature = float(temperature)
        self.contrastive = ContrastiveLoss(temperature=self.temperature)

    def forward(self, first: torch.Tensor, second: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``first[i]`` and ``second[i]``, ``(B, F)``, are the two views of sample ``i``.

        ``labels`` ``(B,)`` adds positives across samples: views whose samples share a label (e.g. the same band of
        different volumes, Chaitanya et al.'s domain-specific positives) are all each other's positives, in the
        supervised-contrastive form of Khosla et al. (NeurIPS 2020); with distinct labels this is NT-Xent again."""
        if first.shape != second.shape or first.ndim != 2:
            raise ValueError(f"expected two (B, F) tensors of one shape, got {tuple(first.shape)} and "
                             f"{tuple(second.shape)}.")
        if labels is not None and labels.shape != first.shape[:1]:
            raise ValueError(f"expected one label per sample, {tuple(first.shape[:1])}, got {tuple(labels.shape)}.")
        first, second = _gather_with_gradients(first), _gather_with_gradients(second)
        if first.shape[0] < 2:
            raise ValueError("the contrastive loss needs at least two samples in the (global) batch, whose views are "
                             "each other's negatives; raise batch_size or samples_per_volume.")
        if labels is None:
            return self.contrastive(first, second)
        if idist.get_world_size() > 1:
            labels = idist.all_gather(labels)
        return self._shared_positives(first, second, labels)

    def _shared_positives(self, first: torch.Tensor, second: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        views = F.normalize(torch.cat([first, second]), dim=1)
        view_labels = torch.cat([labels, labels])
        logits = views @ views.T / self.temperature
        itself = torch.eye(len(views), dtype=torch.bool, device=views.device)
        log_probability = logits - torch.logsumexp(logits.masked_fill(itself, float("-inf")), dim=1, keepdim=True)
        positives = (view_labels[:, None] == view_labels[None, :]) & ~itself
        return -(log_probability * positives).sum(1).div(positives.sum(1)).mean()


class LocalContrastiveLoss(nn.Module):
    """Chaitanya et al.'s local contrastive loss on dense (decoder) features of two views of one volume: the
    features of one anatomical voxel in the two views are positives, those of the other sampled voxels negatives
    (InfoNCE, both directions).

    The views may be different crops and flips of the volume: ``view_to_source`` maps each view's voxel indices to
    the volume's. The voxels compared lie on a regular grid (at most ``positions``) over the part of the volume both
    views show; a pair of views that does not overlap adds nothing.

    Args:
        temperature: softmax temperature, > 0.
        positions: voxels compared per pair of views, >= 2.
    """

    def __init__(self, temperature: float = 0.1, positions: int = 64) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        if positions < 2:
            raise ValueError(f"positions must be >= 2 (one positive and at least one negative), got {positions}.")
        self.temperature = float(temperature)
        self.per_axis = max(2, round(positions ** (1 / 3)))

    def shared_voxels(self, view_to_source: torch.Tensor, view_size: tuple[int, ...]) -> torch.Tensor | None:
        """Indices ``(2, P, 3)`` into each view of ``P`` volume voxels that both views show, or ``None``."""
        sizes = torch.tensor(view_size, dtype=view_to_source.dtype, device=view_to_source.device)
        directions = torch.diagonal(view_to_source[:, :3, :3], dim1=1, dim2=2)  # (2, 3): +-1
        origins = view_to_source[:, :3, 3]
        ends = origins + directions * (sizes - 1)
        low = torch.minimum(origins, ends).amax(0)
        high = torch.maximum(origins, ends).amin(0)
        if torch.any(high < low):
            return None
        axes = [torch.linspace(float(lo), float(hi), self.per_axis).round().unique() for lo, hi in zip(low, high)]
        source = torch.cartesian_prod(*axes).to(view_to_source)
        return ((source[None] - origins[:, None]) * directions[:, None]).round().long()

    def forward(self, first: torch.Tensor, second: torch.Tensor, view_to_source: torch.Tensor) -> torch.Tensor:
        """``first`` and ``second``: dense features ``(B, D, *view_size)`` of the two views; ``view_to_source``:
        ``(B, 2, 4, 4)`` voxel maps (:py:attr:`~monai_ssl.transforms.RandContrastiveViews.view_to_source`)."""
        if first.shape != second.shape or first.ndim != 5:
            raise ValueError(f"expected two (B, D, X, Y, Z) tensors of one shape, got {tuple(first.shape)} and "
                             f"{tuple(second.shape)}.")
        if view_to_source.shape != (first.shape[0], 2, 4, 4):
            raise ValueError(f"expected view_to_source of shape {(first.shape[0], 2, 4, 4)}, got "
                             f"{tuple(view_to_source.shape)}.")
        losses = []
        for sample in range(first.shape[0]):
            indices = self.shared_voxels(view_to_source[sample].float(), tuple(first.shape[2:]))
            if indices is None or indices.shape[1] < 2:
                continue
            pair = []
            for features, index in zip((first[sample], second[sample]), indices):
                pair.append(F.normalize(features[:, index[:, 0], index[:, 1], index[:, 2]].T, dim=1))
            logits = pair[0] @ pair[1].T / self.temperature
            targets = torch.arange(len(logits), device=logits.device)
            losses.append((F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2)
        if not losses:
            return first.sum() * 0.0  # no overlapping pair in this batch: no signal, but a graph for DDP
        return torch.stack(losses).mean()


class MultiTaskLoss(nn.Module):
    """Weighted sum of per-task losses, computed on every batch (every task sees every batch).

    ``forward(losses)`` takes ``{task name: scalar loss}`` and returns the weighted sum; the unweighted
    values of the last call are kept in ``last_losses`` for logging.

    Args:
        weights: ``{task name: weight >= 0}``; at least one weight must be positive.
    """

    def __init__(self, weights: Mapping[str, float]) -> None:
        super().__init__()
        if not weights:
            raise ValueError("weights must name at least one task.")
        if any(w < 0 for w in weights.values()) or not any(w > 0 for w in weights.values()):
            raise ValueError(f"loss weights must be >= 0 with at least one > 0, got {dict(weights)}.")
        self.weights = {name: float(w) for name, w in weights.items()}
        self.last_losses: dict[str, float] = {}

    def forward(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if set(losses) != set(self.weights):
            raise ValueError(f"expected losses for {sorted(self.weights)}, got {sorted(losses)}.")
        self.last_losses = {name: float(value.detach()) for name, value in losses.items()}
        return sum(self.weights[name] * value for name, value in losses.items())
