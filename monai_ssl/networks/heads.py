"""Task heads. A head is a short declarative list of blocks, in the style of lightly's heads."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.layers import Conv
from torch import nn

__all__ = ["MLPHead", "ClassificationHead", "DenseHead", "pool_features"]


def pool_features(features: torch.Tensor) -> torch.Tensor:
    """Global average pooling of ``(B, F, *spatial)`` features to ``(B, F)``."""
    return features.flatten(2).mean(-1)


class MLPHead(nn.Module):
    """A stack of linear blocks.

    Args:
        blocks: ``(in_features, out_features, norm, activation)`` per block; ``norm`` and ``activation`` are
            modules or ``None``. A block with a norm has no linear bias (the norm has one).
    """

    def __init__(self, blocks: Sequence[tuple[int, int, nn.Module | None, nn.Module | None]]) -> None:
        super().__init__()
        if not blocks:
            raise ValueError("a head needs at least one block.")
        layers: list[nn.Module] = []
        for in_features, out_features, norm, activation in blocks:
            layers.append(nn.Linear(in_features, out_features, bias=norm is None))
            layers.extend(m for m in (norm, activation) if m is not None)
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class ClassificationHead(MLPHead):
    """Pooled encoder features (one or several patches, concatenated) to class logits.

    LayerNorm rather than BatchNorm: pretext batches on a CPU are often one or two volumes.

    Args:
        in_features: size of the (concatenated) pooled features.
        num_classes: number of logits.
        hidden_features: width of the hidden block.
    """

    def __init__(self, in_features: int, num_classes: int, hidden_features: int = 256) -> None:
        if in_features < 1 or num_classes < 1 or hidden_features < 1:
            raise ValueError(
                f"in_features, num_classes and hidden_features must be >= 1, got "
                f"{in_features}, {num_classes}, {hidden_features}."
            )
        super().__init__(
            [
                (in_features, hidden_features, nn.LayerNorm(hidden_features), nn.ReLU(inplace=True)),
                (hidden_features, num_classes, None, None),
            ]
        )


class DenseHead(nn.Module):
    """A 1x1x1 convolution from the network's output channels to a dense prediction's channels.

    Args:
        spatial_dims: 2 or 3.
        in_channels: channels of the network output.
        out_channels: channels of the prediction.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = Conv[Conv.CONV, spatial_dims](in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)
