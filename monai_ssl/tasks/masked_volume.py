"""Masked-volume modelling task (SimMIM-style): reconstruct the cubes hidden from a volume."""

from __future__ import annotations

import math

import torch

from monai_ssl.networks.adapters import EncoderAdapter
from monai_ssl.tasks.base import Batch, DenseRestorationTask
from monai_ssl.tasks.registry import register_task
from monai_ssl.transforms import RandVolumeMaskingd

__all__ = ["MaskedVolumeTask"]


@register_task
class MaskedVolumeTask(DenseRestorationTask):
    """SimMIM (Xie et al., CVPR 2022) for a 3D convolutional network: most cubes of a regular grid are masked by
    :py:class:`~monai_ssl.transforms.RandVolumeMaskingd`, the volume goes through the whole network, and the loss
    compares its output with the original on the masked voxels only. The held-out score is the squared error there
    as a fraction of the masked input's (the fill value), so 1 is filling the cubes with it and 0 is a perfect
    reconstruction.

    Like restoration it trains the decoder too, and the segmentation bundle transfers the whole network after it.

    Args:
        source_key: key of the volume (intensities in [0, 1], as the bundles' preprocessing gives).
        loss: ``"l1"`` (SimMIM) or ``"mse"``.
        kwargs: arguments of :py:class:`~monai_ssl.transforms.RandVolumeMaskingd` (``mask_ratio``, ``cube_size``,
            ``fill_value``).
    """

    name = "masked_volume"

    def __init__(self, source_key: str = "image", loss: str = "l1", **kwargs) -> None:
        super().__init__(source_key, loss=loss, **kwargs)
        self.mask_key = f"{self.name}_mask"
        self.task_transform = RandVolumeMaskingd(keys=self.input_key, target_key=self.label_key,
                                                 mask_key=self.mask_key, **kwargs)

    @property
    def batch_keys(self) -> tuple[str, ...]:
        return self.input_key, self.label_key, self.mask_key

    def check_setup(self, roi_size: tuple[int, ...], adapter: EncoderAdapter) -> None:
        super().check_setup(roi_size, adapter)
        masking = self.task_transform.masking
        if math.prod(masking.grid_shape(roi_size)) < 2:
            raise ValueError(f"masked_volume's cube_size {list(masking.cube_size)} covers the whole roi_size "
                             f"{list(roi_size)}; use a smaller cube_size (SimMIM-style grids hold many cubes).")

    def compute_loss(self, prediction: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.loss(prediction, batch[self.label_key], batch[self.mask_key])

    def score_mask(self, batch: Batch) -> torch.Tensor:
        return batch[self.mask_key]
