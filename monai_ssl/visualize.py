"""Render what the network is asked to solve: one sample of each pretext task as a PNG montage."""

from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from monai.config import NdarrayOrTensor
from monai.transforms import CenterSpatialCrop
from monai.utils import convert_to_numpy

from monai_ssl.transforms import (
    RandIntensityColorization,
    RandRelativePatchPosition,
    RandSliceRotation,
    RandVolumeJigsaw,
)

__all__ = ["render_pretext_montage"]

_COLUMNS = 8


def _mid_slice(volume: np.ndarray, axis: int = 2) -> np.ndarray:
    """The central slice of a ``(X, Y, Z)`` volume across ``axis``, oriented for ``imshow``."""
    return np.take(volume, volume.shape[axis] // 2, axis=axis).T


def _show(ax, image: np.ndarray, title: str, vmin: float, vmax: float) -> None:
    ax.imshow(image, cmap="gray", origin="lower", vmin=vmin, vmax=vmax)
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def render_pretext_montage(image: NdarrayOrTensor, path: str, seed: int = 0, channel: int = 0) -> str:
    """Render one sample of each of the four pretext tasks from a volume, with its label, to a PNG.

    Rows: volume jigsaw (the shuffled cubes in output order), slice rotation (input and output, three
    orthogonal central slices), relative patch position (the two patches and where they lie), intensity
    colorization (input, target and the remapping curve). Patch sizes follow the volume's size.

    Args:
        image: channel-first volume ``(C, X, Y, Z)``.
        path: PNG file to write; its folder is created.
        seed: random state of the transforms, so a montage can be reproduced.
        channel: channel to display.

    Returns:
        ``path``.
    """
    volume = convert_to_numpy(image).astype(np.float32)
    if volume.ndim != 4:
        raise ValueError(f"expected a channel-first 3D volume (C, X, Y, Z), got shape {volume.shape}.")
    shown = volume[channel : channel + 1]
    vmin, vmax = (float(v) for v in np.percentile(shown, [0.5, 99.5]))
    smallest = min(shown.shape[1:])
    # a Figure without pyplot renders to files with Agg and leaves the user's matplotlib backend alone
    fig = Figure(figsize=(2 * _COLUMNS, 10))
    axes = fig.subplots(4, _COLUMNS)
    for ax in axes.flat:
        ax.axis("off")
    row_titles: list[str] = []

    jigsaw = RandVolumeJigsaw(grid=(2, 2, 2), gap=max(2, smallest // 32), jitter=max(1, smallest // 64))
    jigsaw.set_random_state(seed)
    cubes = jigsaw(shown)
    permutation = jigsaw.permutations[jigsaw.label]
    for position, cube in enumerate(cubes):
        _show(axes[0, position], _mid_slice(cube[0]), f"out {position} = cube {permutation[position]}", vmin, vmax)
    row_titles.append(f"Volume jigsaw: label {jigsaw.label} of {jigsaw.num_classes} permutations "
                    f"{permutation.tolist()}")

    rotation = RandSliceRotation(planes=((0, 1), (0, 2), (1, 2)))
    rotation.set_random_state(seed)
    rotated = rotation(shown)
    plane, k = rotation.decode(rotation.label)
    square = rotation.square_shape(shown.shape[1:])
    for axis in range(3):
        _show(axes[1, axis], _mid_slice(rotated[0], axis), f"output, across axis {axis}", vmin, vmax)
    unrotated = convert_to_numpy(CenterSpatialCrop(square)(shown))  # the same crop, not rotated
    for axis in range(3):
        _show(axes[1, 4 + axis], _mid_slice(unrotated[0], axis), f"input, across axis {axis}", vmin, vmax)
    described = "no rotation" if plane is None else f"{90 * k} deg in plane {plane}"
    row_titles.append(f"Slice rotation: label {rotation.label} of {rotation.num_classes} ({described}); "
                    f"cropped to {square}")

    patch = max(4, smallest // 4)
    relative = RandRelativePatchPosition(patch_size=patch, gap=max(1, patch // 8), jitter=max(1, patch // 16),
                                         foreground_threshold=float(np.percentile(shown, 60)))
    relative.set_random_state(seed)
    pair = relative(shown)
    centre, neighbour = relative.centre_start, relative.neighbour_start
    offset = relative.offsets[relative.label]
    # show both patches side by side: slice across an axis along which the neighbour is not displaced
    axis = int(np.flatnonzero(offset == 0)[0]) if np.any(offset == 0) else 2
    in_plane = [a for a in range(3) if a != axis]
    index = int(centre[axis] + patch // 2)
    ax = axes[2, 0]
    ax.imshow(np.take(shown[0], index, axis=axis).T, cmap="gray", origin="lower", vmin=vmin, vmax=vmax)
    for start, colour in ((centre, "yellow"), (neighbour, "red")):
        corner = (start[in_plane[0]], start[in_plane[1]])
        ax.add_patch(Rectangle(corner, patch, patch, fill=False, edgecolor=colour, linewidth=1.5))
    ax.set_title(f"slice {index} across axis {axis}", fontsize=8)
    _show(axes[2, 1], _mid_slice(pair[0, 0]), "centre patch", vmin, vmax)
    _show(axes[2, 2], _mid_slice(pair[1, 0]), "neighbour patch", vmin, vmax)
    row_titles.append(f"Relative patch position: label {relative.label} of {relative.num_classes}, "
                    f"grid offset {offset.tolist()} (yellow centre, red neighbour)")

    colorization = RandIntensityColorization(mode="remap")
    colorization.set_random_state(seed)
    degraded = colorization(shown)
    low, high = (float(v) for v in np.percentile(degraded, [0.5, 99.5]))
    _show(axes[3, 0], _mid_slice(degraded[0]), "input (remapped)", low, high)
    _show(axes[3, 1], _mid_slice(shown[0]), "target (original)", vmin, vmax)
    ax = axes[3, 2]
    ax.axis("on")
    ax.plot(np.linspace(0, 1, colorization.lut_size), colorization.curve)
    ax.set_title("intensity curve", fontsize=8)
    ax.set_aspect("equal")
    row_titles.append("Intensity colorization: restore the original intensities")

    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.03, top=0.93, hspace=0.5, wspace=0.1)
    for row, title in enumerate(row_titles):
        fig.text(0.02, max(ax.get_position().y1 for ax in axes[row]) + 0.035, title, fontsize=10, weight="bold")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=90)
    return path
