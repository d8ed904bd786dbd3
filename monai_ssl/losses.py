"""Pretext losses: small modules that validate their arguments."""

from __future__ import annotations

from collections.abc import Mapping

import ignite.distributed as idist
import torch
from monai.losses import ContrastiveLoss
from torch import nn
from torch.nn import functional as F

__all__ = ["JigsawLoss", "RestorationLoss", "GatheredContrastiveLoss", "MultiTaskLoss"]


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
    """Voxel-wise restoration loss between a prediction and the original image.

    Args:
        kind: ``"mse"`` (Models Genesis) or ``"l1"``.
    """

    KINDS = ("mse", "l1")

    def __init__(self, kind: str = "mse") -> None:
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, got {kind!r}.")
        self.kind = kind

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if prediction.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(prediction.shape)} differs from target {tuple(target.shape)}.")
        return F.mse_loss(prediction, target) if self.kind == "mse" else F.l1_loss(prediction, target)


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

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """``first[i]`` and ``second[i]``, ``(B, F)``, are the two views of sample ``i``."""
        if first.shape != second.shape or first.ndim != 2:
            raise ValueError(f"expected two (B, F) tensors of one shape, got {tuple(first.shape)} and "
                             f"{tuple(second.shape)}.")
        first, second = _gather_with_gradients(first), _gather_with_gradients(second)
        if first.shape[0] < 2:
            raise ValueError("the contrastive loss needs at least two samples in the (global) batch, whose views are "
                             "each other's negatives; raise batch_size or samples_per_volume.")
        return self.contrastive(first, second)


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
