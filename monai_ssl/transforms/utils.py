"""Helpers shared by the pretext transforms: argument validation and patch cutting."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import ensure_tuple

__all__ = [
    "RandArrayWrapperd",
    "as_positive_tuple",
    "as_non_negative_int",
    "check_probability",
    "crop_patches",
    "one_target_per_key",
    "patch_batch",
    "stack_patches_like",
    "spatial_shape_of",
]


def as_positive_tuple(value: int | Sequence[int], ndim: int, name: str) -> tuple[int, ...]:
    """Return ``value`` as a tuple of ``ndim`` positive ints (a scalar is repeated), or raise a ``ValueError``."""
    values = (value,) * ndim if isinstance(value, (int, np.integer)) else tuple(value)
    if len(values) != ndim or not all(isinstance(v, (int, np.integer)) and v > 0 for v in values):
        raise ValueError(f"{name} must be a positive int or a sequence of {ndim} positive ints, got {value!r}.")
    return tuple(int(v) for v in values)


def as_non_negative_int(value: int, name: str) -> int:
    """Return ``value`` as an int >= 0, or raise a ``ValueError``."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}.")
    return int(value)


def spatial_shape_of(img: NdarrayOrTensor, ndim: int, name: str) -> tuple[int, ...]:
    """The spatial shape of a channel-first image, checking it has ``ndim`` spatial dimensions."""
    if img.ndim != ndim + 1:
        raise ValueError(
            f"{name} expects a channel-first image with {ndim} spatial dimensions (C, *spatial), "
            f"got shape {tuple(img.shape)}; add a channel dimension with EnsureChannelFirst."
        )
    return tuple(int(s) for s in img.shape[1:])


def crop_patches(img: NdarrayOrTensor, starts: np.ndarray, size: Sequence[int]) -> list[NdarrayOrTensor]:
    """Cut one patch of ``size`` at each row of ``starts`` (voxel coordinates) from a channel-first image.

    A MetaTensor is cut as a plain tensor: the patches are views and their geometry is described by ``starts``.
    """
    data = img.as_tensor() if isinstance(img, MetaTensor) else img
    return [data[(slice(None),) + tuple(slice(int(s), int(s) + n) for s, n in zip(start, size))] for start in starts]


def stack_patches_like(
    patches: Sequence[NdarrayOrTensor], img: NdarrayOrTensor, starts: np.ndarray,
    flipped: Sequence[Sequence[int]] | None = None,
) -> NdarrayOrTensor:
    """Stack patches into ``(N, C, *size)`` with the array type of ``img``.

    A MetaTensor input gives a MetaTensor batch of the patches (``is_batch``): its affine is ``(N, 4, 4)``, each
    patch's own geometry, so that ``out[i]`` is a MetaTensor with the affine of patch ``i``; the other metadata is
    the input's.

    Args:
        patches: channel-first patches of one size.
        img: the volume they were cut from.
        starts: each patch's voxel origin in ``img``.
        flipped: each patch's flipped spatial axes (0-based), whose affine columns are reversed.
    """
    if isinstance(patches[0], np.ndarray):
        return np.stack(patches)
    out = torch.stack(patches)
    if not isinstance(img, MetaTensor):
        return out
    volume_affine = img.affine.to(torch.float64)
    affines = volume_affine.repeat(len(patches), 1, 1)
    origins = torch.as_tensor(np.asarray(starts), dtype=torch.float64)
    affines[:, :3, 3] = volume_affine[:3, 3] + origins @ volume_affine[:3, :3].T
    size = out.shape[2:]
    for index, axes in enumerate(flipped or []):
        for axis in axes:  # the first voxel of a flipped axis is the last of the region it was cut from
            affines[index, :3, 3] += volume_affine[:3, axis] * (size[axis] - 1)
            affines[index, :3, axis] *= -1
    return patch_batch(out, img, affines)


class RandArrayWrapperd(RandomizableTransform, MapTransform):
    """Base of the dictionary pretext transforms: one array transform whose single draw is shared by every key.

    ``__call__`` draws once (``array_transform.randomize()``) and applies the array transform with
    ``randomize=False`` to each key; subclasses add their labels to its result, or override it where the draw needs
    the data or writes other keys. ``set_random_state`` seeds the array transform, where every draw happens.

    Args:
        keys: keys of the volumes.
        array_transform: the array transform.
        allow_missing_keys: don't raise if a key is missing.
    """

    def __init__(self, keys: KeysCollection, array_transform: RandomizableTransform,
                 allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob=1.0)
        self.array_transform = array_transform

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.array_transform.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        """One draw, then each key through the array transform; subclasses add their labels to the result."""
        d = dict(data)
        self.array_transform.randomize()
        for key in self.key_iterator(d):
            d[key] = self.array_transform(d[key], randomize=False)
        return d


def one_target_per_key(keys: Sequence[Hashable], target_key: str | Sequence[str]) -> tuple[str, ...]:
    """The target keys of a dictionary transform that writes one target per input key, checked to match."""
    target_keys = ensure_tuple(target_key)
    if len(target_keys) != len(keys):
        raise ValueError(
            f"target_key must name one target per key: {len(keys)} keys but {len(target_keys)} target keys."
        )
    return target_keys


def check_probability(name: str, value: float) -> float:
    """``value`` as a float, or a ``ValueError`` naming the argument when it is not in [0, 1]."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}.")
    return float(value)


def patch_batch(patches: torch.Tensor, img: MetaTensor, affines: torch.Tensor) -> MetaTensor:
    """A MetaTensor batch ``(N, ...)`` of patches cut from ``img``: ``out[i]`` carries ``affines[i]`` and the rest of
    ``img``'s metadata."""
    meta = {k: v for k, v in img.meta.items() if k != "affine"}
    batch = MetaTensor(patches, affine=affines, meta=meta)
    batch.is_batch = True
    return batch
