"""Intensity colorization pretext task: restore the original intensities (or missing MR channels) from a
degraded copy of the volume.

References:
    Zhou et al., "Models Genesis", MedIA 2021 (non-linear intensity transformation by Bezier curves).
    Zhang et al., "Colorful Image Colorization", ECCV 2016 (quantised colour targets).
    Taleb et al., "Multimodal Self-Supervised Learning for Medical Image Analysis", IPMI 2021 (missing modalities).
"""

from __future__ import annotations

import math
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
# voxels remapped at a time: the two chunk-sized temporaries (1 MB each) stay in cache between the passes
_REMAP_CHUNK = 262144


class RandIntensityColorization(RandomizableTransform):
    """
    Degrade the intensities of a channel-first volume; the network learns to restore the original.

    ``mode="remap"``: each channel is mapped through one random smooth monotonic curve, inverted with
    probability ``invert_prob``. The curve is a Bezier curve of ``degree`` from (0, 0) to (1, 1), like Models
    Genesis' cubic one, with its inner control points at evenly spaced inputs and sorted random outputs: a
    Bernstein polynomial with non-decreasing coefficients, which is monotonic (Models Genesis draws the control
    points unsorted, which can fold intensities onto each other and make the restoration ambiguous). Intensities
    are mapped within each channel's own [min, max] range, so the output keeps the input's range. Being a
    polynomial of the intensity, the curve is evaluated without a look-up table, by Horner's rule in
    ``degree + 1`` fused element-wise passes over cache-sized chunks (a table needs a gather, several times
    slower); monotonicity and range hold up to float32 rounding (a few ulps).

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
        degree: degree of the remapping curve (``degree - 1`` random inner control points); 3 is Models
            Genesis' cubic, higher degrees give more varied curves at one pass per degree.
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        mode: str = "remap",
        invert_prob: float = 0.5,
        bins: int | None = None,
        bin_range: Sequence[float] | None = None,
        degree: int = 3,
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
        # the power-basis coefficients grow with the degree and cancel in float32: at 8 the error reaches 1e-5 of
        # the intensity range (3e-7 at 3)
        if not isinstance(degree, (int, np.integer)) or isinstance(degree, bool) or not 1 <= degree <= 8:
            raise ValueError(f"degree must be an int in [1, 8] (3 is Models Genesis' cubic), got {degree!r}.")
        self.mode = mode
        self.invert_prob = float(invert_prob)
        self.bins = None if bins is None else int(bins)
        self.bin_range = None if bin_range is None else (float(bin_range[0]), float(bin_range[1]))
        self.degree = int(degree)
        self.num_classes = self.bins or 0
        self._control_values: np.ndarray | None = None
        self._channel_draw: float | None = None

    @property
    def control_values(self) -> np.ndarray:
        """The last remapping curve's ``degree + 1`` control values, at inputs ``linspace(0, 1, degree + 1)``: 0, the
        sorted random inner values, 1 (reversed, ``1 - v``, when the curve is inverted)."""
        if self._control_values is None:
            raise RuntimeError("no remapping drawn yet: call the transform in mode 'remap' first.")
        return self._control_values.copy()

    def curve_at(self, u: np.ndarray | float) -> np.ndarray:
        """The last remapping curve at normalised intensities ``u`` in [0, 1] (the Bernstein polynomial)."""
        values, u = self.control_values, np.asarray(u, dtype=np.float64)
        n = self.degree
        return sum(values[i] * math.comb(n, i) * u**i * (1 - u) ** (n - i) for i in range(n + 1))

    def _power_coefficients(self) -> np.ndarray:
        """The curve as ``sum(c[i] * u**i)``: ``c[i] = comb(n, i) * sum_j (-1)**(i - j) comb(i, j) values[j]``."""
        values, n = self._control_values, self.degree
        return np.array([math.comb(n, i) * sum((-1) ** (i - j) * math.comb(i, j) * values[j] for j in range(i + 1))
                         for i in range(n + 1)])

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
            values = np.concatenate([[0.0], np.sort(self.R.random_sample(self.degree - 1)), [1.0]])
            invert = self.R.random_sample() < self.invert_prob
            self._control_values = 1.0 - values if invert else values
        else:
            self._channel_draw = float(self.R.random_sample())

    def _remap(self, img: torch.Tensor) -> torch.Tensor:
        dtype = img.dtype if img.is_floating_point() else torch.float32
        out = torch.empty(img.shape, dtype=dtype, device=img.device)
        # Chunks keep the temporaries in cache: full-volume temporaries cost more than the arithmetic.
        normalised = torch.empty(_REMAP_CHUNK, dtype=dtype, device=img.device)
        partial = torch.empty(_REMAP_CHUNK, dtype=dtype, device=img.device)
        # highest power first, for Horner's rule
        power_coefficients = self._power_coefficients()[::-1]
        for c in range(img.shape[0]):
            low, high = (float(v) for v in torch.aminmax(img[c]))
            if high <= low:  # a constant channel has nothing to remap
                out[c] = img[c]
                continue
            # y = low + (high - low) * curve(u), u = (x - low) / (high - low): Horner's rule in u, with the output
            # range folded into the coefficients
            coefficients = power_coefficients * (high - low)
            coefficients[-1] += low
            leading = float(coefficients[0])
            constants = [torch.tensor(float(v), dtype=dtype, device=img.device) for v in coefficients[1:]]
            scale = 1.0 / (high - low)
            offset = torch.tensor(-low * scale, dtype=dtype, device=img.device)
            source, target = img[c].reshape(-1), out[c].view(-1)
            for start in range(0, source.numel(), _REMAP_CHUNK):
                n = min(_REMAP_CHUNK, source.numel() - start)
                u, h, y = normalised[:n], partial[:n], target[start : start + n]
                torch.add(offset, source[start : start + n], alpha=scale, out=u)
                torch.add(constants[0], u, alpha=leading, out=h if self.degree > 1 else y)
                for index, constant in enumerate(constants[1:], start=2):
                    torch.addcmul(constant, h, u, out=y if index == self.degree else h)
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
        mode, invert_prob, bins, bin_range, degree: see :py:class:`RandIntensityColorization`.
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
        degree: int = 3,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(
            keys, RandIntensityColorization(mode, invert_prob, bins, bin_range, degree), allow_missing_keys
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
