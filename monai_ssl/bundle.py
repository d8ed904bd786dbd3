"""Building blocks that the bundles' JSON configs call: data sources, modality presets, pipelines and checks.

They keep the configs declarative and are usable from Python as they are.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from monai.data import CacheDataset, Dataset, PersistentDataset, load_decathlon_datalist
from monai.handlers import MeanDice, from_engine
from monai.transforms import (
    Compose,
    CropForegroundd,
    EnsureTyped,
    LoadImaged,
    MapTransform,
    Orientationd,
    RandSpatialCropSamplesd,
    ScaleIntensityRanged,
    ScaleIntensityRangePercentilesd,
    Spacingd,
    SpatialPadd,
)

from monai_ssl.data.phantom import write_phantom_dataset
from monai_ssl.networks.adapters import get_adapter
from monai_ssl.pretext_model import PretextModel

__all__ = [
    "MODALITIES",
    "DEMO_PHANTOM_SHAPE",
    "list_images",
    "training_files",
    "segmentation_files",
    "inference_files",
    "intensity_preset",
    "preprocessing",
    "pretext_dataset",
    "check_pretext_setup",
    "per_class_dice",
]

logger = logging.getLogger(__name__)

MODALITIES = ("MR", "CT")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
DEMO_PHANTOM_SHAPE = (64, 64, 64)
DEMO_SUBJECTS = 4
# the unlabelled demo phantoms are other subjects than the labelled ones, so that pretraining never sees an
# evaluation subject
DEMO_UNLABELLED_SEED = 100


def list_images(dataset_dir: str) -> list[str]:
    """Every NIfTI file under ``dataset_dir`` (recursively), sorted; a clear error if there is none."""
    if not os.path.isdir(dataset_dir):
        raise ValueError(f"dataset_dir {dataset_dir!r} is not a folder; pass --dataset_dir with a folder of NIfTI "
                         "files, or --datalist with a MONAI datalist JSON.")
    files = sorted(p for p in glob.glob(os.path.join(dataset_dir, "**", "*"), recursive=True)
                   if p.endswith(NIFTI_SUFFIXES) and os.path.isfile(p))
    if not files:
        raise ValueError(f"no NIfTI file (.nii, .nii.gz) under dataset_dir {dataset_dir!r}.")
    return files


def _demo_dir(output_dir: str) -> str:
    return os.path.join(output_dir, "demo_data")


def _read_datalist(datalist: str, key: str) -> list[dict]:
    if not os.path.isfile(datalist):
        raise ValueError(f"datalist {datalist!r} does not exist; pass the path of a MONAI datalist JSON.")
    # relative paths in a datalist are relative to the datalist's own folder
    return load_decathlon_datalist(datalist, data_list_key=key, base_dir=os.path.dirname(os.path.abspath(datalist)))


def training_files(
    dataset_dir: str | None, datalist: str | None, output_dir: str, num_demo_subjects: int = 8
) -> list[dict]:
    """Unlabelled training volumes as ``[{"image": path}, ...]``.

    From ``datalist`` (its ``"training"`` list), else every NIfTI file under ``dataset_dir``; with neither,
    ``num_demo_subjects`` demo phantoms are written to ``output_dir/demo_unlabelled`` and used (demo only, see
    :mod:`monai_ssl.data.phantom`). They are other subjects than the labelled demo phantoms.
    """
    if datalist:
        return [{"image": entry["image"]} for entry in _read_datalist(datalist, "training")]
    if dataset_dir:
        return [{"image": path} for path in list_images(dataset_dir)]
    folder = os.path.join(output_dir, "demo_unlabelled")
    logger.info("no dataset_dir or datalist given: using %d demo phantoms in %s", num_demo_subjects, folder)
    entries = write_phantom_dataset(folder, num_demo_subjects, DEMO_PHANTOM_SHAPE, seed=DEMO_UNLABELLED_SEED)
    return [{"image": e["image"]} for e in entries]


def inference_files(dataset_dir: str | None, datalist: str | None, output_dir: str) -> list[dict]:
    """Images to segment: a datalist's ``"testing"`` list, every NIfTI file under ``dataset_dir``, or, with
    neither, the demo phantom's validation subjects."""
    if datalist:
        return [{"image": entry["image"]} for entry in _read_datalist(datalist, "testing")]
    if dataset_dir:
        return [{"image": path} for path in list_images(dataset_dir)]
    return [{"image": entry["image"]} for entry in segmentation_files(None, None, output_dir)[1]]


