"""SynthSeg-style image synthesis from anatomical label maps, with fresh random contrast at every draw.

An unlabelled pretraining pool can hold label maps instead of images: each draw paints every label with a random
mean intensity and texture, then adds a smooth multiplicative bias field, a random acquisition blur, noise and
a gamma change. Every draw is a new "scan" of the same anatomy in a new contrast (domain randomisation), so a
handful of anatomies gives an unlimited stream of images. With a contrast prior, the means are drawn around a
given contrast instead (e.g. T1: white matter brighter than grey matter, CSF darkest), the one generator behind
both the pretraining pool's scans and :func:`monai_ssl.data.synthesis.synthesize_t1`.

Reference:
    Billot et al., "SynthSeg: Segmentation of brain MRI scans of any contrast and resolution without
    retraining", Medical Image Analysis 2023.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor, get_track_meta
from monai.transforms import AdjustContrast, GaussianSmooth, RandomizableTransform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from monai_ssl.transforms.utils import RandArrayWrapperd

__all__ = [
    "RandLabelMapSynthesis",
    "RandLabelMapSynthesisd",
    "RandLabelMapSynthesisD",
    "RandLabelMapSynthesisDict",
]


def _as_range(value: Sequence[float], name: str, low: float = 0.0) -> tuple[float, float]:
    values = tuple(float(v) for v in value)
    if len(values) != 2 or values[0] > values[1] or values[0] < low:
        raise ValueError(f"{name} must be (min, max) with {low} <= min <= max, got {value!r}.")
    return values


class RandLabelMapSynthesis(RandomizableTransform):
    """
    Synthesise a single-channel image in [0, 1] from a channel-first integer label map ``(1, *spatial)``.

    Each call draws, from ``self.R``:

    - a mean intensity per label, uniform in ``mean_range`` (or, for a label of ``contrast_prior``, its prior mean
      plus ``N(0, prior_std)``), and a within-label standard deviation, uniform in ``std_range`` (label 0, the
      background, stays dark: mean 0, no texture);
    - a smooth multiplicative bias field: ``exp`` of a ``bias_grid``-point Gaussian grid (sd ``bias_std``)
      interpolated to the image size;
    - a Gaussian blur per axis, sigma uniform in ``blur_sigma_range`` voxels (a random acquisition resolution;
      MONAI's ``GaussianSmooth``);
    - additive Gaussian noise, sd uniform in ``noise_std_range``;
    - a gamma, ``exp(N(0, gamma_std))``, applied after rescaling to [0, 1] by the 99.5th percentile (MONAI's
      ``AdjustContrast``).

    The voxel-wise texture and noise come from a ``torch.Generator`` seeded in :py:meth:`randomize` with a draw
    from ``self.R``, so a seeded transform repeats exactly while the voxel noise is generated at torch speed.
    Synthesise after cropping: the cost grows with the number of voxels.

    Args:
        mean_range: range of the per-label mean intensities.
        std_range: range of the per-label texture standard deviations.
        bias_std: standard deviation of the log bias field at its grid points; 0 disables it.
        bias_grid: grid points per axis of the bias field (>= 2).
        blur_sigma_range: range of the blur's sigma in voxels, per axis.
        noise_std_range: range of the noise standard deviation.
        gamma_std: standard deviation of the log gamma; 0 disables it.
        contrast_prior: mean intensity per label id (e.g. a T1 contrast); labels it does not list draw from
            ``mean_range``.
        prior_std: standard deviation of a prior mean's per-draw perturbation.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        mean_range: Sequence[float] = (0.0, 1.0),
        std_range: Sequence[float] = (0.0, 0.05),
        bias_std: float = 0.3,
        bias_grid: int = 4,
        blur_sigma_range: Sequence[float] = (0.0, 1.0),
        noise_std_range: Sequence[float] = (0.0, 0.03),
        gamma_std: float = 0.25,
        contrast_prior: Mapping[int, float] | None = None,
        prior_std: float = 0.05,
    ) -> None:
        RandomizableTransform.__init__(self, prob=1.0)
        self.mean_range = _as_range(mean_range, "mean_range")
        self.std_range = _as_range(std_range, "std_range")
        self.blur_sigma_range = _as_range(blur_sigma_range, "blur_sigma_range")
        self.noise_std_range = _as_range(noise_std_range, "noise_std_range")
        if bias_std < 0 or gamma_std < 0 or prior_std < 0:
            raise ValueError(f"bias_std, gamma_std and prior_std must be >= 0, got {bias_std}, {gamma_std} and "
                             f"{prior_std}.")
        prior = {int(k): float(v) for k, v in (contrast_prior or {}).items()}
        if any(k < 0 for k in prior):
            raise ValueError(f"contrast_prior maps non-negative label ids to mean intensities, got ids "
                             f"{sorted(k for k in prior if k < 0)}.")
        self.contrast_prior = prior
        self.prior_std = float(prior_std)
        if not isinstance(bias_grid, (int, np.integer)) or bias_grid < 2:
            raise ValueError(f"bias_grid must be an int >= 2 (grid points per axis), got {bias_grid!r}.")
        self.bias_std = float(bias_std)
        self.bias_grid = int(bias_grid)
        self.gamma_std = float(gamma_std)
        self._draw: dict | None = None

    def randomize(self, data: NdarrayOrTensor) -> None:
        """Draw the contrast of the next image for the label map ``data`` (its labels and dimensions)."""
        num_labels = int(data.max()) + 1
        spatial_dims = data.ndim - 1
        means = self.R.uniform(*self.mean_range, size=num_labels)
        stds = self.R.uniform(*self.std_range, size=num_labels)
        if self.contrast_prior:
            perturbations = self.R.normal(0.0, self.prior_std, size=num_labels)
            for label, mean in self.contrast_prior.items():
                if label < num_labels:
                    means[label] = max(0.0, mean + perturbations[label])
        means[0] = stds[0] = 0.0
        self._draw = {
            "means": means.astype(np.float32),
            "stds": stds.astype(np.float32),
            "bias": self.R.normal(0.0, self.bias_std, size=(self.bias_grid,) * spatial_dims).astype(np.float32),
            "sigma": self.R.uniform(*self.blur_sigma_range, size=spatial_dims).tolist(),
            "noise_std": float(self.R.uniform(*self.noise_std_range)),
            "gamma": float(np.exp(self.R.normal(0.0, self.gamma_std))) if self.gamma_std else 1.0,
            "seed": int(self.R.randint(2**31 - 1)),
        }

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first label map ``(1, *spatial)`` of non-negative integers (any numeric dtype).
            randomize: draw a new contrast; ``False`` repeats the last draw (same labels required).
        """
        if img.shape[0] != 1:
            raise ValueError(f"RandLabelMapSynthesis expects a single-channel label map (1, *spatial), got shape "
                             f"{tuple(img.shape)}.")
        labels = convert_to_tensor(img, track_meta=False).long()
        if labels.numel() and int(labels.min()) < 0:
            raise ValueError("label maps must hold non-negative integer labels; found a negative value.")
        if randomize:
            self.randomize(labels)
        if self._draw is None:
            raise RuntimeError("no contrast drawn yet: call the transform with randomize=True first.")
        draw = self._draw
        if int(labels.max()) >= len(draw["means"]):
            raise ValueError("randomize=False needs a label map with the labels of the last draw.")
        generator = torch.Generator().manual_seed(draw["seed"])
        spatial = labels.shape[1:]
        means = torch.from_numpy(draw["means"])[labels]
        texture = torch.from_numpy(draw["stds"])[labels]
        image = means + texture * torch.randn(labels.shape, generator=generator)
        if self.bias_std:
            coarse = torch.from_numpy(draw["bias"])[None, None]
            mode = "trilinear" if len(spatial) == 3 else "bilinear"
            field = F.interpolate(coarse, size=tuple(spatial), mode=mode, align_corners=True)[0]
            image = image * torch.exp(field)
        if max(draw["sigma"]) > 0:
            image = GaussianSmooth(sigma=[max(s, 1e-3) for s in draw["sigma"]])(image)
        if draw["noise_std"]:
            image = image + draw["noise_std"] * torch.randn(labels.shape, generator=generator)
        image = image.clamp_min(0)
        flat = image.reshape(-1)
        scale = torch.kthvalue(flat, max(1, int(round(0.995 * flat.numel())))).values.clamp_min(1e-6)
        image = (image / scale).clamp(0, 1)
        if draw["gamma"] != 1.0:
            image = AdjustContrast(draw["gamma"])(image)
        image = image.float()
        if isinstance(img, MetaTensor) and get_track_meta():
            return MetaTensor(image, meta=img.meta, applied_operations=img.applied_operations)
        if isinstance(img, np.ndarray):
            return image.numpy()
        return convert_to_dst_type(image, img, dtype=torch.float32)[0]


class RandLabelMapSynthesisd(RandArrayWrapperd):
    """
    Dictionary version of :py:class:`RandLabelMapSynthesis`: the label map at ``keys`` becomes a synthetic
    image at ``image_key`` (the label map is kept). One draw is shared by all keys; with several keys, give
    ``image_key`` as a sequence of the same length.

    With ``keep_unlabelled``, the voxels of label 0 keep the image already at ``image_key``: for label maps that
    cover part of a scan only (DLMUSE labels the brain, not the rest of the head), the anatomy is repainted and
    the scan around it stays real. Without it such a map paints the whole head outside the brain black, and a
    network trained on those images takes every bright voxel of a real head for brain. Both leave a seam that
    marks the labelled region: black around it, or real scan texture meeting synthetic texture exactly on its
    boundary. With ``unlabelled_classes`` (SynthSeg's extra-cerebral labels, which it finds by clustering the
    intensities of the head around the brain), the voxels of label 0 are painted too, as that many extra labels
    made by cutting the range of the scan's intensities there into equal bins: the whole image is synthetic and
    the scan's tissues around the label map keep their layout, each with a contrast of its own.

    Args:
        keys: keys of the label maps.
        image_key: key(s) of the synthesised images.
        allow_missing_keys: skip a missing key instead of raising.
        keep_unlabelled: keep the existing image where the label map is 0.
        unlabelled_classes: paint the voxels of label 0 as this many extra labels, binned by the intensity of the
            existing image at ``image_key`` (0: label 0 is background, dark, or kept with ``keep_unlabelled``).
        kwargs: arguments of :py:class:`RandLabelMapSynthesis`.
    """

    backend = RandLabelMapSynthesis.backend

    def __init__(
        self,
        keys: KeysCollection,
        image_key: str | Sequence[str] = "image",
        allow_missing_keys: bool = False,
        keep_unlabelled: bool = False,
        unlabelled_classes: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(keys, RandLabelMapSynthesis(**kwargs), allow_missing_keys)
        if not isinstance(unlabelled_classes, (int, np.integer)) or unlabelled_classes < 0:
            raise ValueError(f"unlabelled_classes must be an int >= 0, got {unlabelled_classes!r}.")
        if keep_unlabelled and unlabelled_classes:
            raise ValueError("keep_unlabelled keeps the scan where the label map is 0 and unlabelled_classes paints "
                             "it: choose one.")
        self.keep_unlabelled = bool(keep_unlabelled)
        self.unlabelled_classes = int(unlabelled_classes)
        self.image_keys = [image_key] if isinstance(image_key, str) else list(image_key)
        if len(self.image_keys) != len(self.keys):
            raise ValueError(f"give one image_key per label-map key: {len(self.keys)} keys, image_key "
                             f"{image_key!r}.")
        self.synthesis = self.array_transform

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        first = True
        for key, image_key in self.key_iterator(d, self.image_keys):
            if (self.keep_unlabelled or self.unlabelled_classes) and image_key not in d:
                option = "keep_unlabelled" if self.keep_unlabelled else "unlabelled_classes"
                raise ValueError(f"{option} needs the scan at {image_key!r} where {key!r} is 0.")
            labels = d[key]
            if self.unlabelled_classes:
                labels = self._with_unlabelled_classes(labels, d[image_key])
            synthetic = self.synthesis(labels, randomize=first)
            if self.keep_unlabelled:
                labelled = convert_to_dst_type(convert_to_tensor(d[key], track_meta=False) > 0, synthetic)[0]
                synthetic = synthetic * labelled + convert_to_dst_type(d[image_key], synthetic)[0] * (1 - labelled)
            d[image_key] = synthetic
            first = False
        return d

    def _with_unlabelled_classes(self, labels: NdarrayOrTensor, scan: NdarrayOrTensor) -> NdarrayOrTensor:
        """The label map with its labels moved up by ``unlabelled_classes`` and its 0 voxels labelled 1, 2, ... by
        equal bins of the scan's intensity range over them, the scan smoothed first (1 voxel) so that its noise
        does not scatter the bins into speckle."""
        label_tensor = convert_to_tensor(labels, track_meta=False).long()
        intensities = convert_to_tensor(scan, track_meta=False).float()
        if intensities.shape != label_tensor.shape:
            raise ValueError(f"unlabelled_classes needs the scan and the label map on one grid, got shapes "
                             f"{tuple(intensities.shape)} and {tuple(label_tensor.shape)}.")
        # divided by the smoothed ones: GaussianSmooth pads with zeros, which would darken a rim at the crop's edges
        smooth = GaussianSmooth(sigma=1.0)
        intensities = smooth(intensities) / smooth(torch.ones_like(intensities))
        unlabelled = label_tensor == 0
        combined = label_tensor + self.unlabelled_classes
        if unlabelled.any():
            values = intensities[unlabelled]
            low, high = values.min(), values.max()
            scaled = (intensities - low) / (high - low).clamp_min(1e-6)
            bins = (scaled * self.unlabelled_classes).long().clamp(0, self.unlabelled_classes - 1) + 1
            combined = torch.where(unlabelled, bins, combined)
        return convert_to_dst_type(combined, labels, dtype=torch.int64)[0]  # labels + classes may not fit uint8

RandLabelMapSynthesisD = RandLabelMapSynthesisDict = RandLabelMapSynthesisd
