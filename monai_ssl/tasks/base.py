"""The pretext task interface: one object ties together a task's transform, head, loss and classes."""

from __future__ import annotations

import copy
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, ClassVar

import torch
from monai.transforms import Compose, CopyItemsd, MapTransform
from torch import nn

from monai_ssl.losses import RestorationLoss
from monai_ssl.networks.adapters import EncoderAdapter
from monai_ssl.networks.heads import ClassificationHead, DenseHead, pool_features

__all__ = ["PretextTask", "ClassificationTask", "SiameseClassificationTask", "DenseRestorationTask", "VOLUME_ID_KEY",
           "other_volume_index"]

Batch = Mapping[Hashable, Any]

#: key of each sample's volume number, set by :func:`~monai_ssl.bundle.pretext_dataset`: the crops of one volume
#: sit together in a collated batch, and a task that contrasts samples must not take a crop of the same volume
#: for another volume
VOLUME_ID_KEY = "volume_id"


def other_volume_index(batch: Batch, batch_size: int, device: torch.device | None = None) -> torch.Tensor:
    """For each sample, the index of the next sample in the batch (cyclically) that was cut from another volume,
    or -1 where every sample shares its volume. Samples of a batch without ``volume_id`` count as different
    volumes."""
    ids = batch.get(VOLUME_ID_KEY)
    ids = torch.arange(batch_size, device=device) if ids is None else torch.as_tensor(ids, device=device).flatten()
    if ids.numel() != batch_size:
        raise ValueError(f"the batch has {ids.numel()} {VOLUME_ID_KEY} values for {batch_size} samples.")
    if batch_size < 2:
        return torch.full((batch_size,), -1, dtype=torch.long, device=ids.device)
    candidates = (torch.arange(batch_size, device=ids.device)[:, None]
                  + torch.arange(1, batch_size, device=ids.device)[None]) % batch_size
    differs = ids[candidates] != ids[:, None]
    first = candidates.gather(1, differs.long().argmax(1, keepdim=True))[:, 0]
    return torch.where(differs.any(1), first, torch.full_like(first, -1))


