"""Adapters expose the encoder of a MONAI segmentation network without copying it.

An adapter holds a reference to a network *instance*; the pretext model trains that instance's own parameters,
so ``network.state_dict()`` after pretraining is the pretrained network. Each adapter states its encoder
boundary as a rule on state-dict keys (:py:meth:`EncoderAdapter.is_encoder_key`), which
:func:`monai_ssl.load_pretrained` uses to copy the encoder alone.

Adding a network takes one small class::

    @register_adapter(SegResNet)
    class SegResNetAdapter(EncoderAdapter):
        def encode(self, x): ...              # multi-scale features, deepest last
        def is_encoder_key(self, key): ...    # the encoder boundary
        def deepest_shape(self, shape): ...   # spatial shape at the bottom of the encoder
        @property
        def feature_channels(self): ...       # channels of the deepest features
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Sequence

import torch
from monai.networks.layers import SkipConnection
from monai.networks.nets import BasicUNet, UNet
from monai.utils import ensure_tuple_rep
from torch import nn

__all__ = ["EncoderAdapter", "UNetAdapter", "BasicUNetAdapter", "MIN_DEEPEST_SIZE", "register_adapter", "get_adapter",
           "list_adapters"]

#: voxels per axis that an input must keep at the bottom of the encoder (:py:meth:`EncoderAdapter.check_input_size`)
MIN_DEEPEST_SIZE = 3

_ADAPTERS: dict[type[nn.Module], type[EncoderAdapter]] = {}


def register_adapter(network_class: type[nn.Module]) -> Callable[[type[EncoderAdapter]], type[EncoderAdapter]]:
    """Class decorator registering an adapter for ``network_class`` (and its subclasses)."""

    def register(adapter_class: type[EncoderAdapter]) -> type[EncoderAdapter]:
        _ADAPTERS[network_class] = adapter_class
        return adapter_class

    return register


def list_adapters() -> list[str]:
    """Names of the network classes that have an adapter."""
    return [cls.__name__ for cls in _ADAPTERS]


def get_adapter(network: nn.Module) -> EncoderAdapter:
    """The adapter of ``network``, chosen by its class (the nearest registered base class wins)."""
    for cls in type(network).__mro__:
        if cls in _ADAPTERS:
            return _ADAPTERS[cls](network)
    raise TypeError(
        f"no encoder adapter for {type(network).__name__}; supported: {', '.join(list_adapters())}. "
        "Add one with @monai_ssl.networks.register_adapter(YourNetwork)."
    )


def _last_conv(module: nn.Module, first: bool = False) -> nn.modules.conv._ConvNd:
    convs = [m for m in module.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    if not convs:
        raise ValueError(f"{type(module).__name__} has no convolution.")
    return convs[0] if first else convs[-1]


class EncoderAdapter:
    """Base class: the encoder view of one network instance.

    Args:
        network: the network instance; it is referenced, never copied.
    """

    def __init__(self, network: nn.Module) -> None:
        self.network = network

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder features of ``x`` from the shallowest to the deepest (bottleneck) level."""
        raise NotImplementedError

    def is_encoder_key(self, key: str) -> bool:
        """Whether a ``network.state_dict()`` key belongs to the encoder."""
        raise NotImplementedError

    @property
    def feature_channels(self) -> int:
        """Channels of the deepest encoder features."""
        raise NotImplementedError

    def deepest_shape(self, spatial_shape: Sequence[int]) -> tuple[int, ...]:
        """Spatial shape of the deepest encoder features for an input of ``spatial_shape``."""
        raise NotImplementedError

    def check_input_size(self, spatial_shape: Sequence[int]) -> None:
        """Raise a ``ValueError`` if an input shrinks below :data:`MIN_DEEPEST_SIZE` voxels on an axis at the bottom
        of the encoder, naming the smallest input that fits.

        Why 3: the 3x3x3 convolutions there see mostly zero padding on a 1- or 2-voxel axis, so the task learns
        little from such inputs; and on 2-voxel axes, PyTorch 2.13's bf16 CPU convolution returns non-finite weight
        gradients intermittently (4-7 % of calls in one process, none in another), the cause of the skipped steps
        of small pretraining settings.
        """
        deepest = self.deepest_shape(spatial_shape)
        if min(deepest) < MIN_DEEPEST_SIZE:
            smallest = next(size for size in range(1, 2**12)
                            if min(self.deepest_shape([size] * len(deepest))) >= MIN_DEEPEST_SIZE)
            raise ValueError(
                f"inputs of spatial size {tuple(spatial_shape)} shrink to {deepest} at the bottom of this "
                f"{type(self.network).__name__}'s encoder, under {MIN_DEEPEST_SIZE} voxels per axis; use patches or "
                f"cubes of at least {smallest} voxels per axis (or a larger roi_size), or a network with fewer "
                "downsampling levels."
            )

    @property
    def downsampling(self) -> int:
        """The encoder's total downsampling factor: spatial sizes that are multiples of it pass the network and
        come back at the same size."""
        probe = 2**12
        return probe // min(self.deepest_shape([probe] * self.spatial_dims))

    @property
    def in_channels(self) -> int:
        return _last_conv(self.network, first=True).in_channels

    @property
    def out_channels(self) -> int:
        return _last_conv(self.network).out_channels

    @property
    def spatial_dims(self) -> int:
        return len(_last_conv(self.network, first=True).kernel_size)

    def encoder_parameters(self) -> list[nn.Parameter]:
        named = dict(self.network.named_parameters())
        return [p for k, p in named.items() if self.is_encoder_key(k)]

    def decoder_parameters(self) -> list[nn.Parameter]:
        named = dict(self.network.named_parameters())
        return [p for k, p in named.items() if not self.is_encoder_key(k)]

    def network_args(self) -> dict:
        """Best-effort constructor arguments of the network, read from same-named attributes.

        Only JSON-serialisable values are kept; pass ``network_args`` to the pretext model where a network does
        not keep its arguments.
        """
        args = {}
        for name in inspect.signature(type(self.network).__init__).parameters:
            if name != "self" and hasattr(self.network, name):
                value = getattr(self.network, name)
                try:
                    args[name] = json.loads(json.dumps(value))
                except TypeError:
                    continue
        return args


