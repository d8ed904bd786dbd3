"""Restoration task (Models Genesis): restore the original volume from a shuffled, remapped and painted copy."""

from __future__ import annotations

from monai_ssl.tasks.base import DenseRestorationTask
from monai_ssl.tasks.registry import register_task
from monai_ssl.transforms import RandRestorationDegradationd

__all__ = ["RestorationTask"]


@register_task
class RestorationTask(DenseRestorationTask):
    """Models Genesis (Zhou et al., MedIA 2021): the volume degraded by
    :py:class:`~monai_ssl.transforms.RandRestorationDegradationd` (local voxel shuffling, non-linear remap, in- or
    out-painting) goes through the whole network, which restores the original.

    It trains the decoder as well as the encoder, so a segmentation network gains most from it when the whole
    network is transferred, as Models Genesis does: ``load_pretrained(..., encoder_only=None)`` (the segmentation
    bundle's default) does so for a checkpoint whose tasks all train the decoder.

    Args:
        source_key: key of the volume (intensities in [0, 1], as the bundles' preprocessing gives).
        loss: ``"mse"`` (Models Genesis) or ``"l1"``.
        kwargs: arguments of :py:class:`~monai_ssl.transforms.RandRestorationDegradationd`.
    """

    name = "restoration"

    def __init__(self, source_key: str = "image", loss: str = "mse", **kwargs) -> None:
        super().__init__(source_key, loss=loss, **kwargs)
        self.task_transform = RandRestorationDegradationd(keys=self.input_key, target_key=self.label_key, **kwargs)