class PretextTask:
    """Base class of a registered pretext task.

    A task reads the volume at ``source_key``, writes its network input to ``input_key`` and its pseudo-label
    to ``label_key`` (see :py:meth:`transform`), builds its head for a network adapter, and computes its loss.
    Subclasses set ``name``, build ``self.task_transform`` and ``self.loss``, and implement
    :py:meth:`build_head` and :py:meth:`predict`.

    Args:
        source_key: key of the preprocessed volume the task is cut from.
        kwargs: the task transform's arguments, recorded in :py:meth:`config`.
    """

    name: ClassVar[str]
    #: parts of the network the task trains, for the documentation and the logs
    trains: ClassVar[str]
    #: whether the task trains the decoder, so that transferring the whole network carries what it learnt
    trains_decoder: ClassVar[bool] = False

    def __init__(self, source_key: str = "image", **kwargs: Any) -> None:
        self.source_key = source_key
        self.input_key = f"{self.name}_input"
        self.label_key = f"{self.name}_label"
        self.args = dict(kwargs)
        self.num_classes = 0
        #: name of the held-out score of :py:meth:`score_counts`; higher is better for ``"accuracy"``, lower for
        #: ``"mse_ratio"``
        self.score_name = "accuracy"
        self.task_transform: MapTransform
        self.loss: nn.Module

    @property
    def batch_keys(self) -> tuple[str, ...]:
        """The keys the task's transform writes and its loss reads, converted to plain tensors for collation."""
        return self.input_key, self.label_key

    def transform(self) -> Compose:
        """Copy the source volume to ``input_key`` and apply the task's transform there.

        Each call returns a transform of its own (a copy of ``task_transform``), so that datasets built from one
        task never share random state: an evaluator re-seeding its held-out transforms leaves the training stream
        alone."""
        return Compose([CopyItemsd(keys=self.source_key, names=self.input_key), copy.deepcopy(self.task_transform)])

    def check_setup(self, roi_size: tuple[int, ...], adapter: EncoderAdapter) -> None:
        """Raise a ``ValueError`` naming the setting to change when the task cannot be cut from ``roi_size`` crops
        or its inputs do not fit the network behind ``adapter``: caught at start-up, not in the middle of a run.

        Every task must say what it needs; a task that needs nothing overrides this with a no-op.
        """
        raise NotImplementedError(f"task {self.name!r} does not define check_setup.")

    def build_head(self, adapter: EncoderAdapter) -> nn.Module:
        raise NotImplementedError

    def predict(self, adapter: EncoderAdapter, head: nn.Module, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def compute_loss(self, prediction: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.loss(prediction, batch[self.label_key])

    def accuracy(self, prediction: torch.Tensor, batch: Batch) -> float | None:
        """The batch's score when it is an accuracy (``score_name`` ends in ``accuracy``: correct classes, pairs,
        triplets or predictions), for the training logs; ``None`` for an error ratio or a batch with nothing to
        score."""
        if not self.score_name.endswith("accuracy"):
            return None
        correct, total = self.score_counts(prediction, batch)
        return correct / total if total else None

    def score_counts(self, prediction: torch.Tensor, batch: Batch) -> tuple[float, float]:
        """Two sums whose ratio over a held-out set is the task's score: ``(correct, samples)`` by default."""
        if not self.num_classes:
            raise NotImplementedError(f"task {self.name!r} defines no held-out score.")
        logits = prediction[:, : self.num_classes]
        return float((logits.argmax(1) == batch[self.label_key]).sum()), float(logits.shape[0])

    def chance_score(self) -> float:
        """The score of guessing: ``1 / num_classes`` for a classification task."""
        return 1.0 / self.num_classes

    def config(self) -> dict:
        """Name and arguments, enough for :func:`~monai_ssl.tasks.create_task` to rebuild the task."""
        return {"name": self.name, "args": {"source_key": self.source_key, **self.args}}


class ClassificationTask(PretextTask):
    """A single input through the encoder, pooled deepest features, an MLP to ``num_classes`` logits."""

    trains = "encoder"

    def build_head(self, adapter: EncoderAdapter) -> nn.Module:
        return ClassificationHead(adapter.feature_channels, self.num_classes)

    def predict(self, adapter: EncoderAdapter, head: nn.Module, batch: Batch) -> torch.Tensor:
        inputs = batch[self.input_key]
        adapter.check_input_size(inputs.shape[2:])
        return head(pool_features(adapter.encode(inputs)[-1]))


class SiameseClassificationTask(PretextTask):
    """``N`` patches per sample ``(B, N, C, *spatial)`` through one shared encoder; their pooled features are
    concatenated in order and classified."""

    trains = "encoder (shared across patches)"
    num_patches: int
    num_outputs: int

    def build_head(self, adapter: EncoderAdapter) -> nn.Module:
        return ClassificationHead(self.num_patches * adapter.feature_channels, self.num_outputs)

    def predict(self, adapter: EncoderAdapter, head: nn.Module, batch: Batch) -> torch.Tensor:
        patches = batch[self.input_key]
        batch_size, num_patches = patches.shape[:2]
        adapter.check_input_size(patches.shape[3:])
        features = pool_features(adapter.encode(patches.flatten(0, 1))[-1])
        return head(features.reshape(batch_size, num_patches * features.shape[1]))


def check_whole_network_size(what: str, setting: str, size: Sequence[int], adapter: EncoderAdapter) -> None:
    """Raise a ``ValueError`` unless ``size`` (the ``setting`` of ``what``, which runs the whole network: encoder
    and decoder) is a multiple of the network's total downsampling, so that the decoder's output matches it."""
    if any(s % adapter.downsampling for s in size):
        raise ValueError(f"{what} runs the whole network on {setting} {list(size)}; use multiples of "
                         f"{adapter.downsampling} (the network's total downsampling).")


class DenseRestorationTask(PretextTask):
    """A degraded volume through the *whole* network (encoder and decoder), and a 1x1x1 convolution from the
    network's output channels to the image's channels; the loss compares the restoration with the original
    (``RestorationLoss``). The held-out score is the restoration's squared error as a fraction of the degraded
    input's, so 1 is doing nothing and 0 a perfect restoration.

    Subclasses set ``task_transform``, writing the degraded volume to ``input_key`` and the original to
    ``label_key`` (``<name>_target``).

    Args:
        source_key: key of the volume.
        loss: ``"mse"`` or ``"l1"``.
        kwargs: the task transform's arguments, recorded in :py:meth:`config`.
    """

    trains = "encoder, decoder and final layer"
    trains_decoder = True

    def __init__(self, source_key: str = "image", loss: str = "mse", **kwargs: Any) -> None:
        super().__init__(source_key, loss=loss, **kwargs)
        self.label_key = f"{self.name}_target"
        self.loss = RestorationLoss(loss)
        self.score_name = "mse_ratio"

    def check_setup(self, roi_size: tuple[int, ...], adapter: EncoderAdapter) -> None:
        check_whole_network_size(self.name, "roi_size", roi_size, adapter)

    def build_head(self, adapter: EncoderAdapter) -> nn.Module:
        return DenseHead(adapter.spatial_dims, adapter.out_channels, adapter.in_channels)

    def predict(self, adapter: EncoderAdapter, head: nn.Module, batch: Batch) -> torch.Tensor:
        return head(adapter.network(batch[self.input_key]))

    def score_mask(self, batch: Batch) -> torch.Tensor | None:
        """The voxels the score counts (broadcast over channels), or ``None`` for all of them."""
        return None

    def score_counts(self, prediction: torch.Tensor, batch: Batch) -> tuple[float, float]:
        """The squared error of the restoration and of the degraded input itself (the identity baseline), over the
        voxels of :py:meth:`score_mask`."""
        target = batch[self.label_key]
        mask = self.score_mask(batch)
        weight = 1.0 if mask is None else mask.float()
        restoration = float((((prediction.float() - target) ** 2) * weight).sum())
        identity = float((((batch[self.input_key].float() - target) ** 2) * weight).sum())
        return restoration, identity

    def chance_score(self) -> float:
        return 1.0
