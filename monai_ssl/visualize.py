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

__all__ = ["render_pretext_montage", "pretext_montage_figure", "relative_position_views"]

_COLUMNS = 8


def _mid_slice(volume: np.ndarray, axis: int = 2) -> np.ndarray:
    """The central slice of a ``(X, Y, Z)`` volume across ``axis``, oriented for ``imshow``."""
    return np.take(volume, volume.shape[axis] // 2, axis=axis).T


def _show(ax, image: np.ndarray, title: str, vmin: float, vmax: float) -> None:
    ax.imshow(image, cmap="gray", origin="lower", vmin=vmin, vmax=vmax)
    ax.set_title(title, fontsize=8)
    # a frame without ticks: an image whose background is bright (a remapped one) stays visible on the page
    ax.axis("on")
    ax.set_xticks([])
    ax.set_yticks([])


def relative_position_views(
    volume: np.ndarray, pair: np.ndarray, centre: np.ndarray, neighbour: np.ndarray, offset: np.ndarray,
    patch_size: int,
) -> dict:
    """The slices that show a relative-position sample in one plane.

    The plane cuts across an axis along which the neighbour is not displaced (so both patches appear side by side)
    through the centre patch's middle; each patch is shown in that same plane.

    Args:
        volume: ``(X, Y, Z)`` volume the pair was cut from.
        pair: ``(2, C, p, p, p)`` centre and neighbour patches.
        centre, neighbour: start voxels of the two patches.
        offset: the neighbour's grid offset.
        patch_size: the patches' edge.

    Returns:
        ``{"axis", "index", "overview", "centre", "neighbour", "boxes"}``: the slice axis and index, the three
        images (oriented for ``imshow(origin="lower")``) and each patch's box ``(x, y)`` corner in the overview.
    """
    axis = int(np.flatnonzero(offset == 0)[0]) if np.any(offset == 0) else 2
    in_plane = [a for a in range(3) if a != axis]
    index = int(centre[axis] + patch_size // 2)
    # the neighbour's own jitter may shift it along the slice axis: take the slice at the same volume index
    neighbour_index = int(np.clip(index - neighbour[axis], 0, patch_size - 1))
    return {
        "axis": axis,
        "index": index,
        "overview": np.take(volume, index, axis=axis).T,
        "centre": np.take(pair[0, 0], patch_size // 2, axis=axis).T,
        "neighbour": np.take(pair[1, 0], neighbour_index, axis=axis).T,
        "boxes": [(int(start[in_plane[0]]), int(start[in_plane[1]])) for start in (centre, neighbour)],
    }


def render_pretext_montage(image: NdarrayOrTensor, path: str, seed: int = 0, channel: int = 0) -> str:
    """Render :func:`pretext_montage_figure` to a PNG at ``path`` (its folder is created); returns ``path``."""
    fig = pretext_montage_figure(image, seed=seed, channel=channel)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=90)
    return path


def pretext_montage_figure(image: NdarrayOrTensor, seed: int = 0, channel: int = 0) -> Figure:
    """One sample of each of the four pretext tasks from a volume, with its label, as a matplotlib ``Figure``.

    Rows: volume jigsaw (the shuffled cubes in output order), slice rotation (input and output, three
    orthogonal central slices), relative patch position (the two patches and where they lie), intensity
    colorization (input, target and the remapping curve). Patch sizes follow the volume's size.

    Args:
        image: channel-first volume ``(C, X, Y, Z)``.
        seed: random state of the transforms, so a montage can be reproduced.
        channel: channel to display.
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
    offset = relative.offsets[relative.label]
    views = relative_position_views(shown[0], convert_to_numpy(pair), relative.centre_start, relative.neighbour_start,
                                    offset, patch)
    ax = axes[2, 0]
    _show(ax, views["overview"], f"slice {views['index']} across axis {views['axis']}", vmin, vmax)
    for corner, colour in zip(views["boxes"], ("yellow", "red")):
        ax.add_patch(Rectangle(corner, patch, patch, fill=False, edgecolor=colour, linewidth=1.5))
    _show(axes[2, 1], views["centre"], "centre patch (yellow)", vmin, vmax)
    _show(axes[2, 2], views["neighbour"], "neighbour patch (red)", vmin, vmax)
    row_titles.append(f"Relative patch position: label {relative.label} of {relative.num_classes}, "
                    f"grid offset {offset.tolist()} (yellow centre, red neighbour)")

    colorization = RandIntensityColorization(mode="remap")
    colorization.set_random_state(seed)
    degraded = colorization(shown)
    low, high = (float(v) for v in np.percentile(degraded, [0.5, 99.5]))
    _show(axes[3, 0], _mid_slice(degraded[0]), "input (remapped)", low, high)
    _show(axes[3, 1], _mid_slice(shown[0]), "target (original)", vmin, vmax)
    ax = axes[3, 3]  # a column apart, so that its tick and axis labels have room
    ax.axis("on")
    ax.plot(np.linspace(0, 1, colorization.lut_size), colorization.curve)
    ax.set_title("intensity curve", fontsize=8)
    ax.set_xlabel("original", fontsize=7)
    ax.set_ylabel("remapped", fontsize=7)
    ax.tick_params(labelsize=7)
    ax.set_aspect("equal")
    row_titles.append("Intensity colorization: restore the original intensities")

    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.06, top=0.93, hspace=0.55, wspace=0.1)
    for row, title in enumerate(row_titles):
        fig.text(0.02, max(ax.get_position().y1 for ax in axes[row]) + 0.035, title, fontsize=10, weight="bold")
    return fig
