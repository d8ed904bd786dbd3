"""monai-ssl: self-supervised 3D pretext tasks and pretraining for MONAI."""

from monai_ssl.version import __version__

from monai_ssl.transforms import *  # noqa: E402,F401,F403
from monai_ssl.transforms import __all__ as _transforms_all  # noqa: E402
from monai_ssl.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from monai_ssl.pretext_model import PretextModel  # noqa: E402
from monai_ssl.tasks import create_task, list_tasks, register_task  # noqa: E402
from monai_ssl.engine import AtomicCheckpointSaver, PretextTrainer, pretext_save_dict  # noqa: E402
from monai_ssl.semi_supervised import MeanTeacher  # noqa: E402
from monai_ssl.transfer import EncoderFreezeHandler, LoadReport, encoder_param_groups, load_pretrained  # noqa: E402

__all__ = [
    "__version__",
    *_transforms_all,
    "AtomicCheckpointSaver",
    "EncoderFreezeHandler",
    "LoadReport",
    "MeanTeacher",
    "PretextModel",
    "PretextTrainer",
    "create_task",
    "encoder_param_groups",
    "list_tasks",
    "load_checkpoint",
    "load_pretrained",
    "pretext_save_dict",
    "register_task",
    "save_checkpoint",
]
