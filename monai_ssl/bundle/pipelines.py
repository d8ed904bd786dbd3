"""Pipelines of the bundles: modality presets, the deterministic preprocessing shared by pretraining, fine-tuning
and inference, and the pretraining dataset (scans and label maps, cached, cut into pretext samples)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from monai.data import CacheDataset, Dataset, PersistentDataset
from monai.transforms import (
    Compose,
    CropForegroundd,
    DeleteItemsd,
    EnsureTyped,
    Flipd,
    Identityd,
    LoadImaged,
    MapLabelValued,
    MapTransform,
    OneOf,
    Orientationd,
    RandFlipd,
    RandSpatialCropSamplesd,
    ScaleIntensityRanged,
    ScaleIntensityRangePercentilesd,
    Spacingd,
    SpatialPadd,
)
from torch.utils.data import ConcatDataset

from monai_ssl.bundle.cache import CACHE_MODES, choose_cache
from monai_ssl.bundle.data_sources import IMAGE_KEY, LABEL_MAP_KEY
from monai_ssl.networks.adapters import get_adapter
from monai_ssl.pretext_model import PretextModel
from monai_ssl.tasks.base import VOLUME_ID_KEY
from monai_ssl.transforms import RandLabelMapSynthesisd

__all__ = [
    "MODALITIES",
    "RAS_LABELS",
    "intensity_preset",
    "preprocessing",
    "pretext_dataset",
    "label_map_preprocessing",
    "left_right_flip",
    "segmentation_label_mapping",
    "segmentation_synthesis",
    "check_pretext_setup",
]

logger = logging.getLogger(__name__)

MODALITIES = ("MR", "CT")
# the axis labels of "RAS" for Orientationd, given explicitly: the loaders put every image in RAS, and MONAI warns
# about a change of this argument's default on every construction otherwise
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


def intensity_preset(
    keys: str | Sequence[str], modality: str, ct_window: Sequence[float] = (-1000.0, 1000.0),
    mr_percentiles: Sequence[float] = (0.5, 99.5),
) -> MapTransform:
    """Intensity normalisation to [0, 1]: a HU window for CT, per-channel percentile scaling for MR.

    Args:
        keys: image keys.
        modality: ``"MR"`` or ``"CT"``.
        ct_window: ``(low, high)`` HU window for CT (Models Genesis uses [-1000, 1000]).
        mr_percentiles: ``(low, high)`` percentiles mapped to 0 and 1 for MR, clipped.
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}.")
    if modality == "CT":
        return ScaleIntensityRanged(keys, a_min=ct_window[0], a_max=ct_window[1], b_min=0.0, b_max=1.0, clip=True)
    return ScaleIntensityRangePercentilesd(keys, lower=mr_percentiles[0], upper=mr_percentiles[1], b_min=0.0,
                                           b_max=1.0, clip=True, channel_wise=True)


def preprocessing(
    modality: str,
    spacing: Sequence[float] | None,
    roi_size: Sequence[int],
    image_key: str = "image",
    label_key: str | None = None,
    crop_foreground: bool = True,
    track_meta: bool = True,
) -> list[MapTransform]:
    """The deterministic preprocessing shared by pretraining, fine-tuning and inference.

    Load (channel first), RAS orientation, resampling to ``spacing`` (``None`` keeps the native grid), the
    modality's intensity preset, a crop to the foreground (intensity above 0 after scaling) and padding to at
    least ``roi_size``. With ``label_key``, the label follows the image (nearest-neighbour resampling). Keep
    ``track_meta`` where the output must be inverted to the input's geometry (inference); pretraining drops it.
    """
    keys = [image_key] if label_key is None else [image_key, label_key]
    stages: list[MapTransform] = [LoadImaged(keys, ensure_channel_first=True, image_only=True),
                                  Orientationd(keys, axcodes="RAS", labels=RAS_LABELS)]
    if spacing is not None:
        modes = ["bilinear"] if label_key is None else ["bilinear", "nearest"]
        stages.append(Spacingd(keys, pixdim=spacing, mode=modes))
    stages.append(intensity_preset(image_key, modality))
    if crop_foreground:
        stages.append(CropForegroundd(keys, source_key=image_key, allow_smaller=True))
    stages += [SpatialPadd(keys, spatial_size=roi_size), EnsureTyped(keys, track_meta=track_meta)]
    return stages