@register_adapter(UNet)
class UNetAdapter(EncoderAdapter):
    """MONAI :py:class:`~monai.networks.nets.UNet`.

    The UNet nests ``Sequential(down, SkipConnection(subblock), up)`` blocks. The encoder is every ``down`` layer
    plus the bottom (bottleneck) layer; the decoder is every ``up`` layer, the final one included.
    """

    # keys below `model.` followed by any number of `1.submodule.`: a digit then names the down (0) or up (2)
    # layer of that level; anything else is the bottom layer
    _LEVEL = re.compile(r"^model\.(?:1\.submodule\.)*(?P<rest>.*)$")

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        block: nn.Module = self.network.model
        while isinstance(block, nn.Sequential) and len(block) == 3 and isinstance(block[1], SkipConnection):
            x = block[0](x)
            features.append(x)
            block = block[1].submodule
        features.append(block(x))  # the bottom layer
        return features

    def is_encoder_key(self, key: str) -> bool:
        match = self._LEVEL.match(key)
        if match is None:
            return False
        rest = match.group("rest")
        return not rest.startswith("2.")

    @property
    def feature_channels(self) -> int:
        return int(self.network.channels[-1])

    def deepest_shape(self, spatial_shape: Sequence[int]) -> tuple[int, ...]:
        shape = list(spatial_shape)
        for stride in self.network.strides:
            strides = ensure_tuple_rep(stride, len(shape))
            shape = [-(-n // s) for n, s in zip(shape, strides)]  # padded strided convolutions round up
        return tuple(shape)

    def network_args(self) -> dict:
        args = super().network_args()
        args["spatial_dims"] = int(self.network.dimensions)  # UNet stores spatial_dims as `dimensions`
        return args


@register_adapter(BasicUNet)
class BasicUNetAdapter(EncoderAdapter):
    """MONAI :py:class:`~monai.networks.nets.BasicUNet`.

    The encoder is ``conv_0`` and ``down_1`` to ``down_4``; the decoder is ``upcat_4`` to ``upcat_1`` and
    ``final_conv``.
    """

    _ENCODER = ("conv_0", "down_1", "down_2", "down_3", "down_4")

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for name in self._ENCODER:
            x = getattr(self.network, name)(x)
            features.append(x)
        return features

    def is_encoder_key(self, key: str) -> bool:
        return key.split(".", 1)[0] in self._ENCODER

    @property
    def feature_channels(self) -> int:
        return _last_conv(self.network.down_4).out_channels

    def deepest_shape(self, spatial_shape: Sequence[int]) -> tuple[int, ...]:
        return tuple(n // 16 for n in spatial_shape)  # four 2x max-poolings

    def network_args(self) -> dict:
        # BasicUNet keeps none of its arguments; these are read off its layers
        features = [_last_conv(getattr(self.network, name)).out_channels for name in self._ENCODER]
        features.append(_last_conv(self.network.upcat_1).out_channels)
        return {
            "spatial_dims": self.spatial_dims,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "features": features,
        }
