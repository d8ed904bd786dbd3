"""Small networks and data shared by the model, engine and transfer tests."""

from __future__ import annotations

import torch
from monai.networks.nets import BasicUNet, UNet

from monai_ssl.data import make_phantom

SMALL_TASKS = [
    {"name": "jigsaw", "args": {"num_permutations": 10, "gap": 2, "jitter": 1}},
    {"name": "rotation"},
    {"name": "colorization"},
    {"name": "relative_position", "args": {"patch_size": 8, "gap": 1, "jitter": 1}},
]
UNET_ARGS = {"spatial_dims": 3, "in_channels": 1, "out_channels": 2, "channels": (8, 16, 32), "strides": (2, 2),
             "num_res_units": 1}


def small_unet(seed: int = 0, **overrides) -> UNet:
    torch.manual_seed(seed)
    return UNet(**{**UNET_ARGS, **overrides})


def small_basic_unet(seed: int = 0) -> BasicUNet:
    torch.manual_seed(seed)
    return BasicUNet(3, 1, 2, features=(4, 4, 8, 8, 16, 4))


def phantom_samples(count: int = 4, size: int = 32) -> list[dict]:
    return [{"image": make_phantom(i, shape=(size, size, size))[0]} for i in range(count)]
