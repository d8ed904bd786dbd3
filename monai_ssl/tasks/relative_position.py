"""Relative patch position task: predict where a neighbouring patch sits relative to a centre patch."""

from __future__ import annotations

from torch import nn

from monai_ssl.networks.adapters import EncoderAdapter
from monai_ssl.tasks.base import SiameseClassificationTask
from monai_ssl.tasks.registry import register_task
from monai_ssl.transforms import RandRelativePatchPositiond

__all__ = ["RelativePositionTask"]


@register_task
class RelativePositionTask(SiameseClassificationTask):
    """Relative patch position (Doersch et al. 2015; 3D as in Taleb et al. 2020).

    Args:
        source_key: key of the volume.
        kwargs: arguments of :py:class:`~monai_ssl.transforms.RandRelativePatchPositiond` (``patch_size``,
            ``gap``, ``jitter``, ``neighbours``, ``foreground_threshold``, ``mask_key``, ``fit_all_neighbours``).
            The task's defaults, 28^3 patches 2 voxels apart with 2 voxels of jitter, placed where the drawn
            neighbour fits, fit the 64^3 crops of the pretraining bundle. Patches that fit all 26 neighbours
            (16^3 in 64^3) were learnt poorly: 0.12 held-out accuracy on synthetic scans after 3,000 iterations
            of all four tasks, against 0.39 for 28^3 after 1,000 iterations of this task alone (see the
            pretraining bundle's docs).
    """

    name = "relative_position"

    def __init__(self, source_key: str = "image", **kwargs) -> None:
        kwargs = {"patch_size": [28, 28, 28], "gap": 2, "jitter": 2, "fit_all_neighbours": False, **kwargs}
        super().__init__(source_key, **kwargs)
        self.task_transform = RandRelativePatchPositiond(keys=self.input_key, label_key=self.label_key, **kwargs)
        self.num_classes = self.task_transform.num_classes
        self.num_patches = 2
        self.num_outputs = self.num_classes
        self.loss = nn.CrossEntropyLoss()

    def check_setup(self, roi_size: tuple[int, ...], adapter: EncoderAdapter) -> None:
        self.task_transform.patches.valid_centre_range(roi_size)
        adapter.check_input_size(self.task_transform.patches.patch_size)