def pretext_dataset(
    files: Sequence[Mapping[str, Any]],
    model: PretextModel,
    modality: str,
    spacing: Sequence[float] | None,
    roi_size: Sequence[int],
    samples_per_volume: int = 4,
    cache: str = "auto",
    cache_dir: str | None = None,
    num_workers: int = 0,
    synthesis_args: Mapping[str, Any] | None = None,
    allow_empty: bool = False,
) -> Dataset:
    """The pretraining dataset: deterministic preprocessing cached once per volume, then ``samples_per_volume``
    random ``roi_size`` crops of each loaded volume, each turned into every task's input and label.

    Loading and resampling cost far more than cutting pretext samples, so each load serves several samples.
    Entries ``{"label_map": path}`` are anatomical label maps (integer ids, e.g. FreeSurfer's): each crop of one
    becomes a new image with random contrast, bias, blur and noise (:py:class:`RandLabelMapSynthesisd`), so the
    pool holds an unlimited stream of scans of those anatomies. Both kinds may be mixed.

    Args:
        files: ``[{"image": path}, ...]`` and/or ``[{"label_map": path}, ...]``.
        model: the pretext model, whose ``transform()`` makes the task samples.
        modality, spacing, roi_size: see :func:`preprocessing`.
        samples_per_volume: random crops cut from each loaded volume per epoch.
        cache: ``"memory"`` (``CacheDataset``), ``"disk"`` (``PersistentDataset`` in ``cache_dir``, for archives
            larger than memory; its file names are hashes, never patient data), ``"none"``, or ``"auto"``: memory
            while the preprocessed pool takes at most half the available memory, else disk
            (:func:`~monai_ssl.bundle.cache.choose_cache`, logged).
        cache_dir: folder of the disk cache.
        num_workers: workers filling the memory cache.
        synthesis_args: arguments of :py:class:`RandLabelMapSynthesisd` for the label-map entries.
        allow_empty: return an empty dataset for no files (an optional held-out set) instead of raising.
    """
    _check_dataset_settings(samples_per_volume, cache)
    check_pretext_setup(model, roi_size)
    # each volume's id rides along with its crops, so that the tasks that contrast samples never take a crop of the
    # same volume for another volume; a digest of its path, not its place in the list, so that a disk cache (keyed
    # by the whole entry) stays valid whatever the order or the rank partition
    entries = [dict(f, **{VOLUME_ID_KEY: _volume_id(f)}) for f in files]
    images = [e for e in entries if IMAGE_KEY in e]
    label_maps = [e for e in entries if LABEL_MAP_KEY in e]
    if len(images) + len(label_maps) != len(files):
        raise ValueError(f"every pretraining entry needs an {IMAGE_KEY!r} or a {LABEL_MAP_KEY!r} path.")
    cache = _resolve_cache(entries, spacing, cache, cache_dir)
    datasets = []
    if images:
        transforms = [
            *preprocessing(modality, spacing, roi_size, track_meta=False),
            RandSpatialCropSamplesd(IMAGE_KEY, roi_size=roi_size, num_samples=samples_per_volume, random_size=False),
            model.transform(),
        ]
        datasets.append(_cached(images, transforms, cache, cache_dir, num_workers))
    if label_maps:
        transforms = [
            *label_map_preprocessing(spacing, roi_size),
            RandSpatialCropSamplesd(LABEL_MAP_KEY, roi_size=roi_size, num_samples=samples_per_volume,
                                    random_size=False),
            RandLabelMapSynthesisd(LABEL_MAP_KEY, image_key=IMAGE_KEY, **dict(synthesis_args or {})),
            DeleteItemsd(LABEL_MAP_KEY),
            model.transform(),
        ]
        datasets.append(_cached(label_maps, transforms, cache, cache_dir, num_workers))
    if not datasets and allow_empty:
        return Dataset([])
    if not datasets:
        raise ValueError("the datalist has no training entries; give scans (dataset_dir, or a datalist whose "
                         "'training' list is not empty).")
    return datasets[0] if len(datasets) == 1 else ConcatDataset(datasets)


