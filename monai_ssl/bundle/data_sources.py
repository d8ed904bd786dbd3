"""Data sources of the bundles: which files a run reads (a folder, a datalist, or the demo phantoms on request),
the shipped encoder's location, and each process's share of the files under ``torch.distributed``."""

from __future__ import annotations

import glob
import json
import logging
import os
from collections.abc import Mapping, Sequence

import nibabel as nib
import numpy as np
import ignite.distributed as idist
from monai.data import load_decathlon_datalist, partition_dataset

from monai_ssl.bundle.checks import check_inference_channels
from monai_ssl.data.phantom import write_phantom_dataset

__all__ = [
    "IMAGE_KEY",
    "LABEL_MAP_KEY",
    "DEMO_PHANTOM_SHAPE",
    "shipped_encoder_path",
    "list_images",
    "is_label_map",
    "training_files",
    "validation_files",
    "inference_files",
    "input_root",
    "require_files",
    "segmentation_files",
    "rank_partition",
]

logger = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii", ".nii.gz")
IMAGE_KEY = "image"
LABEL_MAP_KEY = "label_map"
DEMO_PHANTOM_SHAPE = (64, 64, 64)
DEMO_SUBJECTS = 4
# the unlabelled demo phantoms are other subjects than the labelled ones, so that pretraining never sees an
# evaluation subject
DEMO_UNLABELLED_SEED = 100
PRETRAINING_BUNDLE_NAME = "Pretext pretraining"  # the "name" in the pretraining bundle's metadata.json


def shipped_encoder_path(bundle_root: str = ".") -> str:
    """The pretrained brain-MRI encoder shipped in the ``pretext_pretraining`` bundle (``models/model.pt``).

    Looked for beside ``bundle_root``: the folder ``pretext_pretraining`` (as in the repository), then any folder
    whose ``configs/metadata.json`` names the pretraining bundle (both bundles downloaded into one ``bundle_dir``
    with ``python -m monai.bundle download``, under whatever folder name); then in the checkout this package runs
    from. If none has it, the first place, so that loading names it in its error.
    """
    parent = os.path.join(bundle_root, "..")
    siblings = sorted(d for d in glob.glob(os.path.join(parent, "*", "configs", "metadata.json"))
                      if _bundle_name(d) == PRETRAINING_BUNDLE_NAME)
    candidates = [os.path.join(parent, "pretext_pretraining", "models", "model.pt"),
                  *(os.path.join(os.path.dirname(os.path.dirname(m)), "models", "model.pt") for m in siblings),
                  os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "bundles",
                               "pretext_pretraining", "models", "model.pt")]
    found = [c for c in candidates if os.path.isfile(c)]
    return os.path.normpath((found or candidates)[0])


def _bundle_name(metadata_path: str) -> str | None:
    try:
        with open(metadata_path) as f:
            return json.load(f).get("name")
    except (OSError, ValueError, AttributeError):
        return None


