"""SynthSeg-style synthesis of T1-like images from anatomical label maps, and brain-region label grouping.

Billot et al., "SynthSeg: Segmentation of brain MRI scans of any contrast and resolution without retraining",
Medical Image Analysis 2023: each label gets a Gaussian intensity, then a smooth bias field, blur (a random
resolution) and noise. Here the means follow a T1 contrast (white matter brightest, CSF darkest) with random
per-subject perturbations, so the images look like T1 scans of varying quality; they are synthetic, not MRI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

__all__ = ["BRAIN_REGIONS", "group_labels", "synthesize_t1"]

# FreeSurfer label ids grouped into the regions of the label-efficiency benchmark (left and right together)
BRAIN_REGIONS: dict[str, Sequence[int]] = {
    "cortex": (3, 42),
    "white_matter": (2, 41),
    "lateral_ventricles": (4, 5, 43, 44),
    "deep_grey": (10, 11, 12, 13, 17, 18, 26, 28, 49, 50, 51, 52, 53, 54, 58, 60),
    "cerebellum": (7, 8, 46, 47),
    "brainstem": (16,),
}

# T1-like mean intensities (0..255) per FreeSurfer id; other ids (extra-cerebral tissue) draw a random mean
_T1_MEANS = {2: 110, 41: 110, 3: 70, 42: 70, 4: 25, 5: 25, 43: 25, 44: 25, 14: 25, 15: 25, 24: 20,
             7: 105, 46: 105, 8: 72, 47: 72, 10: 85, 49: 85, 11: 78, 50: 78, 12: 80, 51: 80, 13: 90, 52: 90,
             17: 72, 53: 72, 18: 75, 54: 75, 26: 80, 58: 80, 28: 95, 60: 95, 16: 100, 30: 60, 62: 60,
             31: 50, 63: 50, 0: 0}


def group_labels(label_map: np.ndarray, regions: Mapping[str, Sequence[int]] = BRAIN_REGIONS) -> np.ndarray:
    """Map FreeSurfer ids to region indices 1..len(regions) (in ``regions`` order); everything else is 0."""
    lookup = np.zeros(int(label_map.max()) + 1, dtype=np.uint8)
    for index, ids in enumerate(regions.values(), start=1):
        for label in ids:
            if label < len(lookup):
                lookup[label] = index
    return lookup[label_map.astype(np.int64)]


def synthesize_t1(label_map: np.ndarray, seed: int, spacing: float = 1.0) -> np.ndarray:
    """A T1-like float32 image in [0, 1] from an integer label map, deterministic for ``seed``.

    Args:
        label_map: FreeSurfer ids, 3D.
        seed: the subject's draw of intensities, bias field, blur and noise.
        spacing: voxel size of ``label_map`` in mm (the blur is in mm).
    """
    rng = np.random.default_rng(seed)
    labels = label_map.astype(np.int64)
    ids = np.unique(labels)
    means = np.zeros(int(ids.max()) + 1, dtype=np.float32)
    stds = np.zeros_like(means)
    for label in ids:
        base = _T1_MEANS.get(int(label), rng.uniform(10, 150))
        means[label] = 0.0 if label == 0 else max(0.0, base + rng.normal(0, 8))
        stds[label] = 0.0 if label == 0 else rng.uniform(2, 8)
    image = means[labels] + stds[labels] * rng.standard_normal(labels.shape).astype(np.float32)
    # smooth multiplicative bias field: a coarse random grid, upsampled
    coarse = rng.normal(0, 0.15, size=(4, 4, 4))
    bias = ndimage.zoom(coarse, [s / 4 for s in labels.shape], order=3)[tuple(slice(0, s) for s in labels.shape)]
    image *= np.exp(bias).astype(np.float32)
    # a random acquisition resolution between 1 and 3 mm, as blur
    sigma_mm = rng.uniform(0.4, 1.2, size=3)
    image = ndimage.gaussian_filter(image, sigma=sigma_mm / spacing)
    image += rng.normal(0, 2.0, size=image.shape).astype(np.float32)
    image = np.clip(image, 0, None)
    return (image / max(float(np.percentile(image, 99.9)), 1e-6)).clip(0, 1).astype(np.float32)
