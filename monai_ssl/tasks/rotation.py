"""Slice rotation task: predict the plane and multiple of 90 degrees a volume was rotated by."""

from __future__ import annotations

from torch import nn

from monai_ssl.networks.adapters import EncoderAdapter
from monai_ssl.tasks.base import ClassificationTask
from monai_ssl.tasks.registry import register_task
from monai_ssl.transforms import RandSliceRotationd

__all__ = ["RotationTask"]


@register_task
class RotationTask(ClassificationTask):
    """Slice rotation (Gidaris et al. 2018; 10 classes in 3D as in Taleb et al. 2020).

    Args:
        source_key: key of the volume.
        kwargs: arguments of :py:class:`~monai_ssl.transforms.RandSliceRotationd` (``planes``, ``non_square``).
            The default is the 10-class 3D task, ``planes=((0, 1), (0, 2), (1, 2))``.
    """

    name = "rotation"

    def __init__(self, source_key: str = "image", **kwargs) -> None:
        kwargs.setdefault("planes", [[0, 1], [0, 2], [1, 2]])
        super().__init__(source_key, **kwargs)
        self.task_transform = RandSliceRotationd(keys=self.input_key, label_key=self.label_key, **kwargs)
        self.num_classes = self.task_transform.num_classes
        self.loss = nn.CrossEntropyLoss()

    def check_setup(self, roi_size: tuple[int, ...], adapter: EncoderAdapter) -> None:
        adapter.check_input_size(self.task_transform.rotation.square_shape(roi_size))
