"""Masked-volume modelling pretext task (SimMIM-style): hide most of a grid of small cubes, reconstruct them.

Reference:
    Xie et al., "SimMIM: a Simple Framework for Masked Image Modeling", CVPR 2022: a random share of the patches of
    a regular grid is masked (a share of 0.6 with patches larger than the network's stride worked best) and the
    network regresses the raw intensities of the masked patches only, with an L1 loss. For convolutional networks
    the mask is applied to the input voxels, so the network sees the masked cubes as filled with a constant.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import get_track_meta
from monai.transforms import RandomizableTransform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from monai_ssl.transforms.utils import RandArrayWrapperd, as_positive_tuple, one_target_per_key

__all__ = ["RandVolumeMasking", "RandVolumeMaskingd", "RandVolumeMaskingD", "RandVolumeMaskingDict"]


class RandVolumeMasking(RandomizableTransform):
    """
    Mask a random share of the cubes of a regular grid that tiles a channel-first 3D volume: every channel of a
    masked cube is set to ``fill_value``; the rest of the volume is unchanged. The grid starts at the first voxel;
    cubes at the far edges are cut short where the volume is not a multiple of ``cube_size``.

    :py:meth:`mask` gives the voxels of the last draw, so that a loss can be restricted to them (SimMIM).

    Args:
        mask_ratio: share of the grid's cubes masked, in (0, 1); the number masked is rounded and kept between 1
            and all cubes but one.
        cube_size: edge of a cube (voxels), an int or one per spatial axis. SimMIM found cubes larger than the
            network's stride best: smaller ones are filled in from their neighbours' voxels.
        fill_value: the value of masked voxels (0: the background of the bundles' [0, 1] intensities).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, mask_ratio: float = 0.6, cube_size: int | Sequence[int] = 8, fill_value: float = 0.0) -> None:
        RandomizableTransform.__init__(self, prob=1.0)
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio is the share of cubes masked and must be in (0, 1) (SimMIM uses 0.6), "
                             f"got {mask_ratio}.")
        self.mask_ratio = float(mask_ratio)
        self.cube_size = as_positive_tuple(cube_size, 3, "cube_size")
        self.fill_value = float(fill_value)
        #: the grid of cubes of the last draw, True where masked
        self.cube_mask: np.ndarray | None = None

    def grid_shape(self, spatial_shape: Sequence[int]) -> tuple[int, ...]:
        """The number of cubes along each axis of a volume of ``spatial_shape``."""
        if len(spatial_shape) != 3:
            raise ValueError(f"expected a channel-first 3D volume (C, X, Y, Z), got spatial shape "
                             f"{tuple(spatial_shape)}.")
        return tuple(-(-int(size) // edge) for size, edge in zip(spatial_shape, self.cube_size))

    def randomize(self, spatial_shape: Sequence[int]) -> None:
        """Draw the masked cubes of a volume of ``spatial_shape``."""
        grid = self.grid_shape(spatial_shape)
        cubes = int(np.prod(grid))
        if cubes < 2:
            raise ValueError(f"a volume of spatial shape {tuple(spatial_shape)} holds a single cube of cube_size "
                             f"{list(self.cube_size)}; use a smaller cube_size so that some of it stays visible.")
        masked = int(np.clip(round(self.mask_ratio * cubes), 1, cubes - 1))
        cube_mask = np.zeros(cubes, dtype=bool)
        cube_mask[self.R.choice(cubes, masked, replace=False)] = True
        self.cube_mask = cube_mask.reshape(grid)

    def _drawn_cubes(self, spatial_shape: Sequence[int]) -> torch.Tensor:
        """The last draw's grid of cubes (True where masked), checked to tile a volume of ``spatial_shape``."""
        if self.cube_mask is None:
            raise RuntimeError("no masking has been drawn yet: call the transform (or randomize) first.")
        if self.grid_shape(spatial_shape) != self.cube_mask.shape:
            raise ValueError(f"the last draw masked a grid of {self.cube_mask.shape} cubes, which does not tile a "
                             f"volume of spatial shape {tuple(spatial_shape)}; call with randomize=True.")
        return torch.from_numpy(self.cube_mask)

    def _voxels(self, per_cube: torch.Tensor, spatial_shape: Sequence[int]) -> torch.Tensor:
        """``per_cube`` (one value per cube of the grid) spread over the voxels of ``spatial_shape``."""
        grid, edges = per_cube.shape, self.cube_size
        # one copy from a broadcast view: each cube's value repeated over its edges, then the far edges cut short
        voxels = per_cube[:, None, :, None, :, None].expand(grid[0], edges[0], grid[1], edges[1], grid[2], edges[2])
        voxels = voxels.reshape(grid[0] * edges[0], grid[1] * edges[1], grid[2] * edges[2])
        return voxels[tuple(slice(0, int(size)) for size in spatial_shape)]

    def mask(self, spatial_shape: Sequence[int]) -> np.ndarray:
        """The masked voxels of the last draw for a volume of ``spatial_shape``: a ``(1, X, Y, Z)`` bool array."""
        return self._voxels(self._drawn_cubes(spatial_shape), spatial_shape).numpy()[None]

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first volume ``(C, X, Y, Z)``; numpy array, tensor or MetaTensor.
            randomize: draw new cubes; ``False`` masks the last draw's cubes again, exactly.
        """
        if randomize:
            self.randomize(img.shape[1:])
        img_t = convert_to_tensor(img, track_meta=get_track_meta())
        kept_cubes = ~self._drawn_cubes(img.shape[1:])
        # a product with the kept voxels is several times faster than masked_fill on CPU
        keep = self._voxels(kept_cubes.to(device=img_t.device, dtype=img_t.dtype), img.shape[1:])
        out = img_t * keep
        if self.fill_value:
            out = out + self.fill_value * (1 - keep)
        return convert_to_dst_type(out, img)[0]


class RandVolumeMaskingd(RandArrayWrapperd):
    """
    Dictionary-based wrapper of :py:class:`RandVolumeMasking`.

    Each key's untouched volume is copied to the matching entry of ``target_key`` before the key is masked; every
    key gets the same cubes, and ``mask_key`` receives them as a float ``(1, X, Y, Z)`` volume (1 where masked) of
    the first key's type, so that a loss can be restricted to the masked voxels.

    Args:
        keys: keys of the volumes to mask; they must share a spatial shape.
        target_key: where to write the originals, one per key.
        mask_key: where to write the mask.
        allow_missing_keys: don't raise if a key is missing.
        kwargs: see :py:class:`RandVolumeMasking`.
    """

    backend = RandVolumeMasking.backend

    def __init__(
        self,
        keys: KeysCollection,
        target_key: str | Sequence[str] = "masked_volume_target",
        mask_key: str = "masked_volume_mask",
        allow_missing_keys: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(keys, RandVolumeMasking(**kwargs), allow_missing_keys)
        self.target_keys = one_target_per_key(self.keys, target_key)
        self.mask_key = mask_key
        self.masking = self.array_transform

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        present = list(self.key_iterator(d))
        if not present:
            return d
        shapes = {tuple(d[key].shape[1:]) for key in present}
        if len(shapes) > 1:
            raise ValueError(f"keys {present} share one mask and must share a spatial shape, got {sorted(shapes)}.")
        spatial_shape = shapes.pop()
        self.masking.randomize(spatial_shape)
        for key, target_key in self.key_iterator(d, self.target_keys):
            d[target_key] = d[key].clone() if isinstance(d[key], torch.Tensor) else d[key].copy()
            d[key] = self.masking(d[key], randomize=False)
        d[self.mask_key] = convert_to_dst_type(self.masking.mask(spatial_shape), d[present[0]],
                                               dtype=torch.float32 if isinstance(d[present[0]], torch.Tensor)
                                               else np.float32)[0]
        return d


RandVolumeMaskingD = RandVolumeMaskingDict = RandVolumeMaskingd
