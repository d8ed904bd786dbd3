"""Restoration pretext task (Models Genesis): degrade a volume, restore the original through the whole network.

Reference:
    Zhou et al., "Models Genesis", Medical Image Analysis 2021: local voxel shuffling, a non-linear intensity
    transformation, and in- or out-painting, each applied at random; the target is the original volume.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import get_track_meta
from monai.transforms import RandCoarseDropout, RandCoarseShuffle, RandomizableTransform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from monai_ssl.transforms.colorization import RandIntensityColorization
from monai_ssl.transforms.utils import (
    RandArrayWrapperd,
    as_positive_tuple,
    check_probability,
    one_target_per_key,
)

__all__ = [
    "RandRestorationDegradation",
    "RandRestorationDegradationd",
    "RandRestorationDegradationD",
    "RandRestorationDegradationDict",
]


class RandRestorationDegradation(RandomizableTransform):
    """
    Models Genesis' degradation of a channel-first volume whose intensities lie in [0, 1]: each of the following
    is applied at random, in this order, and the network learns to restore the original.

    - **local voxel shuffling** (probability ``shuffle_prob``): the voxels inside ``shuffle_holes`` small boxes
      are permuted within each box (MONAI's ``RandCoarseShuffle``), which destroys texture but keeps the
      intensities;
    - **non-linear intensity remap** (probability ``remap_prob``): the random monotonic Bezier curve of
      :py:class:`RandIntensityColorization` (``mode="remap"``);
    - **painting** (probability ``paint_prob``): in-painting (with probability ``inpaint_prob``) fills
      ``paint_holes`` boxes with uniform noise in [0, 1]; out-painting (otherwise) keeps the boxes and fills
      everything else with noise (MONAI's ``RandCoarseDropout``).

    MONAI's coarse transforms do the box work; the choice of degradations, their order and the seeding of each
    part from this transform's ``self.R`` are what this class adds. The output may be returned unchanged when no
    degradation is drawn (probability ``(1 - shuffle_prob) (1 - remap_prob) (1 - paint_prob)``), as in Models
    Genesis.

    Args:
        shuffle_prob: probability of local voxel shuffling.
        remap_prob: probability of the non-linear intensity remap.
        paint_prob: probability of in- or out-painting.
        inpaint_prob: probability that painting is in-painting rather than out-painting.
        shuffle_holes: number of shuffled boxes.
        shuffle_size: edge of a shuffled box (voxels).
        paint_holes: number of painted (in-painting) or kept (out-painting) boxes.
        paint_size: minimum edge of a painted box; boxes reach up to twice this size.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        shuffle_prob: float = 0.5,
        remap_prob: float = 0.9,
        paint_prob: float = 0.9,
        inpaint_prob: float = 0.2,
        shuffle_holes: int = 64,
        shuffle_size: int | Sequence[int] = 4,
        paint_holes: int = 3,
        paint_size: int | Sequence[int] = 8,
    ) -> None:
        RandomizableTransform.__init__(self, prob=1.0)
        self.shuffle_prob = check_probability("shuffle_prob", shuffle_prob)
        self.remap_prob = check_probability("remap_prob", remap_prob)
        self.paint_prob = check_probability("paint_prob", paint_prob)
        self.inpaint_prob = check_probability("inpaint_prob", inpaint_prob)
        for name, value in (("shuffle_holes", shuffle_holes), ("paint_holes", paint_holes)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}.")
        shuffle_size = as_positive_tuple(shuffle_size, 3, "shuffle_size")
        paint_size = as_positive_tuple(paint_size, 3, "paint_size")
        max_paint = [2 * s for s in paint_size]
        self.shuffle = RandCoarseShuffle(holes=int(shuffle_holes), spatial_size=shuffle_size, prob=1.0)
        self.remap = RandIntensityColorization(mode="remap")
        self.inpaint = RandCoarseDropout(holes=int(paint_holes), spatial_size=paint_size, max_spatial_size=max_paint,
                                         dropout_holes=True, fill_value=(0.0, 1.0), prob=1.0)
        self.outpaint = RandCoarseDropout(holes=int(paint_holes), spatial_size=paint_size, max_spatial_size=max_paint,
                                          dropout_holes=False, fill_value=(0.0, 1.0), prob=1.0)
        self._seeds: dict[str, int] = {}

    @property
    def applied(self) -> tuple[str, ...]:
        """The degradations of the last draw, in order: ``"shuffle"``, ``"remap"``, ``"inpaint"``, ``"outpaint"``."""
        return tuple(self._seeds)

    def randomize(self, data: None = None) -> None:
        """Draw the degradations, and a seed for each: MONAI's coarse transforms draw their boxes, and the noise
        and permutations inside them, from their own generators, which are seeded from these on every call so
        that one draw degrades several keys identically."""
        applied = []
        if self.R.random_sample() < self.shuffle_prob:
            applied.append("shuffle")
        if self.R.random_sample() < self.remap_prob:
            applied.append("remap")
        if self.R.random_sample() < self.paint_prob:
            applied.append("inpaint" if self.R.random_sample() < self.inpaint_prob else "outpaint")
        self._seeds = {name: int(self.R.randint(2**31)) for name in applied}

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first volume ``(C, *spatial)`` with intensities in [0, 1]; numpy array, tensor or
                MetaTensor.
            randomize: draw new degradations; ``False`` reuses the last ones, exactly.
        """
        if randomize:
            self.randomize()
        # a copy: MONAI's RandCoarseShuffle permutes voxels in place, which would change the caller's volume
        out = convert_to_tensor(img, track_meta=get_track_meta()).clone()
        for name, seed in self._seeds.items():
            part = getattr(self, name)
            part.set_random_state(seed=seed)
            out = part(out)
        return convert_to_dst_type(out, img)[0]


class RandRestorationDegradationd(RandArrayWrapperd):
    """
    Dictionary-based wrapper of :py:class:`RandRestorationDegradation`.

    Each key's untouched volume is copied to the matching entry of ``target_key`` before the key is replaced by
    its degraded copy. Every key gets the same degradations (the same boxes and curve).

    Args:
        keys: keys of the volumes to degrade.
        target_key: where to write the originals, one per key.
        kwargs: see :py:class:`RandRestorationDegradation`.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = RandRestorationDegradation.backend

    def __init__(
        self,
        keys: KeysCollection,
        target_key: str | Sequence[str] = "restoration_target",
        allow_missing_keys: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(keys, RandRestorationDegradation(**kwargs), allow_missing_keys)
        self.target_keys = one_target_per_key(self.keys, target_key)
        self.degradation = self.array_transform

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        self.degradation.randomize()
        for key, target_key in self.key_iterator(d, self.target_keys):
            d[target_key] = d[key].clone() if isinstance(d[key], torch.Tensor) else d[key].copy()
            d[key] = self.degradation(d[key], randomize=False)
        return d


RandRestorationDegradationD = RandRestorationDegradationDict = RandRestorationDegradationd
