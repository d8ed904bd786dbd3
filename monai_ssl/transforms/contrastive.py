"""Contrastive pretext task (SimCLR): two randomly augmented views of the same volume.

Reference:
    Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020;
    Chaitanya et al., "Contrastive learning of global and local features for medical image segmentation with
    limited annotations", NeurIPS 2020 (volumetric MRI).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor, get_track_meta
from monai.transforms import (
    Compose,
    Flip,
    RandGaussianNoise,
    RandGaussianSmooth,
    RandomizableTransform,
    RandScaleIntensity,
    RandShiftIntensity,
    SpatialCrop,
)
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from monai_ssl.transforms.utils import (
    RandArrayWrapperd,
    as_non_negative_int,
    as_positive_tuple,
    check_probability,
    patch_batch,
    spatial_shape_of,
)

__all__ = ["RandContrastiveViews", "RandContrastiveViewsd", "RandContrastiveViewsD", "RandContrastiveViewsDict"]


class RandContrastiveViews(RandomizableTransform):
    """
    Two views of one channel-first volume, each an independent random ``view_size`` crop, flipped along each
    spatial axis with probability ``flip_prob``, with random intensity scaling and shift, Gaussian noise and
    Gaussian blur (MONAI's transforms), stacked as ``(2, C, *view_size)``.

    With ``partitions`` > 0 (the "domain-specific" positives of Chaitanya et al.), the volume is cut into that many
    equal bands along ``partition_axis``; one band is drawn per call and both views are centred in it (then kept
    inside the volume). Views from the same band of different, roughly aligned volumes (e.g. whole brains resampled
    to one grid) show the same anatomy, and the loss may treat them as positives.

    All draws (crop origins, flips, band, and the seeds of the intensity augmentations) happen in
    :py:meth:`randomize` from ``self.R``, so one draw gives the same two views of several keys. After a call,
    ``view_to_source`` maps each view's voxel indices to the volume's, ``(2, 4, 4)`` (a flip and a shift per axis:
    what the local contrastive loss needs to pair the voxels of the two views), and ``partition`` is the band
    (``-1`` without partitions).

    Args:
        view_size: spatial size of each view (voxels); at most the volume's size.
        flip_prob: probability of flipping each spatial axis.
        intensity_prob: probability of each of the intensity scaling (factor in [0.8, 1.2]) and shift (+-0.1).
        noise_prob: probability of Gaussian noise of standard deviation ``noise_std``.
        noise_std: standard deviation of the noise (intensities in [0, 1]).
        blur_prob: probability of a Gaussian blur (sigma 0.5 to 1.5 voxels).
        partitions: number of bands for domain-specific positives; 0 for none.
        partition_axis: spatial axis (0, 1 or 2) the bands are stacked along.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        view_size: Sequence[int] | int = 32,
        flip_prob: float = 0.5,
        intensity_prob: float = 0.8,
        noise_prob: float = 0.5,
        noise_std: float = 0.05,
        blur_prob: float = 0.5,
        partitions: int = 0,
        partition_axis: int = 2,
    ) -> None:
        RandomizableTransform.__init__(self, prob=1.0)
        for name, value in (("flip_prob", flip_prob), ("intensity_prob", intensity_prob),
                            ("noise_prob", noise_prob), ("blur_prob", blur_prob)):
            check_probability(name, value)
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}.")
        self.partitions = as_non_negative_int(partitions, "partitions")
        if partition_axis not in (0, 1, 2):
            raise ValueError(f"partition_axis must be a spatial axis, 0, 1 or 2, got {partition_axis}.")
        self.partition_axis = partition_axis
        self.view_size = as_positive_tuple(view_size, 3, "view_size")
        self.flip_prob = float(flip_prob)
        self.intensity = Compose([
            RandScaleIntensity(factors=0.2, prob=intensity_prob),
            RandShiftIntensity(offsets=0.1, prob=intensity_prob),
            RandGaussianNoise(prob=noise_prob, std=noise_std),
            RandGaussianSmooth(sigma_x=(0.5, 1.5), sigma_y=(0.5, 1.5), sigma_z=(0.5, 1.5), prob=blur_prob),
        ])
        self._draw: dict | None = None

    def randomize(self, spatial_size: Sequence[int]) -> None:
        """Draw the band, then for each view its crop origin, its flips and the seed of its intensity
        augmentations, for a volume of ``spatial_size``."""
        partition = int(self.R.randint(self.partitions)) if self.partitions else -1
        starts, flips, seeds = [], [], []
        for _ in range(2):
            start = [int(self.R.randint(size - view + 1)) for size, view in zip(spatial_size, self.view_size)]
            if self.partitions:
                axis = self.partition_axis
                band = spatial_size[axis] / self.partitions
                centre = self.R.uniform(partition * band, (partition + 1) * band)
                start[axis] = int(np.clip(round(centre - self.view_size[axis] / 2), 0,
                                          spatial_size[axis] - self.view_size[axis]))
            starts.append(start)
            flips.append([bool(self.R.rand() < self.flip_prob) for _ in range(3)])
            seeds.append(int(self.R.randint(2**31)))
        self._draw = {"spatial_size": tuple(spatial_size), "partition": partition, "starts": starts, "flips": flips,
                      "seeds": seeds}

    @property
    def partition(self) -> int:
        """The band of the last call, ``-1`` without partitions."""
        return self._drawn()["partition"]

    @property
    def view_to_source(self) -> torch.Tensor:
        """``(2, 4, 4)``: homogeneous maps from each view's voxel indices to the volume's, for the last call."""
        draw = self._drawn()
        maps = torch.zeros(2, 4, 4)
        maps[:, 3, 3] = 1.0
        for view, (start, flips) in enumerate(zip(draw["starts"], draw["flips"])):
            for axis, (origin, flipped, size) in enumerate(zip(start, flips, self.view_size)):
                maps[view, axis, axis] = -1.0 if flipped else 1.0
                maps[view, axis, 3] = origin + (size - 1 if flipped else 0)
        return maps

    def _drawn(self) -> dict:
        if self._draw is None:
            raise RuntimeError("RandContrastiveViews has not drawn views yet: call it on a volume first.")
        return self._draw

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first volume ``(C, X, Y, Z)``, numpy array, tensor or MetaTensor.
            randomize: draw two new views; ``False`` repeats the last ones exactly (on a volume of the same size).
        """
        spatial = spatial_shape_of(img, 3, type(self).__name__)
        if any(v > s for v, s in zip(self.view_size, spatial)):
            raise ValueError(f"view_size {list(self.view_size)} is larger than the volume {list(spatial)}; use a "
                             "smaller view_size or a larger roi_size.")
        if randomize or self._draw is None:
            self.randomize(spatial)
        elif self._draw["spatial_size"] != tuple(spatial):
            raise ValueError(f"randomize=False repeats views drawn for a volume of {list(self._draw['spatial_size'])}"
                             f", not {list(spatial)}.")
        data = convert_to_tensor(img, track_meta=get_track_meta())
        views = []
        for start, flips, seed in zip(self._draw["starts"], self._draw["flips"], self._draw["seeds"]):
            view = SpatialCrop(roi_start=start, roi_end=[b + v for b, v in zip(start, self.view_size)])(data)
            if any(flips):
                view = Flip(spatial_axis=[axis for axis in range(3) if flips[axis]])(view)
            self.intensity.set_random_state(seed=seed)
            views.append(self.intensity(view))
        stacked = torch.stack([convert_to_tensor(v, track_meta=False) for v in views])
        if not (isinstance(img, MetaTensor) and isinstance(data, MetaTensor)):
            return convert_to_dst_type(stacked, img)[0]
        # a batch of the two views, each with the geometry MONAI's crop and flips gave it (out[i].affine)
        return patch_batch(stacked, data, torch.stack([v.affine for v in views]))


class RandContrastiveViewsd(RandArrayWrapperd):
    """
    Dictionary-based wrapper of :py:class:`RandContrastiveViews`: each key is replaced by its two views
    ``(2, C, *view_size)``, the same crops and augmentations for every key.

    Args:
        keys: keys of the volumes.
        geometry_key: where to write the views' voxel maps ``(2, 4, 4)`` (``view_to_source``); ``None`` for none.
        partition_key: where to write the band index (0-d int64); ``None`` for none.
        kwargs: see :py:class:`RandContrastiveViews`.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = RandContrastiveViews.backend

    def __init__(self, keys: KeysCollection, geometry_key: str | None = None, partition_key: str | None = None,
                 allow_missing_keys: bool = False, **kwargs) -> None:
        super().__init__(keys, RandContrastiveViews(**kwargs), allow_missing_keys)
        self.views = self.array_transform
        self.geometry_key, self.partition_key = geometry_key, partition_key

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        # the crops are drawn for the first key's size; every key must share it (checked by the array transform)
        self.views.randomize(spatial_shape_of(d[keys[0]], 3, type(self).__name__))
        for key in keys:
            d[key] = self.views(d[key], randomize=False)
        if self.geometry_key is not None:
            d[self.geometry_key] = self.views.view_to_source
        if self.partition_key is not None:
            d[self.partition_key] = torch.tensor(self.views.partition, dtype=torch.long)
        return d


RandContrastiveViewsD = RandContrastiveViewsDict = RandContrastiveViewsd
