"""Contrastive task (SimCLR): the two augmented views of a volume must be closer to each other than to the views
of the other volumes of the (global) batch."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from monai_ssl.losses import GatheredContrastiveLoss, LocalContrastiveLoss
from monai_ssl.networks.adapters import EncoderAdapter
from monai_ssl.networks.heads import ClassificationHead, DenseHead, pool_features
from monai_ssl.tasks.base import Batch, PretextTask, check_whole_network_size, other_volume_index
from monai_ssl.tasks.registry import register_task
from monai_ssl.transforms import RandContrastiveViewsd

__all__ = ["TwoViewTask", "GlobalLocalHead", "ContrastiveTask"]


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

    def __init__(self, source_key: str, output_size: int, view_args: dict, with_geometry: bool = False,
                 with_partition: bool = False, **kwargs) -> None:
        super().__init__(source_key, **kwargs, **view_args)
        self.geometry_key = f"{self.name}_geometry"
        self.task_transform = RandContrastiveViewsd(
            keys=self.input_key, geometry_key=self.geometry_key if with_geometry else None,
            partition_key=self.label_key if with_partition else None, **view_args)
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


class GlobalLocalHead(nn.Module):
    """The contrastive heads with a local loss: ``projection``, an MLP on pooled encoder features (global loss),
    and ``local``, a 1x1x1 convolution on the network's output (local loss)."""

    def __init__(self, projection: nn.Module, local: nn.Module) -> None:
        super().__init__()
        self.projection, self.local = projection, local


@register_task
class ContrastiveTask(TwoViewTask):
    """SimCLR (Chen et al., ICML 2020) on 3D volumes: both views go through the shared encoder, their pooled
    deepest features through a projection MLP, and :py:class:`~monai_ssl.losses.GatheredContrastiveLoss` (NT-Xent)
    pulls each pair together against the other samples of the batch, gathered from every process under DDP.

    Two options follow Chaitanya et al. (NeurIPS 2020) for volumetric MRI:

    - ``partitions`` > 0: domain-specific positives. Both views of a volume are cut around one of ``partitions``
      bands along ``partition_axis``; views from the same band of different volumes are positives too. Meaningful
      when the inputs are roughly aligned whole volumes (e.g. brains resampled to one grid covering them).
    - ``local_weight`` > 0: a local loss on the network's dense output (so the decoder trains too): the two views'
      features of the same voxel are positives, of other voxels negatives
      (:py:class:`~monai_ssl.losses.LocalContrastiveLoss`), through a 1x1x1 projection of ``local_dim`` channels.
      The views then run through the whole network, so ``view_size`` must be a multiple of its downsampling.

    The held-out score is the fraction of views whose own pair is more similar than the other view of the next
    sample in the batch: 0.5 by chance, whatever the batch size.

    Args:
        source_key: key of the volume.
        temperature: NT-Xent temperature.
        projection_dim: size of the projections the loss compares.
        partitions: bands for domain-specific positives; 0 for SimCLR's positives only.
        local_weight: weight of the local loss; 0 for none.
        local_temperature: temperature of the local loss.
        local_positions: voxels compared per pair of views by the local loss.
        local_dim: channels of the local projection.
        kwargs: arguments of :py:class:`~monai_ssl.transforms.RandContrastiveViewsd` (``view_size``,
            ``flip_prob``, ``intensity_prob``, ``noise_prob``, ``noise_std``, ``blur_prob``, ``partition_axis``).
    """

    name = "contrastive"

    def __init__(self, source_key: str = "image", temperature: float = 0.5, projection_dim: int = 128,
                 partitions: int = 0, local_weight: float = 0.0, local_temperature: float = 0.1,
                 local_positions: int = 64, local_dim: int = 64, **kwargs) -> None:
        if local_weight < 0:
            raise ValueError(f"local_weight must be >= 0, got {local_weight}.")
        if local_dim < 1:
            raise ValueError(f"local_dim must be >= 1, got {local_dim}.")
        local = {"local_weight": local_weight, "local_temperature": local_temperature,
                 "local_positions": local_positions, "local_dim": local_dim} if local_weight else {}
        super().__init__(source_key, projection_dim, {**kwargs, "partitions": partitions},
                         with_geometry=bool(local_weight), with_partition=bool(partitions), temperature=temperature,
                         projection_dim=projection_dim, **local)
        self.loss = GatheredContrastiveLoss(temperature)
        self.partitions, self.local_weight, self.local_dim = partitions, float(local_weight), int(local_dim)
        self.local_loss = LocalContrastiveLoss(local_temperature, local_positions) if local_weight else None
        # the local loss trains the decoder, so whole-network transfer carries what it learnt
        self.trains_decoder = bool(local_weight)
        if local_weight:
            self.trains = "encoder and decoder (global and local contrastive losses)"
        self.score_name = "pair_accuracy"

    def check_setup(self, roi_size: tuple[int, ...], adapter: EncoderAdapter) -> None:
        super().check_setup(roi_size, adapter)
        if self.local_weight:
            check_whole_network_size("the local contrastive loss", "view_size", self.task_transform.views.view_size,
                                     adapter)

    def build_head(self, adapter: EncoderAdapter) -> nn.Module:
        projection = super().build_head(adapter)
        if not self.local_weight:
            return projection
        return GlobalLocalHead(projection, DenseHead(adapter.spatial_dims, adapter.out_channels, self.local_dim))

    def predict(self, adapter: EncoderAdapter, head: nn.Module, batch: Batch) -> torch.Tensor | dict:
        """The embeddings of both views, ``(B, 2, projection_dim)``; with the local loss, a dict of those
        (``"embeddings"``) and the dense local projections ``(B, 2, local_dim, *view_size)`` (``"local"``)."""
        if not self.local_weight:
            return super().predict(adapter, head, batch)
        views = batch[self.input_key]
        embeddings = super().predict(adapter, head.projection, batch)
        dense = head.local(adapter.network(views.flatten(0, 1)))
        return {"embeddings": embeddings, "local": dense.reshape(views.shape[0], 2, *dense.shape[1:])}

    def compute_loss(self, prediction: torch.Tensor | dict, batch: Batch) -> torch.Tensor:
        embeddings = prediction["embeddings"] if self.local_weight else prediction
        labels = batch[self.label_key] if self.partitions else None
        loss = self.loss(embeddings[:, 0], embeddings[:, 1], labels)
        if self.local_weight:
            local = prediction["local"]
            loss = loss + self.local_weight * self.local_loss(local[:, 0], local[:, 1], batch[self.geometry_key])
        return loss

    def score_counts(self, prediction: torch.Tensor | dict, batch: Batch) -> tuple[float, float]:
        """``(views closer to their own pair than to the other view of the next sample of another volume, views)``;
        samples with no crop of another volume in the batch are not scored."""
        if self.local_weight:
            prediction = prediction["embeddings"]
        other = other_volume_index(batch, prediction.shape[0], prediction.device)
        scored = other >= 0
        first, second = F.normalize(prediction[:, 0], dim=1), F.normalize(prediction[:, 1], dim=1)
        positive = (first * second).sum(1)[scored]
        correct = ((first[scored] * second[other[scored]]).sum(1) < positive).sum() + (
            (second[scored] * first[other[scored]]).sum(1) < positive).sum()
        return float(correct), float(2 * positive.numel())