def unlabelled_dataset(
    files: Sequence[Mapping[str, Any]],
    modality: str,
    spacing: Sequence[float] | None,
    roi_size: Sequence[int],
    samples_per_volume: int = 4,
    cache: str = "auto",
    cache_dir: str | None = None,
    num_workers: int = 0,
    augmentation: Sequence[Callable] = (),
) -> Dataset:
    """The unlabelled scans of semi-supervised fine-tuning: :func:`preprocessing` cached once per scan, then
    ``samples_per_volume`` random ``roi_size`` crops per load and ``augmentation``, transforms of the ``image``
    key alone (the segmentation bundle passes its own instances of ``train#intensity_augmentation``, so that
    labelled and unlabelled crops vary alike). ``cache`` as in :func:`pretext_dataset`; no files give an empty
    dataset."""
    _check_dataset_settings(samples_per_volume, cache)
    if not files:
        return Dataset([])
    cache = _resolve_cache(files, spacing, cache, cache_dir)
    transforms = [
        *preprocessing(modality, spacing, roi_size, track_meta=False),
        RandSpatialCropSamplesd(IMAGE_KEY, roi_size=roi_size, num_samples=samples_per_volume, random_size=False),
        *augmentation,
    ]
    return _cached(list(files), transforms, cache, cache_dir, num_workers)


def _check_dataset_settings(samples_per_volume: int, cache: str) -> None:
    """A ``ValueError`` for a crop count or cache mode that no dataset of the bundles can use."""
    if samples_per_volume < 1:
        raise ValueError(f"samples_per_volume must be >= 1, got {samples_per_volume}.")
    if cache not in CACHE_MODES:
        raise ValueError(f"cache must be one of {CACHE_MODES}, got {cache!r}.")


def _resolve_cache(entries: Sequence[Mapping[str, Any]], spacing: Sequence[float] | None, cache: str,
                  cache_dir: str | None) -> str:
    """``cache``, with ``"auto"`` decided for ``entries`` (:func:`~monai_ssl.bundle.cache.choose_cache`, logged);
    a ``ValueError`` when the disk cache has no folder."""
    if cache == "auto" and entries:
        cache = choose_cache(entries, spacing)
    if cache == "disk" and not cache_dir:
        raise ValueError("the disk cache (cache='disk', or 'auto' for this many volumes, see the log) needs a "
                         "cache_dir.")
    return cache


def _volume_id(entry: Mapping[str, Any]) -> int:
    source = entry.get(IMAGE_KEY, entry.get(LABEL_MAP_KEY))
    return int(hashlib.sha256(json.dumps(source, default=str).encode()).hexdigest()[:15], 16)


def label_map_preprocessing(spacing: Sequence[float] | None, roi_size: Sequence[int]) -> list[MapTransform]:
    """Load an integer label map, RAS orientation, nearest-neighbour resampling to ``spacing``, a crop to its
    labelled voxels and padding to at least ``roi_size``: the cached part of the synthesis pipeline."""
    stages: list[MapTransform] = [LoadImaged(LABEL_MAP_KEY, ensure_channel_first=True, image_only=True),
                                  Orientationd(LABEL_MAP_KEY, axcodes="RAS", labels=RAS_LABELS)]
    if spacing is not None:
        stages.append(Spacingd(LABEL_MAP_KEY, pixdim=spacing, mode="nearest"))
    return stages + [
        CropForegroundd(LABEL_MAP_KEY, source_key=LABEL_MAP_KEY, allow_smaller=True),
        SpatialPadd(LABEL_MAP_KEY, spatial_size=roi_size),
        EnsureTyped(LABEL_MAP_KEY, dtype=torch.int16, track_meta=False),
    ]


