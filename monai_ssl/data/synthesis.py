"""SynthSeg-style synthesis of T1-like images from anatomical label maps, and brain-region label grouping.

Billot et al., "SynthSeg: Segmentation of brain MRI scans of any contrast and resolution without retraining",
Medical Image Analysis 2023: each label gets a Gaussian intensity, then a smooth bias field, blur (a random
resolution) and noise. Here the means follow a T1 contrast (white matter brightest, CSF darkest) with random
per-subject perturbations, so the images look like T1 scans of varying quality; they are synthetic, not MRI. The
generator is :class:`~monai_ssl.transforms.RandLabelMapSynthesis`, the one the pretraining pool uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from monai_ssl.transforms import RandLabelMapSynthesis

__all__ = ["BRAIN_REGIONS", "T1_CONTRAST", "group_labels", "synthesize_t1"]

# FreeSurfer label ids grouped into the regions of the label-efficiency benchmark (left and right together)
BRAIN_REGIONS: dict[str, Sequence[int]] = {
    "cortex": (3, 42),
    "white_matter": (2, 41),
    "lateral_ventricles": (4, 5, 43, 44),
    "deep_grey": (10, 11, 12, 13, 17, 18, 26, 28, 49, 50, 51, 52, 53, 54, 58, 60),
    "cerebellum": (7, 8, 46, 47),
    "brainstem": (16,),
}

# T1-like mean intensities per FreeSurfer id, white matter 0.73; other ids (extra-cerebral tissue) draw a random mean
_T1_MEANS_8BIT = {2: 110, 41: 110, 3: 70, 42: 70, 4: 25, 5: 25, 43: 25, 44: 25, 14: 25, 15: 25, 24: 20,
                  7: 105, 46: 105, 8: 72, 47: 72, 10: 85, 49: 85, 11: 78, 50: 78, 12: 80, 51: 80, 13: 90, 52: 90,
                  17: 72, 53: 72, 18: 75, 54: 75, 26: 80, 58: 80, 28: 95, 60: 95, 16: 100, 30: 60, 62: 60,
                  31: 50, 63: 50}
T1_CONTRAST: dict[int, float] = {label: mean / 150.0 for label, mean in _T1_MEANS_8BIT.items()}


def group_labels(label_map: np.ndarray, regions: Mapping[str, Sequence[int]] = BRAIN_REGIONS) -> np.ndarray:
    """Map FreeSurfer ids to region indices 1..len(regions) (in ``regions`` order); everything else is 0."""
    lookup = np.zeros(int(label_map.max()) + 1, dtype=np.uint8)
    for index, ids in enumerate(regions.values(), start=1):
        for label in ids:
            if label < len(lookup):
                lookup[label] = index
    return lookup[label_map.astype(np.int64)]


def synthesize_t1(label_map: np.ndarray, seed: int, spacing: float = 1.0) -> np.ndarray:
    """A T1-like float32 image in [0, 1] from an integer label map, deterministic for ``seed``: the pretraining
    pool's generator (:class:`~monai_ssl.transforms.RandLabelMapSynthesis`) with a T1 contrast prior
    (:data:`T1_CONTRAST`), mild texture, bias and noise, and a random acquisition resolution of 1 to 3 mm.

    Args:
        label_map: FreeSurfer ids, 3D.
        seed: the subject's draw of intensities, bias field, blur and noise.
        spacing: voxel size of ``label_map`` in mm (the blur is in mm).
    """
    synthesis = RandLabelMapSynthesis(
        mean_range=(0.07, 1.0), std_range=(0.013, 0.053), bias_std=0.15,
        blur_sigma_range=(0.4 / spacing, 1.2 / spacing), noise_std_range=(0.013, 0.013), gamma_std=0.0,
        contrast_prior=T1_CONTRAST, prior_std=0.053)
    synthesis.set_random_state(seed)
    return np.asarray(synthesis(label_map[None].astype(np.int64))[0], dtype=np.float32)