def segmentation_files(
    dataset_dir: str | None, datalist: str | None, output_dir: str, num_labelled: int | None = None
) -> tuple[list[dict], list[dict]]:
    """Labelled ``(training, validation)`` lists of ``{"image", "label"}``.

    From ``datalist`` (its ``"training"`` and ``"validation"`` lists), else from ``dataset_dir`` in the Medical
    Segmentation Decathlon layout (``imagesTr/`` and ``labelsTr/`` with the same file names; the last fifth of
    the subjects, at least one, validate); with neither, the demo phantom: subject 0 trains, the others
    validate. ``num_labelled`` keeps the first N training subjects, the scarce-label setting.
    """
    if datalist:
        train, validation = _read_datalist(datalist, "training"), _read_datalist(datalist, "validation")
    elif dataset_dir:
        images = list_images(os.path.join(dataset_dir, "imagesTr"))
        labels = [os.path.join(dataset_dir, "labelsTr", os.path.basename(p)) for p in images]
        missing = [p for p in labels if not os.path.isfile(p)]
        if missing:
            raise ValueError(f"{len(missing)} images have no label in labelsTr, e.g. {missing[0]!r}.")
        pairs = [{"image": i, "label": lb} for i, lb in zip(images, labels)]
        split = len(pairs) - max(1, len(pairs) // 5)
        train, validation = pairs[:split], pairs[split:]
    else:
        logger.info("no dataset_dir or datalist given: using the demo phantom in %s", _demo_dir(output_dir))
        pairs = write_phantom_dataset(_demo_dir(output_dir), DEMO_SUBJECTS, DEMO_PHANTOM_SHAPE)
        train, validation = pairs[:1], pairs[1:]
    if num_labelled is not None:
        if num_labelled < 1 or num_labelled > len(train):
            raise ValueError(f"num_labelled must be between 1 and {len(train)} (the labelled training subjects), "
                             f"got {num_labelled}.")
        train = train[:num_labelled]
    if not train or not validation:
        raise ValueError(f"need at least one training and one validation subject, got {len(train)} and "
                         f"{len(validation)}.")
    return train, validation


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
                                  Orientationd(keys, axcodes="RAS")]
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
    cache: str = "memory",
    cache_dir: str | None = None,
    num_workers: int = 0,
) -> Dataset:
    """The pretraining dataset: deterministic preprocessing cached once per volume, then ``samples_per_volume``
    random ``roi_size`` crops of each loaded volume, each turned into every task's input and label.

    Loading and resampling cost far more than cutting pretext samples, so each load serves several samples.

    Args:
        files: ``[{"image": path}, ...]``.
        model: the pretext model, whose ``transform()`` makes the task samples.
        modality, spacing, roi_size: see :func:`preprocessing`.
        samples_per_volume: random crops cut from each loaded volume per epoch.
        cache: ``"memory"`` (``CacheDataset``), ``"disk"`` (``PersistentDataset`` in ``cache_dir``, for archives
            larger than memory; its file names are hashes, never patient data) or ``"none"``.
        cache_dir: folder of the disk cache.
        num_workers: workers filling the memory cache.
    """
    if samples_per_volume < 1:
        raise ValueError(f"samples_per_volume must be >= 1, got {samples_per_volume}.")
    check_pretext_setup(model, roi_size)
    transforms = [
        *preprocessing(modality, spacing, roi_size, track_meta=False),
        RandSpatialCropSamplesd("image", roi_size=roi_size, num_samples=samples_per_volume, random_size=False),
        model.transform(),
    ]
    pipeline = Compose(transforms)
    if cache == "memory":
        return CacheDataset(list(files), pipeline, num_workers=num_workers, progress=False)
    if cache == "disk":
        if not cache_dir:
            raise ValueError("cache='disk' needs a cache_dir.")
        return PersistentDataset(list(files), pipeline, cache_dir=cache_dir)
    if cache == "none":
        return Dataset(list(files), pipeline)
    raise ValueError(f"cache must be 'memory', 'disk' or 'none', got {cache!r}.")


def _network_divisor(model: PretextModel) -> int:
    strides = getattr(model.network, "strides", None)
    return int(np.prod([np.max(s) for s in strides])) if strides is not None else 16


def check_pretext_setup(model: PretextModel, roi_size: Sequence[int]) -> None:
    """Raise a ``ValueError`` naming the setting to change when the tasks cannot be cut from ``roi_size`` crops
    or their inputs do not fit the network: caught at start-up rather than in the middle of a run."""
    roi = tuple(int(r) for r in roi_size)
    adapter = get_adapter(model.network)
    for name, task in model.tasks.items():
        transform = task.task_transform
        if name == "jigsaw":
            grid = transform.jigsaw.grid
            if any(r % g for r, g in zip(roi, grid)):
                raise ValueError(f"roi_size {list(roi)} is not divisible by the jigsaw grid {list(grid)}; use a "
                                 "roi_size whose sizes are multiples of the grid.")
            adapter.check_input_size(transform.jigsaw.cube_size(roi))
        elif name == "relative_position":
            transform.patches.valid_centre_range(roi)
            adapter.check_input_size(transform.patches.patch_size)
        elif name == "rotation":
            adapter.check_input_size(transform.rotation.square_shape(roi))
        elif name == "colorization":
            divisor = _network_divisor(model)
            if any(r % divisor for r in roi):
                raise ValueError(f"colorization runs the whole network on roi_size {list(roi)}; use multiples of "
                                 f"{divisor} (the network's total downsampling).")
    logger.info("pretext setup checked: tasks %s on %s crops", list(model.tasks), list(roi))


def _channels(indices: Sequence[int]):
    """An output transform keeping the union of some one-hot channels of ``pred`` and ``label``."""

    def select(output):
        preds, labels = from_engine(["pred", "label"])(output)
        union = lambda x: x[list(indices)].amax(0, keepdim=True)  # noqa: E731
        return [union(p) for p in preds], [union(lb) for lb in labels]

    return select


def per_class_dice(
    label_names: Mapping[str, int], label_groups: Mapping[str, Sequence[int]] | None = None
) -> dict[str, MeanDice]:
    """``MeanDice`` metrics on one-hot ``pred``/``label``: one per foreground class (``val_dice_<name>``) and one
    per group of label values (``val_dice_<group>``, e.g. BraTS whole tumour ``[1, 2, 3, 4]``)."""
    metrics = {f"val_dice_{name}": MeanDice(include_background=True, output_transform=_channels([index]))
               for name, index in label_names.items() if index != 0}
    for group, indices in (label_groups or {}).items():
        if not indices or not set(indices) <= set(label_names.values()):
            raise ValueError(f"label group {group!r} must list label values among {sorted(label_names.values())}, "
                             f"got {indices}.")
        metrics[f"val_dice_{group}"] = MeanDice(include_background=True, output_transform=_channels(indices))
    return metrics