def list_images(dataset_dir: str, exclude_label_maps: bool = True) -> list[str]:
    """Every NIfTI scan under ``dataset_dir`` (recursively), sorted; a clear error if there is none.

    With ``exclude_label_maps``, files whose content is a label map or mask (:func:`is_label_map`: BraTS
    ``*_seg``, ``brainmask``, ``OTMultiClass``, whatever their names) or that cannot be read are left out and
    logged with the reason: they are not scans to pretrain on. A folder of DICOM files and no NIfTI is pointed to ``monai-ssl index``.
    """
    if not os.path.isdir(dataset_dir):
        raise ValueError(f"dataset_dir {dataset_dir!r} is not a folder; pass --dataset_dir with a folder of NIfTI "
                         "files, or --datalist with a MONAI datalist JSON.")
    candidates = sorted(p for p in glob.glob(os.path.join(dataset_dir, "**", "*"), recursive=True) if os.path.isfile(p))
    files = [p for p in candidates if p.endswith(NIFTI_SUFFIXES)]
    if not files:
        dicom = sum(_is_dicom(p) for p in candidates[:1000])
        hint = (f" It holds DICOM files ({dicom} among the first {min(len(candidates), 1000)}): convert them with "
                f"`monai-ssl index {dataset_dir} --out datalist.json`, then pass --datalist datalist.json."
                if dicom else "")
        raise ValueError(f"no NIfTI file (.nii, .nii.gz) under dataset_dir {dataset_dir!r}.{hint}")
    if exclude_label_maps:
        excluded = {}
        for path in files:
            try:
                reason = is_label_map(path)
                if reason:
                    logger.info("dataset_dir: left out %s, a label map or mask (%s), not a scan", path, reason)
            except Exception as error:  # noqa: BLE001 - one unreadable file must not stop a scan of an archive
                reason = f"unreadable: {error}"
                logger.warning("dataset_dir: left out %s, %s", path, reason)
            if reason:
                excluded[path] = reason
        if excluded:
            logger.warning("dataset_dir: left out %d of %d NIfTI files as label maps, masks or unreadable "
                           "(listed above)", len(excluded), len(files))
        files = [p for p in files if p not in excluded]
        if not files:
            raise ValueError(f"no NIfTI file under dataset_dir {dataset_dir!r} is a readable scan (label maps and "
                             "masks are left out); give a folder of scans.")
    return files


# label maps hold few distinct integer values; even an 8-bit MR scan uses far more grey levels
MAX_LABEL_VALUES = 128


def is_label_map(path: str, max_values: int = MAX_LABEL_VALUES) -> str:
    """Why the NIfTI file at ``path`` is a label map or mask rather than a scan (integer values only, at most
    ``max_values`` distinct ones, on every other voxel), or ``""`` if it is a scan.

    Judged by content, not name: a BraTS ``*_seg`` file and a FreeSurfer ``aseg`` both qualify whatever they are
    called, and a scan named ``mask.nii`` does not.
    """
    image = nib.load(path)
    data = np.asanyarray(image.dataobj)
    sample = data[tuple(slice(None, None, 2) for _ in range(min(data.ndim, 3)))]
    if not np.all(np.isfinite(sample)) or not np.all(sample == np.round(sample)):
        return ""
    values = np.unique(sample)
    if values.size > max_values:
        return ""
    return f"{values.size} distinct integer values"


