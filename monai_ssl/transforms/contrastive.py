"""Contrastive pretext task (SimCLR): two randomly augmented views of the same volume.

Reference:
    Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020;
    Chaitanya et al., "Contrastive learning of global and local features for medical image segmentation with
    limited annotations", NeurIPS 2020 (volumetric MRI).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor, get_track_meta
from monai.transforms import (
    Compose,
    RandFlip,
    RandGaussianNoise,
    RandGaussianSmooth,
    RandomizableTransform,
    RandScaleIntensity,
    RandShiftIntensity,
    RandSpatialCrop,
)
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from monai_ssl.transforms.utils import (
    RandArrayWrapperd,
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

    Each view's augmentation is seeded from this transform's ``self.R`` in :py:meth:`randomize`, so one draw gives
    the same two views of several keys.

    Args:
        view_size: spatial size of each view (voxels); at most the volume's size.
        flip_prob: probability of flipping each spatial axis.
        intensity_prob: probability of each of the intensity scaling (factor in [0.8, 1.2]) and shift (+-0.1).
        noise_prob: probability of Gaussian noise of standard deviation ``noise_std``.
        noise_std: standard deviation of the noise (intensities in [0, 1]).
        blur_prob: probability of a Gaussian blur (sigma 0.5 to 1.5 voxels).
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
    ) -> None:
        RandomizableTransform.__init__(self, prob=1.0)
        for name, value in (("flip_prob", flip_prob), ("intensity_prob", intensity_prob),
                            ("noise_prob", noise_prob), ("blur_prob", blur_prob)):
            check_probability(name, value)
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}.")
        self.view_size = as_positive_tuple(view_size, 3, "view_size")
        self.augment = Compose([
            RandSpatialCrop(self.view_size, random_size=False),
            *(RandFlip(prob=flip_prob, spatial_axis=axis) for axis in range(3)),
            RandScaleIntensity(factors=0.2, prob=intensity_prob),
            RandShiftIntensity(offsets=0.1, prob=intensity_prob),
            RandGaussianNoise(prob=noise_prob, std=noise_std),
            RandGaussianSmooth(sigma_x=(0.5, 1.5), sigma_y=(0.5, 1.5), sigma_z=(0.5, 1.5), prob=blur_prob),
        ])
        self._seeds: tuple[int, int] | None = None

    def randomize(self, data: None = None) -> None:
        self._seeds = (int(self.R.randint(2**31)), int(self.R.randint(2**31)))

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first volume ``(C, X, Y, Z)``, numpy array, tensor or MetaTensor.
            randomize: draw two new views; ``False`` repeats the last ones exactly.
        """
        spatial = spatial_shape_of(img, 3, type(self).__name__)
        if any(v > s for v, s in zip(self.view_size, spatial)):
            raise ValueError(f"view_size {list(self.view_size)} is larger than the volume {list(spatial)}; use a "
                             "smaller view_size or a larger roi_size.")
        if randomize or self._seeds is None:
            self.randomize()
        data = convert_to_tensor(img, track_meta=get_track_meta())
        views = []
        for seed in self._seeds:
            self.augment.set_random_state(seed=seed)
            views.append(self.augment(data))
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
        kwargs: see :py:class:`RandContrastiveViews`.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = RandContrastiveViews.backend

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False, **kwargs) -> None:
        super().__init__(keys, RandContrastiveViews(**kwargs), allow_missing_keys)
        self.views = self.array_transform


RandContrastiveViewsD = RandContrastiveViewsDict = RandContrastiveViewsd