def segmentation_label_mapping(
    label_names: Mapping[str, int], label_sources: Mapping[str, Sequence[int]] | None, label_key: str = "label"
) -> list[MapTransform]:
    """The label files' ids to the classes of ``label_names``, for label files of an atlas (e.g. DLMUSE's MUSE ids,
    :mod:`monai_ssl.data.muse`): ``[]`` when ``label_sources`` is ``None`` (the files hold the class values), else
    MONAI's ``MapLabelValued`` mapping the ids listed for each class to its value and every other id up to the
    largest listed one to background.

    Args:
        label_names: class name to value (``0 .. N-1``).
        label_sources: for each foreground class of ``label_names``, the label-file ids it gathers.
        label_key: the label's key.
    """
    if label_sources is None:
        return []
    foreground = {name: value for name, value in label_names.items() if value != 0}
    if set(label_sources) != set(foreground):
        raise ValueError(f"label_sources must list the ids of every foreground class of label_names and no other: "
                         f"missing {sorted(set(foreground) - set(label_sources))}, unknown "
                         f"{sorted(set(label_sources) - set(foreground))}. Label files that hold the class values "
                         "themselves need --label_sources null (and --lateral_pairs null unless they are atlas ids "
                         "with sides).")
    target = {int(i): foreground[name] for name, ids in label_sources.items() for i in ids}
    if len(target) != sum(len(ids) for ids in label_sources.values()) or min(target, default=1) < 1:
        raise ValueError("label_sources must give each label-file id (>= 1) to one class only.")
    ids = list(range(max(target) + 1))
    return [MapLabelValued(label_key, orig_labels=ids, target_labels=[target.get(i, 0) for i in ids],
                           dtype=torch.uint8)]


def left_right_flip(lateral_pairs: Sequence[Sequence[int]] | None, prob: float = 0.5,
                    keys: Sequence[str] = ("image", "label"), label_key: str = "label") -> MapTransform:
    """A random left-right flip of a training crop (axis 0 of RAS), which swaps the label ids of ``lateral_pairs``
    with it: a flipped left hippocampus is a right one. Without pairs, MONAI's ``RandFlipd``, right for label sets
    that do not tell the sides apart.

    Args:
        lateral_pairs: ``[[right_id, left_id], ...]`` as they are in the label files (before ``label_sources`` maps
            them; MUSE's: :data:`monai_ssl.data.muse.MUSE_LATERAL_PAIRS`), or ``None`` (or empty).
        prob: probability of the flip.
        keys: the image and label keys flipped.
        label_key: the key whose ids are swapped.
    """
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"the flip probability must be in [0, 1], got {prob}.")
    if not lateral_pairs:
        return RandFlipd(keys, prob=prob, spatial_axis=0)
    pairs = [tuple(int(i) for i in pair) for pair in lateral_pairs]
    ids = [i for pair in pairs for i in pair]
    if any(len(pair) != 2 or pair[0] == pair[1] for pair in pairs) or len(set(ids)) != len(ids) or min(ids) < 0:
        raise ValueError("lateral_pairs must be [[right_id, left_id], ...]: pairs of two different non-negative ids, "
                         "each id in one pair only.")
    swapped = [i for right, left in pairs for i in (left, right)]
    swap = MapLabelValued(label_key, orig_labels=ids, target_labels=swapped)
    return OneOf([Compose([Flipd(keys, spatial_axis=0), swap]), Identityd(keys)], weights=[prob, 1.0 - prob])


