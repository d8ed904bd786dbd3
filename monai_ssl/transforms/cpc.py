"""Contrastive predictive coding pretext task (3D CPC): a grid of 3D patches, the upper rows predicting the lower.

References:
    van den Oord et al., "Representation Learning with Contrastive Predictive Coding", 2018;
    Taleb et al., "3D Self-Supervised Methods for Medical Imaging", NeurIPS 2020 (3D CPC).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
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

__all__ = ["RandCPCPatches", "RandCPCPatchesd", "RandCPCPatchesD", "RandCPCPatchesDict"]


class RandCPCPatches(RandomizableTransform):
    """
    Cut a ``grid`` of ``patch_size`` cubes from a channel-first volume, regularly spaced over it (overlapping where
    the volume is smaller than the grid of cubes), each shifted by up to ``jitter`` voxels at random, and return
    them stacked as ``(N, C, *patch_size)`` in grid (C) order.

    The CPC task encodes every cube; the first ``context_rows`` rows of the grid along the first axis are the
    context, from which the encodings of the remaining rows are predicted. :py:meth:`context_indices` and
    :py:meth:`target_indices` give the two disjoint sets of cube numbers.

    Args:
        patch_size: edge of each cube (voxels).
        grid: cubes per axis (at least 2 along the first axis).
        jitter: maximum random shift of each cube along each axis (voxels), within the volume.
        context_rows: rows of the grid (first axis) that form the context; the others are predicted.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        patch_size: Sequence[int] | int = 16,
        grid: Sequence[int] | int = 4,
        jitter: int = 2,
        context_rows: int | None = None,
    ) -> None:
        RandomizableTransform.__init__(self, prob=1.0)
        self.patch_size = as_positive_tuple(patch_size, 3, "patch_size")
        self.grid = as_positive_tuple(grid, 3, "grid")
        if self.grid[0] < 2:
            raise ValueError(f"grid needs at least 2 rows along the first axis (context and target), got {grid}.")
        self.context_rows = self.grid[0] // 2 if context_rows is None else int(context_rows)
        if not 1 <= self.context_rows < self.grid[0]:
            raise ValueError(f"context_rows must be between 1 and {self.grid[0] - 1} (the grid's rows minus one), "
                             f"got {context_rows}.")
        self.jitter = as_non_negative_int(jitter, "jitter")
        self._shifts = np.zeros((self.num_patches, 3), dtype=int)
        self._starts: np.ndarray | None = None

    @property
    def num_patches(self) -> int:
        return int(np.prod(self.grid))

    def context_indices(self) -> np.ndarray:
        """Numbers of the context cubes: the first ``context_rows`` rows along the first axis."""
        return np.arange(self.context_rows * self.grid[1] * self.grid[2])

    def target_indices(self) -> np.ndarray:
        """Numbers of the cubes to predict: every other row."""
        return np.arange(self.context_rows * self.grid[1] * self.grid[2], self.num_patches)

    @property
    def patch_starts(self) -> np.ndarray:
        """Voxel origin of each cube of the last call, by cube number."""
        if self._starts is None:
            raise RuntimeError("patch_starts is only defined after the transform has been called.")
        return self._starts.copy()

    def randomize(self, data: None = None) -> None:
        self._shifts = self.R.randint(-self.jitter, self.jitter + 1, size=(self.num_patches, 3))

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first volume ``(C, X, Y, Z)``, numpy array, tensor or MetaTensor.
            randomize: draw new shifts; ``False`` reuses the last ones.
        """
        spatial = np.asarray(spatial_shape_of(img, 3, type(self).__name__))
        size = np.asarray(self.patch_size)
        if np.any(size > spatial):
            raise ValueError(f"patch_size {list(self.patch_size)} is larger than the volume {spatial.tolist()}; use "
                             "a smaller patch_size or a larger roi_size.")
        if randomize:
            self.randomize()
        grid = np.asarray(self.grid)
        # evenly spread origins from 0 to the last possible one along each axis
        spacing = np.where(grid > 1, (spatial - size) / np.maximum(grid - 1, 1), 0.0)
        cells = np.array(list(np.ndindex(*self.grid)))
        starts = np.floor(cells * spacing).astype(int) + self._shifts
        self._starts = np.clip(starts, 0, spatial - size)
        return stack_patches_like(crop_patches(img, self._starts, self.patch_size), img, self._starts)


class RandCPCPatchesd(RandArrayWrapperd):
    """
    Dictionary-based wrapper of :py:class:`RandCPCPatches`: each key is replaced by its cubes ``(N, C, *patch)``,
    the same cubes for every key.

    Args:
        keys: keys of the volumes.
        kwargs: see :py:class:`RandCPCPatches`.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = RandCPCPatches.backend

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False, **kwargs) -> None:
        super().__init__(keys, RandCPCPatches(**kwargs), allow_missing_keys)
        self.patches = self.array_transform


RandCPCPatchesD = RandCPCPatchesDict = RandCPCPatchesd
