"""Volume jigsaw pretext task: cut a grid of 3D cubes, shuffle them by one of a fixed set of permutations,
and predict which permutation was used.

References:
    Noroozi & Favaro, "Unsupervised Learning of Visual Representations by Solving Jigsaw Puzzles", ECCV 2016
    (maximal-Hamming permutation sets).
    Taleb et al., "3D Self-Supervised Methods for Medical Imaging", NeurIPS 2020 (3D jigsaw).
    Zhuang et al., "Self-supervised Feature Learning for 3D Medical Images by Playing a Rubik's Cube", MICCAI 2019
    (per-cube rotations).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Mapping, Sequence
from functools import lru_cache

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
    "max_hamming_permutations",
    "RandVolumeJigsaw",
    "RandVolumeJigsawd",
    "RandVolumeJigsawD",
    "RandVolumeJigsawDict",
]

# Above this many items all permutations cannot be enumerated; candidates are sampled instead.
_MAX_ENUMERATED_ITEMS = 9
_NUM_SAMPLED_CANDIDATES = 50_000


@lru_cache(maxsize=32)
def _cached_permutations(num_items: int, num_permutations: int, seed: int) -> np.ndarray:
    rng = np.random.RandomState(seed)
    if num_items <= _MAX_ENUMERATED_ITEMS:
        candidates = np.array(list(itertools.permutations(range(num_items))), dtype=np.int16)
    else:
        sampled = np.stack([rng.permutation(num_items) for _ in range(_NUM_SAMPLED_CANDIDATES)]).astype(np.int16)
        candidates = np.unique(sampled, axis=0)
    # the shuffle makes the seed decide between equally distant candidates
    candidates = candidates[rng.permutation(len(candidates))]
    identity = np.arange(num_items, dtype=np.int16)
    selected = [identity]
    min_distance = (candidates != identity).sum(axis=1)
    min_distance[min_distance == 0] = -1  # never select the identity twice
    for _ in range(num_permutations - 1):
        best = int(np.argmax(min_distance))
        selected.append(candidates[best])
        min_distance = np.minimum(min_distance, (candidates != candidates[best]).sum(axis=1))
        min_distance[best] = -1
    permutations = np.stack(selected).astype(np.int64)
    permutations.setflags(write=False)
    return permutations


def max_hamming_permutations(num_items: int, num_permutations: int, seed: int = 0) -> np.ndarray:
    """A deterministic set of permutations with a large minimum pairwise Hamming distance.

    Greedy selection as in Noroozi & Favaro (2016): start from the identity, then repeatedly add the candidate
    whose minimum Hamming distance to the permutations already selected is largest. For up to 9 items every
    permutation is a candidate; above that, 50,000 permutations drawn with ``seed`` are.

    Args:
        num_items: number of items being permuted (cubes in the grid).
        num_permutations: size of the set, ``K``.
        seed: decides between equally good candidates, and draws the candidates above 9 items.

    Returns:
        a read-only int64 array of shape ``(K, num_items)``; row 0 is the identity.
    """
    num_items = int(num_items)
    if num_items < 2:
        raise ValueError(f"a jigsaw needs at least 2 cubes, got {num_items}; use a grid with more than one cell.")
    available = math.factorial(num_items) if num_items <= _MAX_ENUMERATED_ITEMS else _NUM_SAMPLED_CANDIDATES
    if not 2 <= num_permutations <= available:
        raise ValueError(
            f"num_permutations must be between 2 and {available} for {num_items} cubes, got {num_permutations}."
        )
    return _cached_permutations(num_items, int(num_permutations), int(seed))


class RandVolumeJigsaw(RandomizableTransform):
    """
    Cut a grid of equal cubes from a channel-first volume and return them shuffled, stacked as ``(N, C, *cube)``.

    The central region covered by ``grid`` is divided into ``N = prod(grid)`` equal cells, numbered in C order
    (the last spatial axis fastest). One cube is cut from each cell; all cubes have the same size,
    ``cell - gap - 2 * jitter`` along each axis, so that neighbouring cubes are at least ``gap`` voxels apart
    (no shortcut through matching edges), and each is shifted by a random offset of up to ``jitter`` voxels
    inside its cell. Output ``i`` is cube number ``permutations[label][i]``; the label is the class to predict.

    With ``flip_axes``, each output cube is also rotated by 180 degrees about each axis in ``flip_axes`` with
    probability ``flip_prob`` (Rubik's cube style); the flags, shape ``(N, len(flip_axes))``, are a second target.

    After a call, ``label``, ``flips`` and ``cube_starts`` (voxel origin of each cube, by cube number) describe
    the sample. Crop or resample the volume first (e.g. ``RandSpatialCrop``) to choose the scale of the puzzle.

    Args:
        grid: number of cells along each spatial axis.
        num_permutations: number of classes ``K``; the permutation set is :func:`max_hamming_permutations`.
        gap: minimum number of voxels between neighbouring cubes.
        jitter: maximum random shift of each cube inside its cell, in voxels.
        flip_axes: spatial axes (at most 2 of a 3D volume) about which cubes may be rotated by 180 degrees.
            Two axes at most, because rotating about all three is the identity and the flags would be ambiguous.
        flip_prob: probability of each per-cube, per-axis rotation.
        permutation_seed: seed of the permutation set, so that a set is reproducible across runs.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        grid: Sequence[int] | int = (2, 2, 2),
        num_permutations: int = 100,
        gap: int = 4,
        jitter: int = 2,
        flip_axes: Sequence[int] | None = None,
        flip_prob: float = 0.5,
        permutation_seed: int = 0,
    ) -> None:
        RandomizableTransform.__init__(self, prob=1.0)
        ndim = 3 if isinstance(grid, (int, np.integer)) else len(grid)
        self.grid = as_positive_tuple(grid, ndim, "grid")
        self.num_cubes = int(np.prod(self.grid))
        self.permutations = max_hamming_permutations(self.num_cubes, num_permutations, permutation_seed)
        self.num_classes = int(num_permutations)
        self.gap = as_non_negative_int(gap, "gap")
        self.jitter = as_non_negative_int(jitter, "jitter")
        self.flip_axes = tuple(int(a) for a in flip_axes) if flip_axes is not None else ()
        if len(self.flip_axes) > 2 or len(set(self.flip_axes)) != len(self.flip_axes):
            raise ValueError(f"flip_axes must hold at most 2 distinct spatial axes, got {flip_axes!r}.")
        if self.flip_axes and (ndim != 3 or not all(0 <= a < 3 for a in self.flip_axes)):
            raise ValueError(f"flip_axes must be spatial axes in 0..2 of a 3D grid, got {flip_axes!r}.")
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob}.")
        self.flip_prob = float(flip_prob)
        self._label: int | None = None
        self._shifts = np.zeros((self.num_cubes, ndim), dtype=np.int64)
        self._flips = np.zeros((self.num_cubes, len(self.flip_axes)), dtype=np.uint8)
        self._cube_starts: np.ndarray | None = None

    def cube_size(self, spatial_shape: Sequence[int]) -> tuple[int, ...]:
        """Size of every cube cut from a volume of ``spatial_shape``; raises ``ValueError`` if it would be empty."""
        if len(spatial_shape) != len(self.grid):
            raise ValueError(f"grid {self.grid} has {len(self.grid)} axes but the image has shape {spatial_shape}.")
        size = tuple(s // g - self.gap - 2 * self.jitter for s, g in zip(spatial_shape, self.grid))
        if min(size) < 1:
            needed = tuple(g * (self.gap + 2 * self.jitter + 1) for g in self.grid)
            raise ValueError(
                f"spatial shape {tuple(spatial_shape)} is too small for grid {self.grid} with gap {self.gap} "
                f"and jitter {self.jitter}: it must be at least {needed}; use a larger roi or a smaller gap/jitter."
            )
        return size

    @property
    def label(self) -> int:
        """Index into ``permutations`` of the last sample."""
        if self._label is None:
            raise RuntimeError("no sample drawn yet: call the transform (or randomize()) first.")
        return self._label

    @property
    def flips(self) -> np.ndarray:
        """Per output cube and per ``flip_axes`` entry, 1 where that cube was rotated by 180 degrees."""
        return self._flips.copy()

    @property
    def cube_starts(self) -> np.ndarray:
        """Voxel origin of each cube of the last sample, by cube number, shape ``(N, ndim)``."""
        if self._cube_starts is None:
            raise RuntimeError("no sample drawn yet: call the transform first.")
        return self._cube_starts.copy()

    def randomize(self, data: None = None) -> None:
        self._label = int(self.R.randint(self.num_classes))
        self._shifts = self.R.randint(-self.jitter, self.jitter + 1, size=(self.num_cubes, len(self.grid)))
        if self.flip_axes:
            self._flips = (self.R.random_sample((self.num_cubes, len(self.flip_axes))) < self.flip_prob).astype(
                np.uint8
            )

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first volume ``(C, *spatial)``, numpy array, tensor or MetaTensor.
            randomize: draw a new permutation and new shifts; ``False`` reuses the last ones.

        Returns:
            the shuffled cubes ``(N, C, *cube)``, with the array type of ``img``.
        """
        spatial = spatial_shape_of(img, len(self.grid), type(self).__name__)
        size = np.asarray(self.cube_size(spatial))
        if randomize:
            self.randomize()
        cell = np.asarray(spatial) // np.asarray(self.grid)
        region_start = (np.asarray(spatial) - cell * np.asarray(self.grid)) // 2
        cells = np.array(list(np.ndindex(*self.grid)))  # C order: the cube numbering
        self._cube_starts = region_start + cells * cell + self.gap // 2 + self.jitter + self._shifts
        cubes = crop_patches(img, self._cube_starts, size)
        order = self.permutations[self.label]
        shuffled = [cubes[i] for i in order]
        flipped_axes = []
        for position, flags in enumerate(self._flips):
            # a 180 degree rotation about one axis flips the two other axes; flipping an axis twice undoes it
            flipped = np.zeros(3, dtype=bool)
            for axis, flag in zip(self.flip_axes, flags):
                if flag:
                    flipped ^= np.arange(3) != axis
            flipped_axes.append([int(a) for a in np.flatnonzero(flipped)])
            dims = [1 + a for a in flipped_axes[-1]]
            if dims:
                cube = shuffled[position]
                shuffled[position] = np.flip(cube, dims) if isinstance(cube, np.ndarray) else torch.flip(cube, dims)
        return stack_patches_like(shuffled, img, self._cube_starts[order], flipped_axes)


class RandVolumeJigsawd(RandArrayWrapperd):
    """
    Dictionary-based wrapper of :py:class:`RandVolumeJigsaw`.

    Every key is shuffled with the same permutation, shifts and flips (e.g. an image and its mask), and the
    permutation index is written to ``label_key`` as a 0-d int64 tensor. With ``flip_axes``, the per-cube flags
    are written to ``flip_label_key`` as a float tensor ``(N, len(flip_axes))``, ready for a BCE loss.

    Args:
        keys: keys of the volumes to shuffle.
        label_key: where to write the permutation index.
        grid, num_permutations, gap, jitter, flip_axes, flip_prob, permutation_seed: see
            :py:class:`RandVolumeJigsaw`.
        flip_label_key: where to write the per-cube rotation flags, when ``flip_axes`` is set.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = RandVolumeJigsaw.backend

    def __init__(
        self,
        keys: KeysCollection,
        label_key: str = "jigsaw_label",
        grid: Sequence[int] | int = (2, 2, 2),
        num_permutations: int = 100,
        gap: int = 4,
        jitter: int = 2,
        flip_axes: Sequence[int] | None = None,
        flip_prob: float = 0.5,
        permutation_seed: int = 0,
        flip_label_key: str = "jigsaw_flips",
        allow_missing_keys: bool = False,
    ) -> None:
        jigsaw = RandVolumeJigsaw(grid, num_permutations, gap, jitter, flip_axes, flip_prob, permutation_seed)
        super().__init__(keys, jigsaw, allow_missing_keys)
        self.label_key = label_key
        self.flip_label_key = flip_label_key
        self.jigsaw = self.array_transform

    @property
    def permutations(self) -> np.ndarray:
        return self.jigsaw.permutations

    @property
    def num_classes(self) -> int:
        return self.jigsaw.num_classes

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = super().__call__(data)
        d[self.label_key] = torch.tensor(self.jigsaw.label, dtype=torch.long)
        if self.jigsaw.flip_axes:
            d[self.flip_label_key] = torch.as_tensor(self.jigsaw.flips, dtype=torch.float32)
        return d


RandVolumeJigsawD = RandVolumeJigsawDict = RandVolumeJigsawd
