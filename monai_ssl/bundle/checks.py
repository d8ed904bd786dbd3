"""Checks that the bundles run before anything heavy, so that a mistake stops the run with a message naming the fix
instead of a silent misuse or a raw torch error an hour later.

- :func:`check_settings`: every top-level setting of the final config is one the bundle defines (a misspelt
  override such as ``--datset_dir`` would otherwise be ignored and the run would use its default).
- :func:`check_segmentation_setup`: crop size, input channels and label values of a fine-tuning run.
- :func:`check_segmentation_weights`: an evaluation or inference run refuses the pretraining bundle's weights.
- :func:`install_error_summary`: the root cause of a failed config expression is also the last line printed.
- :func:`bundle_root`: the folder of the bundle whose configs are being run.
"""

from __future__ import annotations

import difflib
import inspect
import json
import logging
import os
import re
import sys
import traceback
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.bundle import ConfigWorkflow

from monai_ssl.checkpoint import PRETRAINING_STATE_FILENAME, load_checkpoint
from monai_ssl.networks.adapters import get_adapter

__all__ = [
    "bundle_root",
    "bundle_settings",
    "check_settings",
    "check_segmentation_setup",
    "check_segmentation_weights",
    "install_error_summary",
    "quiet_third_party_warnings",
    "root_cause",
]

logger = logging.getLogger(__name__)

# MONAI's ConfigWorkflow adds the bundle's metadata under this key
RESERVED_SETTINGS = frozenset({"_meta_"})


def _running_workflow() -> ConfigWorkflow | None:
    """The ``ConfigWorkflow`` evaluating the calling config expression, if any.

    MONAI's config expressions have no handle on the parser or workflow that evaluates them, so it is found on the
    call stack (``ConfigWorkflow._run_expr`` -> ``ConfigParser.get_parsed_content`` -> the expression).
    """
    for frame_info in inspect.stack(context=0):
        candidate = frame_info.frame.f_locals.get("self")
        if isinstance(candidate, ConfigWorkflow):
            return candidate
    return None


def bundle_root() -> str:
    """The folder of the bundle being run: the parent of its ``configs/`` folder, as MONAI's ``ConfigWorkflow.run``
    itself derives it. Outside a workflow (a bare ``ConfigParser``, e.g. ``verify_net_in_out``), ``"."``.

    The bundles default ``bundle_root`` to this rather than to the working directory so that two bundles run from
    the same folder never write into the same ``models/``.
    """
    workflow = _running_workflow()
    if workflow is None:
        return "."
    configs = Path(workflow.config_root_path)
    return str(configs.parent if configs.name == "configs" else configs)


def bundle_settings(config_dir: str | os.PathLike) -> set[str]:
    """The top-level settings a bundle defines: the keys of every config file in its ``configs`` folder (metadata
    excluded), where ``"a#b"`` keys (nested overrides, as in ``multi_gpu_train.json``) count as ``"a"``."""
    settings = set(RESERVED_SETTINGS)
    for path in sorted(Path(config_dir).glob("*.json")):
        if path.name == "metadata.json":
            continue
        settings |= {key.split("#")[0] for key in json.loads(path.read_text())}
    return settings


def _referenced_settings(config) -> set[str]:
    """The top-level keys that values of ``config`` refer to (``@key``, ``@key#sub``, also inside expressions)."""
    found: set[str] = set()
    if isinstance(config, dict):
        for value in config.values():
            found |= _referenced_settings(value)
    elif isinstance(config, (list, tuple)):
        for value in config:
            found |= _referenced_settings(value)
    elif isinstance(config, str):
        found |= set(re.findall(r"@([A-Za-z_][\w]*)", config))
    return found


def check_settings() -> None:
    """Reject a top-level setting that the running bundle does not define and nothing refers to, suggesting the
    closest one. Keys that other values refer to are an override file's own helpers, as MONAI bundles allow
    (``"my_root": "/data"`` with ``"dataset_dir": "@my_root"``).

    Called first in the bundles' ``initialize``; under the bundle command line (``python -m monai.bundle``, also
    through ``torchrun``) it also installs :func:`install_error_summary`, which a Python program that runs a
    bundle in its own process does not get (its exceptions stay its own). Outside a ``ConfigWorkflow`` there is no
    bundle folder to read the settings from, and nothing is checked (logged).

    Raises:
        ValueError: ``unknown setting 'datset_dir' (did you mean 'dataset_dir'?)``.
    """
    if _run_by_bundle_cli():
        install_error_summary()
    quiet_third_party_warnings()
    workflow = _running_workflow()
    if workflow is None:
        logger.info("settings not checked: the config is not run by a ConfigWorkflow")
        return
    known = bundle_settings(workflow.config_root_path)
    config = workflow.parser.get()
    allowed = known | _referenced_settings(config)
    unknown = [key for key in config if key not in allowed]
    if unknown:
        problems = []
        for key in unknown:
            close = difflib.get_close_matches(key, sorted(known - RESERVED_SETTINGS), n=1)
            problems.append(f"unknown setting {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError("; ".join(problems) + f". The settings of this bundle are the top-level keys of the "
                         f"config files in {workflow.config_root_path}.")