def _is_dicom(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(132)[128:] == b"DICM"


def _demo_dir(output_dir: str) -> str:
    return os.path.join(output_dir, "demo_data")


def _read_datalist(datalist: str, key: str) -> list[dict]:
    if not os.path.isfile(datalist):
        raise ValueError(f"datalist {datalist!r} does not exist; pass the path of a MONAI datalist JSON.")
    # relative paths in a datalist are relative to the datalist's own folder
    return load_decathlon_datalist(datalist, data_list_key=key, base_dir=os.path.dirname(os.path.abspath(datalist)))


def _unlabelled_entries(datalist: str, key: str) -> list[dict]:
    entries = []
    for index, entry in enumerate(_read_datalist(datalist, key)):
        kinds = [k for k in (IMAGE_KEY, LABEL_MAP_KEY) if k in entry]
        if len(kinds) != 1:
            raise ValueError(f"datalist {datalist!r}: {key} entry {index} must have exactly one of {IMAGE_KEY!r} "
                             f"(a scan) or {LABEL_MAP_KEY!r} (an anatomy to synthesise scans from), got keys "
                             f"{sorted(entry)}.")
        entries.append({kinds[0]: entry[kinds[0]]})
    return entries


def _no_data(what: str) -> ValueError:
    return ValueError(f"no {what} given: pass --dataset_dir FOLDER (NIfTI files) or --datalist FILE (a MONAI "
                      "datalist JSON, e.g. written by `monai-ssl index`); --demo true runs on generated demo "
                      "phantoms instead.")


def _check_demo(dataset_dir: str | None, datalist: str | None, demo: bool) -> bool:
    """Whether to use the demo phantoms: only when asked for, and never together with real data."""
    if demo and (dataset_dir or datalist):
        raise ValueError("demo is true but dataset_dir or datalist is given as well; drop --demo to use your data.")
    return bool(demo)


def training_files(
    dataset_dir: str | None, datalist: str | None, output_dir: str, demo: bool = False, num_demo_subjects: int = 8
) -> list[dict]:
    """Unlabelled training volumes as ``[{"image": path}, ...]``.

    From ``datalist`` (its ``"training"`` list, whose entries may also be ``{"label_map": path}``: an anatomical
    label map from which :py:func:`pretext_dataset` synthesises a new random-contrast image at every draw), else
    every NIfTI scan under ``dataset_dir`` (see :func:`list_images`). With ``demo`` (and neither),
    ``num_demo_subjects`` demo phantoms are written to ``output_dir/demo_unlabelled`` and used (see
    :mod:`monai_ssl.data.phantom`); they are other subjects than the labelled demo phantoms. No data and no
    ``demo`` is an error that says how to give data.
    """
    if _check_demo(dataset_dir, datalist, demo):
        folder = os.path.join(output_dir, "demo_unlabelled")
        logger.info("demo: using %d generated phantoms in %s", num_demo_subjects, folder)
        entries = write_phantom_dataset(folder, num_demo_subjects, DEMO_PHANTOM_SHAPE, seed=DEMO_UNLABELLED_SEED)
        return [{"image": e["image"]} for e in entries]
    if datalist:
        return _unlabelled_entries(datalist, "training")
    if dataset_dir:
        return [{"image": path} for path in list_images(dataset_dir)]
    raise _no_data("unlabelled scans")


def unlabelled_scans(dataset_dir: str | None, datalist: str | None, output_dir: str, demo: bool = False,
                     in_channels: int | None = None) -> list[dict]:
    """Unlabelled scans for semi-supervised fine-tuning, ``[{"image": path}, ...]``: as :func:`training_files`
    gives them (a pretraining datalist, e.g. the pool the encoder was pretrained on, serves as it is), without its
    ``label_map`` entries, which are skipped with a log line (they are anatomies to synthesise scans from, not
    scans). With ``in_channels``, every scan is checked to have that many channels before any is read."""
    entries = training_files(dataset_dir, datalist, output_dir, demo)
    scans = [e for e in entries if IMAGE_KEY in e]
    if len(scans) < len(entries):
        logger.warning("semi-supervised fine-tuning skips %d %r entries of %s: they are anatomies, not scans",
                       len(entries) - len(scans), LABEL_MAP_KEY, datalist)
    if not scans:
        raise ValueError(f"no unlabelled scans for semi-supervised fine-tuning in {datalist or dataset_dir!r}; give "
                         "--unlabelled_datalist or --unlabelled_dir with image files, or set --semi_supervised false.")
    if in_channels is not None:
        check_inference_channels(scans, in_channels, list_key="training", datalist_option="--unlabelled_datalist")
    return scans


def validation_files(datalist: str | None) -> list[dict]:
    """Held-out unlabelled volumes for scoring the pretext tasks: a datalist's ``"validation"`` list (entries
    ``{"image": path}`` or ``{"label_map": path}``, as in :func:`training_files`), or none."""
    if not datalist:
        return []
    with open(datalist) as f:
        if not json.load(f).get("validation"):
            return []
    return _unlabelled_entries(datalist, "validation")


def inference_files(dataset_dir: str | None, datalist: str | None, output_dir: str, demo: bool = False) -> list[dict]:
    """Images to segment or embed: a datalist's ``"testing"`` list, every NIfTI scan under ``dataset_dir``, or,
    with ``demo``, the demo phantom's validation subjects.

    With none of them, an empty list, so that an inference config can be built without data (the Model Zoo checks
    its properties so); :func:`require_files` at the start of its ``run`` then stops with the way to give data.
    """
    if _check_demo(dataset_dir, datalist, demo):
        return [{"image": entry["image"]} for entry in segmentation_files(None, None, output_dir, demo=True)[1]]
    if datalist:
        return [{"image": entry["image"]} for entry in _read_datalist(datalist, "testing")]
    if dataset_dir:
        return [{"image": path} for path in list_images(dataset_dir)]
    return []


def input_root(files: Sequence[Mapping], key: str = IMAGE_KEY) -> str:
    """The deepest folder holding every input of ``files``: outputs named relative to it (MONAI's
    ``data_root_dir``) mirror the inputs' layout, so that ``subject/Flair.nii.gz`` layouts (BraTS, BIDS) give one
    output per subject instead of one file for all; a flat folder of scans gives flat outputs. ``""`` for no
    files. An entry with several channel files counts by its first."""
    folders = [os.path.dirname(os.path.abspath(str(f[key][0] if isinstance(f[key], (list, tuple)) else f[key])))
               for f in files]
    return os.path.commonpath(folders) if folders else ""


def require_files(files: Sequence[Mapping], what: str = "images") -> None:
    """Raise the error that says how to give data when ``files`` is empty."""
    if not files:
        raise _no_data(what)


def segmentation_files(
    dataset_dir: str | None, datalist: str | None, output_dir: str, num_labelled: int | None = None,
    demo: bool = False,
) -> tuple[list[dict], list[dict]]:
    """Labelled ``(training, validation)`` lists of ``{"image", "label"}``.

    From ``datalist`` (its ``"training"`` and ``"validation"`` lists), else from ``dataset_dir`` in the Medical
    Segmentation Decathlon layout (``imagesTr/`` and ``labelsTr/`` with the same file names; the last fifth of
    the subjects, at least one, validate); with ``demo``, the demo phantom: subject 0 trains, the others
    validate. ``num_labelled`` keeps the first N training subjects, the scarce-label setting.
    """
    if _check_demo(dataset_dir, datalist, demo):
        logger.info("demo: using the demo phantom in %s", _demo_dir(output_dir))
        pairs = write_phantom_dataset(_demo_dir(output_dir), DEMO_SUBJECTS, DEMO_PHANTOM_SHAPE)
        train, validation = pairs[:1], pairs[1:]
    elif datalist:
        train, validation = _read_datalist(datalist, "training"), _read_datalist(datalist, "validation")
    elif dataset_dir:
        images = list_images(os.path.join(dataset_dir, "imagesTr"), exclude_label_maps=False)
        labels = [os.path.join(dataset_dir, "labelsTr", os.path.basename(p)) for p in images]
        missing = [p for p in labels if not os.path.isfile(p)]
        if missing:
            raise ValueError(f"{len(missing)} images have no label in labelsTr, e.g. {missing[0]!r}.")
        pairs = [{"image": i, "label": lb} for i, lb in zip(images, labels)]
        split = len(pairs) - max(1, len(pairs) // 5)
        train, validation = pairs[:split], pairs[split:]
    else:
        raise _no_data("labelled scans")
    if num_labelled is not None:
        if num_labelled < 1 or num_labelled > len(train):
            raise ValueError(f"num_labelled must be between 1 and {len(train)} (the labelled training subjects), "
                             f"got {num_labelled}.")
        train = train[:num_labelled]
    if not train or not validation:
        raise ValueError(f"need at least one training and one validation subject, got {len(train)} and "
                         f"{len(validation)}.")
    return train, validation


def rank_partition(files: Sequence[Mapping], seed: int = 0) -> list:
    """This process's share of ``files`` under ``torch.distributed``, as MONAI's multi-GPU tutorials cut it: each
    rank caches and reads its own disjoint part (MONAI's ``partition_dataset``, shuffled with ``seed``, padded so
    that every rank runs the same number of iterations). With fewer files than processes (one labelled subject on
    two GPUs), every rank takes them all (logged); per-rank seeds still give each rank its own crops. Without a
    process group, all files.
    """
    world_size, rank = idist.get_world_size(), idist.get_rank()
    if world_size == 1:
        return list(files)
    if len(files) < world_size:
        logger.warning("%d training file(s) for %d processes: every process reads all of them", len(files), world_size)
        return list(files)
    return partition_dataset(list(files), num_partitions=world_size, shuffle=True, seed=seed, even_divisible=True)[rank]
