"""Intensity colorization pretext task: restore the original intensities (or missing MR channels) from a
degraded copy of the volume.

References:
    Zhou et al., "Models Genesis", MedIA 2021 (non-linear intensity transformation by Bezier curves).
    Zhang et al., "Colorful Image Colorization", ECCV 2016 (quantised colour targets).
    Taleb et al., "Multimodal Self-Supervised Learning for Medical Image Analysis", IPMI 2021 (missing modalities).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import RandomizableTransform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from monai_ssl.transforms.utils import RandArrayWrapperd, one_target_per_key

__all__ = [
    "RandIntensityColorization",
    "RandIntensityColorizationd",
    "RandIntensityColorizationD",
    "RandIntensityColorizationDict",
]

COLORIZATION_MODES = ("remap", "channels")
# samples of the Bezier curve; the look-up table is interpolated from them
_CURVE_SAMPLES = 1025
# voxels remapped at a time, small enough for the temporaries to stay in cache
_REMAP_CHUNK = 65536


class RandIntensityColorization(RandomizableTransform):
    """
    Degrade the intensities of a channel-first volume; the network learns to restore the original.

    ``mode="remap"``: each channel is mapped through one random smooth monotonic curve, inverted with
    probability ``invert_prob``. The curve is a cubic Bezier from (0, 0) to (1, 1) whose two inner control
    points have sorted random coordinates, which makes it monotonic (Models Genesis draws them unsorted, which
    can fold intensities onto each other and make the restoration ambiguous). Intensities are mapped within
    each channel's own [min, max] range, so the output keeps the input's range. The curve is applied through a
    look-up table of ``lut_size`` entries, the cost of a few element-wise passes.

    ``mode="channels"``, for multi-channel MR such as FLAIR + T1c: a random non-empty proper subset of the
    channels is kept, the others are set to 0 (the missing-modality task).

    The target is the original image. With ``bins=K`` it is instead each voxel's intensity bin, ``(C, *spatial)``
    int64 in ``[0, K)``: ``K`` equal bins over ``bin_range``, or over each channel's [min, max] if it is ``None``.
    See :py:meth:`target`.

    Args:
        mode: ``"remap"`` or ``"channels"``.
        invert_prob: probability of inverting the remapping curve (``mode="remap"``).
        bins: number of intensity bins of a classification target, or ``None`` for the original image.
        bin_range: fixed ``(low, high)`` intensity range of the bins, e.g. a CT window in HU.
        lut_size: entries of the remapping look-up table.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        mode: str = "remap",
        invert_prob: float = 0.5,
        bins: int | None = None,
        bin_range: Sequence[float] | None = None,
        lut_size: int = 4096,
    ) -> None:
        RandomizableTransform.__init__(self, prob=1.0)
        if mode not in COLORIZATION_MODES:
            raise ValueError(f"mode must be one of {COLORIZATION_MODES}, got {mode!r}.")
        if not 0.0 <= invert_prob <= 1.0:
            raise ValueError(f"invert_prob must be in [0, 1], got {invert_prob}.")
        if bins is not None and (not isinstance(bins, (int, np.integer)) or bins < 2):
            raise ValueError(f"bins must be an int >= 2, or None for an image target; got {bins!r}.")
        if bin_range is not None and (len(bin_range) != 2 or not bin_range[0] < bin_range[1]):
            raise ValueError(f"bin_range must be (low, high) with low < high, got {bin_range!r}.")
        if bin_range is not None and bins is None:
            raise ValueError("bin_range only applies to a binned target: set bins too, or drop bin_range.")
        if lut_size < 2:
            raise ValueError(f"lut_size must be >= 2, got {lut_size}.")
        self.mode = mode
        self.invert_prob = float(invert_prob)
        self.bins = None if bins is None else int(bins)
        self.bin_range = None if bin_range is None else (float(bin_range[0]), float(bin_range[1]))
        self.lut_size = int(lut_size)
        self.num_classes = self.bins or 0
        self._curve: np.ndarray | None = None
        self._channel_draw: float | None = None

    @property
    def curve(self) -> np.ndarray:
        """The last remapping look-up table: ``lut_size`` values in [0, 1] for inputs ``linspace(0, 1, lut_size)``."""
        if self._curve is None:
            raise RuntimeError("no remapping drawn yet: call the transform in mode 'remap' first.")
        return self._curve.copy()

    def kept_channels(self, num_channels: int) -> np.ndarray:
        """Boolean mask of the channels kept by the last ``mode="channels"`` draw, for ``num_channels`` channels."""
        if self._channel_draw is None:
            raise RuntimeError("no channel subset drawn yet: call the transform in mode 'channels' first.")
        if num_channels < 2:
            raise ValueError(
                f"mode='channels' needs at least 2 channels to drop some and keep some, got {num_channels}; "
                "use mode='remap' for single-channel images."
            )
        # one uniform draw, decoded per channel count, picks among the 2**C - 2 non-empty proper subsets
        subset = 1 + int(self._channel_draw * (2**num_channels - 2))
        return np.array([(subset >> c) & 1 for c in range(num_channels)], dtype=bool)

    def randomize(self, data: None = None) -> None:
        if self.mode == "remap":
            control_x = np.sort(self.R.random_sample(2))
            control_y = np.sort(self.R.random_sample(2))
            invert = self.R.random_sample() < self.invert_prob
            t = np.linspace(0.0, 1.0, _CURVE_SAMPLES)
            basis = np.stack([3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3])  # Bernstein terms, P0 = (0, 0)
            x = np.array([control_x[0], control_x[1], 1.0]) @ basis
            y = np.array([control_y[0], control_y[1], 1.0]) @ basis
            curve = np.interp(np.linspace(0.0, 1.0, self.lut_size), x, y)
            self._curve = 1.0 - curve if invert else curve
        else:
            self._channel_draw = float(self.R.random_sample())

    def _remap(self, img: torch.Tensor) -> torch.Tensor:
        dtype = img.dtype if img.is_floating_point() else torch.float32
        out = torch.empty(img.shape, dtype=dtype, device=img.device)
        curve = torch.as_tensor(self._curve, dtype=dtype, device=img.device)
        # Chunks keep the temporaries in cache: full-volume temporaries cost more than the arithmetic.
        scaled = torch.empty(_REMAP_CHUNK, dtype=dtype, device=img.device)
        index = torch.empty(_REMAP_CHUNK, dtype=torch.int32, device=img.device)
        for c in range(img.shape[0]):
            low, high = (float(v) for v in torch.aminmax(img[c]))
            if high <= low:  # a constant channel has nothing to remap
                out[c] = img[c]
                continue
            scale = (self.lut_size - 1) / (high - low)
            offset = torch.tensor(0.5 - low * scale, dtype=dtype)
            table = curve * (high - low) + low
            source, target = img[c].reshape(-1), out[c].view(-1)
            for start in range(0, source.numel(), _REMAP_CHUNK):
                n = min(_REMAP_CHUNK, source.numel() - start)
                # index = floor((x - low) * scale + 0.5); values are >= 0, so the int conversion is a floor
                torch.add(offset, source[start : start + n], alpha=scale, out=scaled[:n])
                index[:n].copy_(scaled[:n])
                torch.index_select(table, 0, index[:n], out=target[start : start + n])
        return out

    def target(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """The restoration target of ``img``: the image itself, or its intensity bins when ``bins`` is set."""
        if self.bins is None:
            return img
        data = convert_to_tensor(img, track_meta=False).float()
        bins = torch.empty(data.shape, dtype=torch.long, device=data.device)
        for c in range(data.shape[0]):
            low, high = self.bin_range if self.bin_range is not None else (float(v) for v in torch.aminmax(data[c]))
            scaled = (data[c] - low) * (self.bins / max(high - low, 1e-12))
            bins[c] = scaled.floor().clamp_(0, self.bins - 1).to(torch.long)
        return convert_to_dst_type(bins, img, dtype=torch.long)[0]

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first volume ``(C, *spatial)``, numpy array, tensor or MetaTensor.
            randomize: draw a new curve or channel subset; ``False`` reuses the last one.

        Returns:
            the degraded input, with the array type of ``img``.
        """
        if img.ndim < 2:
            raise ValueError(f"expected a channel-first image (C, *spatial), got shape {tuple(img.shape)}.")
        if self.mode == "channels" and img.shape[0] < 2:
            raise ValueError(
                f"mode='channels' needs at least 2 channels, got {img.shape[0]}; use mode='remap' instead."
            )
        if randomize:
            self.randomize()
        data = convert_to_tensor(img, track_meta=False)
        if self.mode == "remap":
            out = self._remap(data)
        else:
            kept = torch.as_tensor(self.kept_channels(data.shape[0]), device=data.device)
            out = data * kept.view(-1, *([1] * (data.ndim - 1))).to(data.dtype)
        return convert_to_dst_type(out, img)[0]


class RandIntensityColorizationd(RandArrayWrapperd):
    """
    Dictionary-based wrapper of :py:class:`RandIntensityColorization`.

    Each key's target (its original image, or its intensity bins) is written to the matching entry of
    ``target_key`` before the key is replaced by its degraded copy. Every key gets the same curve or channel
    subset.

    Args:
        keys: keys of the volumes to degrade.
        target_key: where to write the targets, one per key.
        mode, invert_prob, bins, bin_range, lut_size: see :py:class:`RandIntensityColorization`.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = RandIntensityColorization.backend

    def __init__(
        self,
        keys: KeysCollection,
        target_key: str | Sequence[str] = "colorization_target",
        mode: str = "remap",
        invert_prob: float = 0.5,
        bins: int | None = None,
        bin_range: Sequence[float] | None = None,
        lut_size: int = 4096,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(
            keys, RandIntensityColorization(mode, invert_prob, bins, bin_range, lut_size), allow_missing_keys
        )
        self.target_keys = one_target_per_key(self.keys, target_key)
        self.colorization = self.array_transform

    @property
    def num_classes(self) -> int:
        return self.colorization.num_classes

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        self.colorization.randomize()
        for key, target_key in self.key_iterator(d, self.target_keys):
            d[target_key] = self.colorization.target(d[key])
            d[key] = self.colorization(d[key], randomize=False)
        return d


RandIntensityColorizationD = RandIntensityColorizationDict = RandIntensityColorizationd