# warnings that concern no user of these bundles: MONAI builds every image reader in each LoadImage, including the
# GPU DICOM decoder, and warns when that optional decoder is not installed
IRRELEVANT_WARNINGS = (r"NvImgCodecPydicomReader: nvImageCodec decoder plugin did not register",)


def quiet_third_party_warnings() -> None:
    """Filter :data:`IRRELEVANT_WARNINGS` (the bundles' ``logging.conf`` quiets the matching log lines)."""
    for message in IRRELEVANT_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=UserWarning)


def root_cause(error: BaseException) -> BaseException:
    """The innermost exception of a chain (``raise ... from`` or raised while handling another)."""
    seen = {id(error)}
    while True:
        inner = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
        if inner is None or id(inner) in seen:
            return error
        seen.add(id(inner))
        error = inner


def _run_by_bundle_cli() -> bool:
    """Whether this process is MONAI's bundle command line (``python -m monai.bundle ...``)."""
    return os.path.normpath(sys.argv[0] if sys.argv else "").endswith(os.path.join("monai", "bundle", "__main__.py"))


def install_error_summary() -> None:
    """Make the root cause of an uncaught exception the last line printed.

    MONAI wraps an error raised inside a config expression in ``RuntimeError: Failed to evaluate
    ConfigExpression...``, printed some 40 lines below the message that names the fix. After the usual traceback,
    this ``sys.excepthook`` prints the innermost exception once more. Installed once per process.
    """
    if getattr(sys.excepthook, "monai_ssl_error_summary", False):
        return
    previous = sys.excepthook

    def excepthook(exc_type, exc, tb):
        previous(exc_type, exc, tb)
        cause = root_cause(exc)
        if cause is not exc:
            print("".join(traceback.format_exception_only(cause)).rstrip(), file=sys.stderr)

    excepthook.monai_ssl_error_summary = True
    sys.excepthook = excepthook


def _image_channels(image: str | Sequence[str]) -> int:
    """Channels of a datalist image entry: one file (its 4th dimension, if any) or a list of files stacked."""
    paths = [image] if isinstance(image, (str, os.PathLike)) else list(image)
    return sum(int(np.prod(nib.load(str(p)).shape[3:], dtype=int)) for p in paths)


def check_inference_channels(files: Sequence[Mapping], in_channels: int, list_key: str = "testing",
                             datalist_option: str = "--datalist") -> None:
    """Check that every image has the network's ``in_channels`` before any is read: the images to segment, or the
    unlabelled scans of semi-supervised fine-tuning.

    Args:
        files: ``[{"image": path or [path per channel]}, ...]``.
        in_channels: the network's input channels.
        list_key, datalist_option: the datalist list and the setting that give the images, for the message.

    Raises:
        ValueError: naming the image and how to give several channels: one 4D NIfTI per subject, or a datalist
            whose ``list_key`` entries list one file per channel (separate files in one folder are separate
            subjects).
    """
    for entry in files:
        channels = _image_channels(entry["image"])
        if channels != in_channels:
            raise ValueError(
                f"the model takes {in_channels} channel(s) but {entry['image']} has {channels}. Give each subject's "
                f"{in_channels} channels as one 4D NIfTI (the channels along the 4th dimension), or as a datalist "
                f'({datalist_option}) whose "{list_key}" entries list one file per channel, e.g. {{"image": '
                '["flair.nii.gz", "t1c.nii.gz"]}; separate files in a folder are read as separate subjects.'
            )


