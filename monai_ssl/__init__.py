"""monai-ssl: self-supervised 3D pretext tasks and pretraining for MONAI."""

__version__ = "0.1.0"

from monai_ssl.transforms import *  # noqa: F401,F403
from monai_ssl.transforms import __all__ as _transforms_all

__all__ = ["__version__", *_transforms_all]
