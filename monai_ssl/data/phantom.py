"""A deterministic, anatomy-like 3D head phantom with labels, for demos and tests only.

It is not a model of real anatomy and is not meant for evaluating methods: it gives the demo and the test suite
volumes with the rough structure of a head MRI (scalp, skull, brain with grey and white matter, ventricles and a
lesion) without shipping any patient data.

Labels: 0 background (and scalp/skull), 1 brain parenchyma, 2 ventricles, 3 lesion.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import nibabel as nib
import numpy as np

from monai_ssl.utils import atomic_path, atomic_write_text

__all__ = ["PHANTOM_LABEL_NAMES", "make_phantom", "write_phantom_dataset"]

PHANTOM_LABEL_NAMES = {"background": 0, "brain": 1, "ventricles": 2, "lesion": 3}

# mean intensity of each tissue in the two contrasts (T1-like, FLAIR-like)
_TISSUE_INTENSITY = {
    "scalp": (0.55, 0.45),
    "skull": (0.12, 0.08),
    "grey": (0.55, 0.60),
    "white": (0.80, 0.45),
    "csf": (0.15, 0.10),
    "lesion": (0.35, 0.95),
}


def _smooth_field(rng: np.random.Generator, coords: Sequence[np.ndarray], amplitude: float) -> np.ndarray:
    """A random low-frequency field: a sum of a few 3D sinusoids."""
    field = np.zeros(coords[0].shape, dtype=np.float32)
    for _ in range(4):
        frequency = rng.uniform(0.5, 2.0, size=3)
        phase = rng.uniform(0, 2 * np.pi)
        field += np.sin(sum(f * c for f, c in zip(frequency, coords)) * np.pi + phase).astype(np.float32)
    return amplitude * field / 4


def make_phantom(
    seed: int, shape: Sequence[int] = (64, 64, 64), channels: int = 1, noise: float = 0.03
) -> tuple[np.ndarray, np.ndarray]:
    """Make one phantom subject.

    Args:
        seed: the subject; the same seed gives the same subject.
        shape: spatial shape.
        channels: 1 (T1-like) or 2 (T1-like and FLAIR-like, where the lesion is bright).
        noise: standard deviation of the Gaussian noise, relative to white matter.

    Returns:
        ``(image, label)``: float32 ``(channels, *shape)`` and uint8 ``(1, *shape)``.
    """
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, got {channels}.")
    if len(shape) != 3 or min(shape) < 16:
        raise ValueError(f"shape must be 3 sizes of at least 16, got {tuple(shape)}.")
    rng = np.random.default_rng(seed)
    coords = np.meshgrid(*[np.linspace(-1, 1, s, dtype=np.float32) for s in shape], indexing="ij")
    head_radii = np.array([0.80, 0.88, 0.78]) * rng.uniform(0.92, 1.05, size=3)
    wobble = 1 + _smooth_field(rng, coords, 0.04)

    def ellipsoid(centre, radii) -> np.ndarray:
        return sum(((c - o) / r) ** 2 for c, o, r in zip(coords, centre, radii)) * wobble

    head = ellipsoid((0, 0, 0), head_radii) <= 1
    skull_outer = ellipsoid((0, 0, 0), head_radii * 0.93) <= 1
    brain = ellipsoid((0, 0, 0), head_radii * 0.85) <= 1
    white = ellipsoid((0, 0, 0), head_radii * 0.62) <= 1
    ventricle_size = head_radii * np.array([0.10, 0.22, 0.14]) * rng.uniform(0.8, 1.3)
    offset = 0.12 * head_radii[0]
    ventricles = (ellipsoid((-offset, 0.05, 0.08), ventricle_size) <= 1) | (
        ellipsoid((offset, 0.05, 0.08), ventricle_size) <= 1
    )
    lesion_centre = rng.uniform(-0.4, 0.4, size=3) * head_radii
    lesion = (ellipsoid(lesion_centre, np.full(3, rng.uniform(0.08, 0.16))) <= 1) & brain & ~ventricles

    label = np.zeros(shape, dtype=np.uint8)
    label[brain] = PHANTOM_LABEL_NAMES["brain"]
    label[ventricles & brain] = PHANTOM_LABEL_NAMES["ventricles"]
    label[lesion] = PHANTOM_LABEL_NAMES["lesion"]

    tissues = [
        ("scalp", head & ~skull_outer),
        ("skull", skull_outer & ~brain),
        ("grey", brain & ~white),
        ("white", white),
        ("csf", ventricles & brain),
        ("lesion", lesion),
    ]
    bias = np.exp(_smooth_field(rng, coords, 0.15))
    image = np.zeros((channels, *shape), dtype=np.float32)
    for channel in range(channels):
        for tissue, region in tissues:
            mean = _TISSUE_INTENSITY[tissue][channel] * rng.uniform(0.93, 1.07)
            image[channel][region] = mean
        image[channel] = image[channel] * bias + rng.normal(0, noise, size=tuple(shape)).astype(np.float32) * head
    return image, label[None]


def write_phantom_dataset(
    output_dir: str,
    num_subjects: int = 4,
    shape: Sequence[int] = (64, 64, 64),
    channels: int = 1,
    spacing: float = 2.0,
    seed: int = 0,
) -> list[dict[str, str]]:
    """Write phantom subjects as NIfTI files and a MONAI datalist (``datalist.json``) into ``output_dir``.

    Returns:
        the datalist entries, ``[{"image": path, "label": path}, ...]``.
    """
    os.makedirs(output_dir, exist_ok=True)
    affine = np.diag([spacing, spacing, spacing, 1.0])
    entries = []
    for index in range(num_subjects):
        image_path = os.path.join(output_dir, f"phantom_{index:03d}_image.nii.gz")
        label_path = os.path.join(output_dir, f"phantom_{index:03d}_label.nii.gz")
        image, label = make_phantom(seed + index, shape, channels)
        image_on_disk = np.moveaxis(image, 0, -1)  # channel last, as NIfTI readers expect
        if channels == 1:
            image_on_disk = image_on_disk[..., 0]
        for path, array in ((image_path, image_on_disk), (label_path, label[0])):
            # a unique temporary name, then a rename: a crash never leaves a half-written volume under the final
            # name, and concurrent writers (one per DDP rank) never share a temporary file
            with atomic_path(path, suffix=".nii.gz") as temporary:
                nib.save(nib.Nifti1Image(array, affine), temporary)
        entries.append({"image": image_path, "label": label_path})
    atomic_write_text(os.path.join(output_dir, "datalist.json"), json.dumps({"training": entries}, indent=2))
    return entries