def check_segmentation_setup(
    network, roi_size: Sequence[int], in_channels: int, files: Sequence[Sequence[Mapping]],
    label_names: Mapping[str, int], label_sources: Mapping[str, Sequence[int]] | None = None,
) -> None:
    """Check a fine-tuning run's settings against its network and data before training starts.

    Args:
        network: the segmentation network (its adapter gives the total downsampling).
        roi_size: training crop and sliding-window size.
        in_channels: the network's input channels.
        files: ``(training, validation)`` lists of ``{"image", "label"}``.
        label_names: label name to value; values must be ``0 .. len - 1``.
        label_sources: the label-file ids of each class (atlas label files,
            :func:`~monai_ssl.bundle.segmentation_label_mapping`); ``None``: the label files hold the class values.

    Every label is read once: labelled sets are small in the setting this bundle is for.

    Raises:
        ValueError: naming the setting to change: ``roi_size`` not a multiple of the downsampling or too small
            for the encoder, ``in_channels`` different from the images' channels, label values out of range.
    """
    adapter = get_adapter(network)
    divisor = adapter.downsampling
    roi = [int(r) for r in roi_size]
    if any(r % divisor for r in roi):
        raise ValueError(f"roi_size {roi} is not divisible by {divisor}, the network's total downsampling; use "
                         f"multiples of {divisor}, e.g. {[max(divisor, r // divisor * divisor) for r in roi]}.")
    adapter.check_input_size(roi)  # 3 voxels per axis at the bottom (bf16 NaN gradients on 2)
    values = sorted(int(v) for v in label_names.values())
    if values != list(range(len(values))):
        raise ValueError(f"label_names must map to the values 0 .. {len(values) - 1}, got {dict(label_names)}.")
    for split, entries in zip(("training", "validation"), files):
        for entry in entries:
            channels = _image_channels(entry["image"])
            if channels != in_channels:
                raise ValueError(f"in_channels is {in_channels} but the {split} image {entry['image']} has "
                                 f"{channels} channel(s); set --in_channels {channels}.")
            label = np.asanyarray(nib.load(str(entry["label"])).dataobj)
            found = np.unique(label)
            if label_sources is not None:
                listed = {int(i) for ids in label_sources.values() for i in ids}
                if not listed & set(found.astype(int).tolist()):
                    raise ValueError(f"the {split} label {entry['label']} holds none of the ids of label_sources "
                                     f"(found {found.tolist()[:8]}...); give label_sources of this atlas, or null "
                                     "when the label files hold the class values.")
                continue
            outside = [v for v in found.tolist() if v not in values]
            if outside:
                raise ValueError(f"the {split} label {entry['label']} holds values {outside[:5]} outside label_names "
                                 f"{dict(label_names)}; add them to label_names (values 0 .. N-1).")


def check_segmentation_weights(path: str, network: torch.nn.Module | None = None,
                               label_names: Mapping[str, int] | None = None) -> str:
    """``path``, after checking that it holds segmentation weights rather than the pretraining bundle's, and, with
    ``network``, weights of that network's shapes.

    Both bundles share ``network_def``, so the pretraining bundle's ``model.pt`` loads into the segmentation
    network and yields a meaningless Dice. It is recognised by its training state beside it
    (:data:`PRETRAINING_STATE_FILENAME`) or, for a full pretraining checkpoint, by its task heads. A model trained
    with other ``label_names`` (or ``in_channels``) would stop the run with torch's list of mismatched tensors; this
    says which settings to pass.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: ``path`` holds pretraining weights, or tensors of other shapes than ``network``'s.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no segmentation weights at {path}; train first (configs/train.json), or pass "
                                "--ckpt_dir with the folder holding the fine-tuned model.pt.")
    refuse = (f"{path} holds weights of the pretext_pretraining bundle, not a segmentation model; fine-tune them "
              f"first (configs/train.json --use_pretrained true --pretrained_path {path}), then evaluate that run's "
              "model.pt.")
    if os.path.isfile(os.path.join(os.path.dirname(path), PRETRAINING_STATE_FILENAME)):
        raise ValueError(refuse)
    checkpoint = load_checkpoint(path)
    if "heads" in checkpoint:
        raise ValueError(refuse)
    if network is not None:
        expected = network.state_dict()
        differ = [k for k, v in checkpoint["model"].items() if k in expected and v.shape != expected[k].shape]
        if differ:
            classes = f" ({len(label_names)} classes: {', '.join(label_names)})" if label_names else ""
            raise ValueError(
                f"{path} was trained for another network: {len(differ)} tensors differ in shape (e.g. {differ[0]}: "
                f"{tuple(checkpoint['model'][differ[0]].shape)} in the file, {tuple(expected[differ[0]].shape)} "
                f"here). Pass the settings it was trained with: label_names{classes}, in_channels, network_def "
                "(--demo true for a model trained on the demo phantom).")
    return path
