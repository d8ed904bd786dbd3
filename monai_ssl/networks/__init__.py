"""Network adapters and task heads."""

from monai_ssl.networks.adapters import (
    MIN_DEEPEST_SIZE,
    BasicUNetAdapter,
    EncoderAdapter,
    UNetAdapter,
    get_adapter,
    list_adapters,
    register_adapter,
)
from monai_ssl.networks.heads import ClassificationHead, DenseHead, MLPHead, pool_features

__all__ = [
    "MIN_DEEPEST_SIZE",
    "BasicUNetAdapter",
    "ClassificationHead",
    "DenseHead",
    "EncoderAdapter",
    "MLPHead",
    "UNetAdapter",
    "get_adapter",
    "list_adapters",
    "pool_features",
    "register_adapter",
]
