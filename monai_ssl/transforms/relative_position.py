"""Relative patch position pretext task: given a centre patch and one of its neighbours, predict where the
neighbour sits.

References:
    Doersch et al., "Unsupervised Visual Representation Learning by Context Prediction", ICCV 2015.
    Taleb et al., "3D Self-Supervised Methods for Medical Imaging", NeurIPS 2020 (3D relative patch location).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import RandomizableTransform
from monai.utils import TransformBackends

from monai_ssl.transforms.utils import (
    RandArrayWrapperd,
    as_non_negative_int,
    as_positive_tuple,
    crop_patches,
    spatial_shape_of,
    stack_patches_like,
)

__all__ = [
    "neighbour_offsets",
    "RandRelativePatchPosition",
    "RandRelativePatchPositiond",
    "RandRelativePatchPositionD",
    "RandRelativePatchPositionDict",
]

logger = logging.getLogger(__name__)

NEIGHBOURHOODS = (6, 8, 26)


def neighbour_offsets(neighbours: int) -> np.ndarray:
    """Grid offsets of the neighbours of a 3D cell, in C order over (X, Y, Z), shape ``(neighbours, 3)``.

    Args:
        neighbours: 26 (every 3D neighbour), 8 (in-plane neighbours around the last axis, Z offset 0)
            or 6 (the face neighbours).
    """
    if neighbours not in NEIGHBOURHOODS:
        raise ValueError(f"neighbours must be one of {NEIGHBOURHOODS}, got {neighbours!r}.")
    offsets = np.array([o for o in itertools.product((-1, 0, 1), repeat=3) if any(o)], dtype=np.int64)
    if neighbours == 8:
        offsets = offsets[offsets[:, 2] == 0]
    elif neighbours == 6:
        offsets = offsets[np.abs(offsets).sum(axis=1) == 1]
    offsets.setflags(write=False)
    return offsets


class RandRelativePatchPosition(RandomizableTransform):
    """
    Cut a centre patch and one neighbouring patch, returned stacked as ``(2, C, *patch_size)``.

    The label indexes ``offsets`` (see :func:`neighbour_offsets`). With ``jitter=0`` the neighbour starts exactly
    at ``centre_start + offsets[label] * (patch_size + gap)``; otherwise it is shifted by up to ``jitter`` voxels
    along each axis, so that the task cannot be solved by matching patch borders.

    Placement: with ``fit_all_neighbours=True`` the centre patch is placed where *every* neighbour fits in the
    volume, so a volume must hold a 3x3x3 block of patches, which keeps them small (16³ in a 64³ crop). With
    ``False`` it is placed where the drawn neighbour fits, so a volume need only hold two patches side by side
    (28³ in a 64³ crop). The patches' places in the crop then depend on the label, but the network sees each
    patch alone, never the crop: what it can use is the anatomy in the patches, i.e. where in the body each one
    lies, which is the representation the task is meant to teach.

    Foreground: with ``foreground_threshold``, or a ``mask`` passed to ``__call__``, the centre patch is centred on
    a random foreground voxel (any channel above the threshold, or mask > 0), so that air in a CT does not
    dominate the task. If no foreground voxel can serve as a centre, the position is drawn uniformly and a
    warning is logged.

    Args:
        patch_size: size of both patches.
        gap: voxels between the centre patch and its neighbour.
        jitter: maximum random shift of the neighbour, in voxels.
        neighbours: 26, 8 or 6 classes, see :func:`neighbour_offsets`.
        foreground_threshold: intensity above which a voxel is foreground; ``None`` disables it.
        fit_all_neighbours: place the centre patch where every neighbour fits (``True``) or where the drawn one
            fits (``False``, the default, as the relative-position task's), see above.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        patch_size: Sequence[int] | int = (32, 32, 32),
        gap: int = 4,
        jitter: int = 2,
        neighbours: int = 26,
        foreground_threshold: float | None = None,
        fit_all_neighbours: bool = False,
    ) -> None:
        RandomizableTransform.__init__(self, prob=1.0)
        self.patch_size = as_positive_tuple(patch_size, 3, "patch_size")
        self.gap = as_non_negative_int(gap, "gap")
        self.jitter = as_non_negative_int(jitter, "jitter")
        self.offsets = neighbour_offsets(neighbours)
        self.num_classes = len(self.offsets)
        self.foreground_threshold = None if foreground_threshold is None else float(foreground_threshold)
        if not isinstance(fit_all_neighbours, bool):
            raise ValueError(f"fit_all_neighbours must be True or False, got {fit_all_neighbours!r}.")
        self.fit_all_neighbours = fit_all_neighbours
        self._label: int | None = None
        self._centre_start: np.ndarray | None = None
        self._shift = np.zeros(3, dtype=np.int64)

    @property
    def label(self) -> int:
        """Index into ``offsets`` of the last sample."""
        if self._label is None:
            raise RuntimeError("no sample drawn yet: call the transform first.")
        return self._label

    @property
    def centre_start(self) -> np.ndarray:
        """Voxel origin of the last centre patch."""
        if self._centre_start is None:
            raise RuntimeError("no sample drawn yet: call the transform first.")
        return self._centre_start.copy()

    @property
    def neighbour_start(self) -> np.ndarray:
        """Voxel origin of the last neighbour patch."""
        step = np.asarray(self.patch_size) + self.gap
        return self.centre_start + self.offsets[self.label] * step + self._shift

    def valid_centre_range(self, spatial_shape: Sequence[int], label: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Inclusive lowest and highest centre-patch origins: where every neighbour fits with
        ``fit_all_neighbours``; otherwise where neighbour ``label`` fits, or, with ``label=None``, the bounds over
        all neighbours. Raises a ``ValueError`` naming the smallest volume when a neighbour cannot fit."""
        shape = np.asarray(spatial_shape)
        if label is not None and not self.fit_all_neighbours:  # the per-sample path
            low, high = self._centre_range(shape, self.offsets[[label]])
            if np.all(high >= low):
                return low, high
        if self.fit_all_neighbours:
            groups = [self.offsets]
        else:
            groups = [self.offsets[[each]] for each in range(self.num_classes)]
        ranges = [self._centre_range(shape, offsets) for offsets in groups]
        needed = np.max([shape - high + low for low, high in ranges], axis=0)
        if np.any(needed > shape):
            raise ValueError(
                f"spatial shape {tuple(spatial_shape)} is too small for patch_size {self.patch_size} with gap "
                f"{self.gap} and jitter {self.jitter}: it must be at least {tuple(int(v) for v in needed)}; use a "
                "smaller patch_size."
            )
        if len(ranges) == 1:
            return ranges[0]
        return np.min([low for low, _ in ranges], axis=0), np.max([high for _, high in ranges], axis=0)

    def _centre_range(self, shape: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centre origins for which the centre patch and the neighbours at ``offsets`` lie inside ``shape``: a
        neighbour spans ``[c + o * step - jitter, c + o * step + jitter + size)``, the centre ``[c, c + size)``."""
        size = np.asarray(self.patch_size)
        step = size + self.gap
        low = np.maximum(0, self.jitter - offsets * step).max(axis=0)
        high = shape - size + np.minimum(0, -self.jitter - offsets * step).min(axis=0)
        return low, high

    def randomize(self, spatial_shape: Sequence[int], foreground: np.ndarray | None = None) -> None:
        """Draw the label, the neighbour's shift and the centre patch origin.

        Args:
            spatial_shape: spatial shape of the volume.
            foreground: optional boolean array of ``spatial_shape``; the centre patch is centred on one of its
                ``True`` voxels where possible.
        """
        self._label = int(self.R.randint(self.num_classes))
        low, high = self.valid_centre_range(spatial_shape, self._label)
        self._shift = self.R.randint(-self.jitter, self.jitter + 1, size=3)
        candidates = None
        if foreground is not None:
            half = np.asarray(self.patch_size) // 2
            window = tuple(slice(int(lo + h), int(hi + h) + 1) for lo, hi, h in zip(low, high, half))
            candidates = np.flatnonzero(foreground[window])
            if candidates.size == 0:
                logger.warning("no foreground voxel where a centre patch fits; drawing its position uniformly.")
        if candidates is not None and candidates.size:
            chosen = candidates[self.R.randint(candidates.size)]
            self._centre_start = low + np.asarray(np.unravel_index(chosen, tuple(high - low + 1)))
        else:
            self._centre_start = np.array([self.R.randint(lo, hi + 1) for lo, hi in zip(low, high)])

    def foreground(self, img: NdarrayOrTensor, mask: NdarrayOrTensor | None = None) -> np.ndarray | None:
        """The boolean foreground of ``img`` used to place the centre patch, or ``None`` when disabled."""
        if mask is not None:
            fg = mask[0] > 0
        elif self.foreground_threshold is not None:
            fg = (img > self.foreground_threshold).any(0)
        else:
            return None
        return fg.cpu().numpy() if isinstance(fg, torch.Tensor) else np.asarray(fg)

    def __call__(
        self, img: NdarrayOrTensor, mask: NdarrayOrTensor | None = None, randomize: bool = True
    ) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first volume ``(C, X, Y, Z)``, numpy array, tensor or MetaTensor.
            mask: optional channel-first foreground mask of the same spatial shape.
            randomize: draw a new label and position; ``False`` reuses the last ones.

        Returns:
            ``(2, C, *patch_size)``: the centre patch, then the neighbour, with the array type of ``img``.
        """
        spatial = spatial_shape_of(img, 3, type(self).__name__)
        if mask is not None and tuple(mask.shape[1:]) != spatial:
            raise ValueError(f"mask spatial shape {tuple(mask.shape[1:])} differs from the image's {spatial}.")
        if randomize:
            self.randomize(spatial, self.foreground(img, mask))
        starts = np.stack([self.centre_start, self.neighbour_start])
        return stack_patches_like(crop_patches(img, starts, self.patch_size), img, starts)


class RandRelativePatchPositiond(RandArrayWrapperd):
    """
    Dictionary-based wrapper of :py:class:`RandRelativePatchPosition`: every key gets the same pair of
    positions, and the neighbour's class is written to ``label_key`` as a 0-d int64 tensor.

    Args:
        keys: keys of the volumes to cut.
        label_key: where to write the class.
        patch_size, gap, jitter, neighbours, foreground_threshold: see :py:class:`RandRelativePatchPosition`.
        mask_key: optional key of a foreground mask that places the centre patch; it is not cut.
        allow_missing_keys: don't raise if a key is missing.
        fit_all_neighbours: see :py:class:`RandRelativePatchPosition`.
    """

    backend = RandRelativePatchPosition.backend

    def __init__(
        self,
        keys: KeysCollection,
        label_key: str = "rpp_label",
        patch_size: Sequence[int] | int = (32, 32, 32),
        gap: int = 4,
        jitter: int = 2,
        neighbours: int = 26,
        foreground_threshold: float | None = None,
        mask_key: str | None = None,
        allow_missing_keys: bool = False,
        fit_all_neighbours: bool = False,
    ) -> None:
        patches = RandRelativePatchPosition(patch_size, gap, jitter, neighbours, foreground_threshold,
                                            fit_all_neighbours)
        super().__init__(keys, patches, allow_missing_keys)
        self.label_key = label_key
        self.mask_key = mask_key
        self.patches = self.array_transform

    @property
    def offsets(self) -> np.ndarray:
        return self.patches.offsets

    @property
    def num_classes(self) -> int:
        return self.patches.num_classes

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        first = d[self.first_key(d)]
        spatial = spatial_shape_of(first, 3, type(self).__name__)
        mask = d[self.mask_key] if self.mask_key is not None else None
        self.patches.randomize(spatial, self.patches.foreground(first, mask))
        for key in self.key_iterator(d):
            d[key] = self.patches(d[key], randomize=False)
        d[self.label_key] = torch.tensor(self.patches.label, dtype=torch.long)
        return d


RandRelativePatchPositionD = RandRelativePatchPositionDict = RandRelativePatchPositiond
