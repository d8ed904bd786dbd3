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
    RandContrastiveViews,
    RandCPCPatches,
    RandIntensityColorization,
    RandRelativePatchPosition,
    RandRestorationDegradation,
    RandSliceRotation,
    RandVolumeJigsaw,
    RandVolumeMasking,
)

__all__ = ["render_pretext_montage", "pretext_montage_figure", "relative_position_views", "render_segmentation_montage"]

_COLUMNS = 8
#: the registered task each row of the montage shows, in order
MONTAGE_ROWS = ("jigsaw", "rotation", "relative_position", "colorization", "restoration", "contrastive", "exemplar",
                "cpc", "masked_volume")


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
    """One sample of each registered pretext task from a volume, with its label, as a matplotlib ``Figure``.

    Rows (:data:`MONTAGE_ROWS`): volume jigsaw (the shuffled cubes in output order), slice rotation (input and
    output, three orthogonal central slices), relative patch position (the two patches and where they lie),
    intensity colorization (input, target and the remapping curve), restoration (degraded input and target),
    contrastive and exemplar (the two views), CPC (the grid's context and target cubes), masked volume (masked
    input, target and the masked voxels). Patch sizes follow the volume's size.

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
    fig = Figure(figsize=(2 * _COLUMNS, 2.5 * len(MONTAGE_ROWS)))
    axes = fig.subplots(len(MONTAGE_ROWS), _COLUMNS)
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
    normalised = np.linspace(0, 1, 256)
    ax.plot(normalised, colorization.curve_at(normalised))
    ax.set_title("intensity curve", fontsize=8)
    ax.set_xlabel("original", fontsize=7)
    ax.set_ylabel("remapped", fontsize=7)
    ax.tick_params(labelsize=7)
    ax.set_aspect("equal")
    row_titles.append("Intensity colorization: restore the original intensities")

    restoration = RandRestorationDegradation()
    restoration.set_random_state(seed)
    degraded = restoration(shown)
    _show(axes[4, 0], _mid_slice(degraded[0]), "input (degraded)", 0.0, max(vmax, 1.0))
    _show(axes[4, 1], _mid_slice(shown[0]), "target (original)", vmin, vmax)
    row_titles.append(f"Restoration (Models Genesis): {', '.join(restoration.applied) or 'no degradation drawn'}; "
                      "restore the original")

    view_size = [max(8, s * 3 // 4) for s in shown.shape[1:]]
    for row, (task, augmentation) in enumerate((("Contrastive (SimCLR)", {}),
                                                ("Exemplar", {"intensity_prob": 1.0, "noise_prob": 0.8,
                                                              "noise_std": 0.1, "blur_prob": 0.8})), start=5):
        views = RandContrastiveViews(view_size=view_size, **augmentation)
        views.set_random_state(seed)
        pair = convert_to_numpy(views(shown))
        for index in range(2):
            _show(axes[row, index], _mid_slice(pair[index, 0]), f"view {index + 1}", vmin, vmax)
        purpose = ("pull the two views together, push other samples' away" if row == 5 else
                   "anchor (view 1) nearer its heavily augmented copy (view 2) than another volume")
        row_titles.append(f"{task}: two augmented views of one volume; {purpose}")

    cpc = RandCPCPatches(patch_size=[max(4, s // 4) for s in shown.shape[1:]], grid=4)
    cpc.set_random_state(seed)
    cubes = convert_to_numpy(cpc(shown))
    starts, size = cpc.patch_starts, cpc.patch_size
    # the middle layer of cubes across axis 2: the grid's rows run along axis 0, so it shows context above target
    layer = [n for n in range(cpc.num_patches) if n % cpc.grid[2] == cpc.grid[2] // 2]
    index = int(np.mean(starts[layer, 2]) + size[2] // 2)
    ax = axes[7, 0]
    _show(ax, np.take(shown[0], index, axis=2).T, f"slice {index} across axis 2", vmin, vmax)
    context = set(cpc.context_indices().tolist())
    for number in layer:
        ax.add_patch(Rectangle((starts[number, 0], starts[number, 1]), size[0], size[1], fill=False,
                               edgecolor="yellow" if number in context else "red", linewidth=1))
    shown_cubes = (min(n for n in layer if n in context), min(n for n in layer if n not in context))
    for column, number in enumerate(shown_cubes, start=1):
        _show(axes[7, column], _mid_slice(cubes[number, 0]), "a context cube" if column == 1 else "a target cube",
              vmin, vmax)
    row_titles.append(f"CPC: {cpc.num_patches} cubes; the {cpc.context_rows} context rows along axis 0 (yellow) "
                      "predict the encodings of the other rows (red)")

    masking = RandVolumeMasking(cube_size=max(2, smallest // 8))
    masking.set_random_state(seed)
    masked = masking(shown)
    _show(axes[8, 0], _mid_slice(masked[0]), "input (masked)", vmin, vmax)
    _show(axes[8, 1], _mid_slice(shown[0]), "target (original)", vmin, vmax)
    _show(axes[8, 2], _mid_slice(masking.mask(shown.shape[1:])[0].astype(np.float32)), "loss counts (white)", 0.0, 1.0)
    row_titles.append(f"Masked volume (SimMIM): {masking.cube_mask.sum()} of {masking.cube_mask.size} cubes masked; "
                      "reconstruct them")

    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.03, top=0.96, hspace=0.6, wspace=0.1)
    for row, title in enumerate(row_titles):
        fig.text(0.02, max(ax.get_position().y1 for ax in axes[row]) + 0.015, title, fontsize=10, weight="bold")
    return fig


def render_segmentation_montage(image: NdarrayOrTensor, segmentation: NdarrayOrTensor, path: str,
                                label_names: dict[str, int], title: str = "") -> str:
    """Write a PNG of a scan's three central slices (RAS: axial, coronal, sagittal), bare and with its label map
    overlaid, with a legend of ``label_names``; returns ``path``.

    Args:
        image, segmentation: ``(X, Y, Z)`` or ``(1, X, Y, Z)`` arrays on one grid (the segmentation's values are the
            ``label_names`` values).
        path: the PNG to write (folders are created).
        label_names: ``{name: value}``; 0 is left transparent.
        title: a line above the montage.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    volume = np.squeeze(convert_to_numpy(image)).astype(np.float32)
    labels = np.squeeze(convert_to_numpy(segmentation)).astype(np.int64)
    if volume.ndim != 3 or volume.shape != labels.shape:
        raise ValueError(f"image and segmentation must be one 3D grid, got {volume.shape} and {labels.shape}.")
    colours = [(0, 0, 0, 0)] + [(*c[:3], 0.55) for c in _palette(max(label_names.values()))]
    cmap = ListedColormap(colours)
    low, high = np.percentile(volume, [1, 99.5])
    figure = Figure(figsize=(9, 6), dpi=100)
    axes = figure.subplots(2, 3)
    for column, (axis, name) in enumerate(((2, "axial"), (1, "coronal"), (0, "sagittal"))):
        for row in range(2):
            _show(axes[row, column], _mid_slice(volume, axis), name if row == 0 else "", low, high)
        axes[1, column].imshow(_mid_slice(labels, axis), cmap=cmap, origin="lower", vmin=0,
                               vmax=len(colours) - 1, interpolation="nearest")
    figure.legend(handles=[Patch(color=colours[v], label=n) for n, v in label_names.items() if v], loc="lower center",
                  ncol=4, fontsize=8, frameon=False)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.subplots_adjust(bottom=0.14, top=0.9, wspace=0.05, hspace=0.1)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path)
    return path


def _palette(count: int) -> list:
    """``count`` distinct colours (matplotlib's qualitative tab10 / tab20, then repeated)."""
    from matplotlib import colormaps

    colours = colormaps["tab10" if count <= 10 else "tab20"].colors
    return [colours[i % len(colours)] for i in range(count)]