def segmentation_synthesis(prob: float, image_key: str = "image", label_key: str = "label",
                           unlabelled_classes: int = 0) -> list[MapTransform]:
    """SynthSeg-style domain randomisation of labelled crops: with probability ``prob``, the crop is repainted with
    a new random contrast from its label map (:class:`~monai_ssl.transforms.RandLabelMapSynthesisd`), the training
    image otherwise. Atlas label maps such as DLMUSE's cover the brain and not the head around it: with
    ``unlabelled_classes`` 0 the crop's voxels of label 0 keep the scan; otherwise they are painted as that many
    extra labels binned by the scan's intensity there (SynthSeg's extra-cerebral labels), so that no seam between
    synthesis and scan outlines the labels. Keeping the scan scored higher on the IXI tuning subjects
    (``benchmarks/results/synthesis_probe.md``), hence the default. Place it after
    :func:`segmentation_label_mapping`, so that each class gets one intensity per draw, as SynthSeg generates its
    images from the segmentation's labels: painted before, the 130 cortical MUSE ids of one class became a
    patchwork that no scan shows. ``[]`` for ``prob == 0``.

    Reference:
        Billot et al., "SynthSeg: Segmentation of brain MRI scans of any contrast and resolution without
        retraining", Medical Image Analysis 2023.
    """
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"synthesis_prob must be in [0, 1] (the share of crops synthesised), got {prob}.")
    if prob == 0:
        return []
    synthesis = RandLabelMapSynthesisd(label_key, image_key=image_key, keep_unlabelled=not unlabelled_classes,
                                       unlabelled_classes=unlabelled_classes)
    if prob == 1:
        return [synthesis]
    return [OneOf([synthesis, Identityd(image_key)], weights=[prob, 1.0 - prob])]


def _cached(files: list[dict], transforms: list, cache: str, cache_dir: str | None, num_workers: int) -> Dataset:
    pipeline = Compose(transforms)
    if cache == "memory":
        return CacheDataset(files, pipeline, num_workers=num_workers, progress=False)
    if cache == "disk":
        return PersistentDataset(files, pipeline, cache_dir=cache_dir)
    return Dataset(files, pipeline)


def place_network(network: torch.nn.Module, device: str | torch.device, channels_last: bool) -> torch.nn.Module:
    """Move ``network`` to ``device``; with ``channels_last``, its convolution weights are stored channels-last
    (``torch.channels_last_3d`` for 3D kernels, ``torch.channels_last`` for 2D), so that its convolutions run in
    that layout whatever the layout of their inputs.

    On 2 CPU cores, a training step of the bundles' UNet measured 1.3x (segmentation, 48^3 crops) and 1.75x
    (pretext tasks) faster this way (``benchmarks/pretraining_step.py``, ``benchmarks/fine_tuning_step.py``);
    the results only differ by floating-point summation order.
    """
    network = network.to(device)
    if not channels_last:
        return network
    for parameter in network.parameters():
        layout = {5: torch.channels_last_3d, 4: torch.channels_last}.get(parameter.dim())
        if layout is not None:
            parameter.data = parameter.data.contiguous(memory_format=layout)
    return network


def check_pretext_setup(model: PretextModel, roi_size: Sequence[int]) -> None:
    """Raise a ``ValueError`` naming the setting to change when a task cannot be cut from ``roi_size`` crops or its
    inputs do not fit the network (each task's :py:meth:`~monai_ssl.tasks.PretextTask.check_setup`): caught at
    start-up rather than in the middle of a run."""
    roi = tuple(int(r) for r in roi_size)
    adapter = get_adapter(model.network)
    for task in model.tasks.values():
        task.check_setup(roi, adapter)
    logger.debug("pretext setup checked: tasks %s on %s crops", list(model.tasks), list(roi))
