"""Pretext task registry: ``list_tasks()``, ``create_task(name, **kwargs)``, ``register_task``.

Adding a task means adding one module with a :py:class:`PretextTask` subclass decorated with
``@register_task``, and importing it here.
"""

from monai_ssl.tasks.base import ClassificationTask, DenseRestorationTask, PretextTask, SiameseClassificationTask
from monai_ssl.tasks.registry import create_task, list_tasks, register_task, task_class

# registration order is the order of list_tasks()
from monai_ssl.tasks.jigsaw import JigsawTask  # noqa: E402  isort: skip
from monai_ssl.tasks.rotation import RotationTask  # noqa: E402  isort: skip
from monai_ssl.tasks.colorization import ColorizationTask  # noqa: E402  isort: skip
from monai_ssl.tasks.relative_position import RelativePositionTask  # noqa: E402  isort: skip
from monai_ssl.tasks.restoration import RestorationTask  # noqa: E402  isort: skip
from monai_ssl.tasks.contrastive import ContrastiveTask, TwoViewTask  # noqa: E402  isort: skip
from monai_ssl.tasks.exemplar import ExemplarTask  # noqa: E402  isort: skip
from monai_ssl.tasks.cpc import CPCTask  # noqa: E402  isort: skip
from monai_ssl.tasks.masked_volume import MaskedVolumeTask  # noqa: E402  isort: skip

__all__ = [
    "CPCTask",
    "ClassificationTask",
    "ColorizationTask",
    "ContrastiveTask",
    "DenseRestorationTask",
    "ExemplarTask",
    "JigsawTask",
    "MaskedVolumeTask",
    "PretextTask",
    "RelativePositionTask",
    "RestorationTask",
    "RotationTask",
    "SiameseClassificationTask",
    "TwoViewTask",
    "create_task",
    "list_tasks",
    "register_task",
    "task_class",
]
