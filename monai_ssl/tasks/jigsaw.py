"""Volume jigsaw task: predict the permutation of a grid of shuffled cubes (and, optionally, their flips)."""

from __future__ import annotations

import torch

from monai_ssl.losses import JigsawLoss
from monai_ssl.networks.adapters import EncoderAdapter
from monai_ssl.tasks.base import Batch, SiameseClassificationTask
from monai_ssl.tasks.registry import register_task
from monai_ssl.transforms import RandVolumeJigsawd

__all__ = ["JigsawTask"]


@register_task
class JigsawTask(SiameseClassificationTask):
    """Volume jigsaw (Taleb et al. 2020), with a max-Hamming permutation set and optional Rubik's-cube flips.

    Args:
        source_key: key of the volume.
        kwargs: arguments of :py:class:`~monai_ssl.transforms.RandVolumeJigsawd` (``grid``,
            ``num_permutations``, ``gap``, ``jitter``, ``flip_axes``, ...) and ``flag_weight``, the weight of the
            flip loss.
    """

    name = "jigsaw"

    def __init__(self, source_key: str = "image", flag_weight: float = 1.0, **kwargs) -> None:
        super().__init__(source_key, flag_weight=flag_weight, **kwargs)
        self.flip_key = f"{self.name}_flips"
        self.task_transform = RandVolumeJigsawd(
            keys=self.input_key, label_key=self.label_key, flip_label_key=self.flip_key, **kwargs
        )
        jigsaw = self.task_transform.jigsaw
        self.num_classes = jigsaw.num_classes
        self.num_patches = jigsaw.num_cubes
        num_flags = jigsaw.num_cubes * len(jigsaw.flip_axes)
        self.num_outputs = self.num_classes + num_flags
        self.loss = JigsawLoss(self.num_classes, num_flags, flag_weight)

    def check_setup(self, roi_size: tuple[int, ...], adapter: EncoderAdapter) -> None:
        grid = self.task_transform.jigsaw.grid
        if any(r % g for r, g in zip(roi_size, grid)):
            raise ValueError(f"roi_size {list(roi_size)} is not divisible by the jigsaw grid {list(grid)}; use a "
                             "roi_size whose sizes are multiples of the grid.")
        adapter.check_input_size(self.task_transform.jigsaw.cube_size(roi_size))

    def compute_loss(self, prediction: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.loss(prediction, batch[self.label_key], batch.get(self.flip_key))
