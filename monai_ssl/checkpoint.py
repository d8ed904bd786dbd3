"""Checkpoint files: written atomically, read with ``torch.load(weights_only=True)``.

A pretraining checkpoint is what MONAI's ``CheckpointSaver`` writes from
:py:func:`monai_ssl.engine.pretext_save_dict` (a dict):

- ``"model"``: the wrapped network's ``state_dict()`` with MONAI's own key names, so that
  ``UNet(...).load_state_dict(ckpt["model"])`` works for the same architecture;
- ``"heads"``: the task heads' weights;
- ``"config"``: network class and arguments, tasks and their arguments, loss weights;
- ``"optimizer"`` (and ``"scheduler"`` if one is used): their ``state_dict()``, for resuming;
- ``"trainer"``: Ignite's engine state, ``{"epoch_length", "iteration", "max_epochs"}``;
- ``"random_states"``: the random streams, so that a resumed run continues them.

A continuation exported by :func:`export_weights` holds only the first four (no optimizer or random state).
"""

from __future__ import annotations

import glob
import logging
import os
import pickle
import zipfile
from collections.abc import Mapping
from typing import Any

import torch

from monai_ssl.utils import atomic_path

__all__ = ["save_checkpoint", "load_checkpoint", "checkpoint_iteration", "resume_checkpoint", "resumable_objects",
           "export_weights", "PRETRAINING_STATE_FILENAME"]

logger = logging.getLogger(__name__)

# a pretraining run's final training state, beside its plain network weights (model.pt)
PRETRAINING_STATE_FILENAME = "pretext_checkpoint.pt"


def save_checkpoint(obj: Any, path: str) -> str:
    """Save ``obj`` to ``path`` atomically (:func:`monai_ssl.utils.atomic_path`): a crash at any point leaves
    either the previous file or the complete new one, never a partial file."""
    with atomic_path(path, suffix=".pt") as temporary, open(temporary, "wb") as f:
        torch.save(obj, f)
    return path


def load_checkpoint(path: str, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; a bare ``state_dict`` is wrapped as ``{"model": ...}``.

    A file that is not a readable checkpoint (empty, truncated, another format, or torch's pre-1.6 legacy format)
    raises a ``ValueError`` naming it; one holding objects other than tensors and plain containers raises a
    ``pickle.UnpicklingError`` that does not suggest ``weights_only=False``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path}.")
    unreadable = f"{path} is not a readable PyTorch checkpoint (truncated or not a checkpoint)."
    if not zipfile.is_zipfile(path):  # torch.save has written zip archives since torch 1.6
        raise ValueError(unreadable)
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's own message suggests weights_only=False, which would run whatever code the file holds
        raise pickle.UnpicklingError(
            f"{path} holds objects other than tensors and plain containers; it is refused because loading it could "
            "run code. Re-save the weights as a state_dict."
        ) from error
    except (RuntimeError, EOFError, OSError) as error:
        raise ValueError(unreadable) from error
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a checkpoint dict or a state_dict (got {type(data).__name__}).")
    if "model" not in data:
        if all(isinstance(v, torch.Tensor) for v in data.values()):
            return {"model": data}
        raise ValueError(f"{path} has no 'model' entry; keys: {sorted(data)[:10]}.")
    return data


def checkpoint_iteration(path: str) -> int:
    """The trainer iteration a checkpoint file was saved at (0 for plain weights or a state without a trainer)."""
    return int(load_checkpoint(path).get("trainer", {}).get("iteration", 0))


def resume_checkpoint(path: str) -> str | None:
    """The checkpoint a resumed pretraining run continues from.

    ``path`` itself if it is a checkpoint file (a missing or unreadable file is an error naming it). In a folder,
    of its periodic checkpoints (``checkpoint_*.pt``, MONAI's ``CheckpointSaver`` names) and its final training
    state (``pretext_checkpoint.pt``), the one at the highest trainer iteration. ``None`` for a folder with
    neither, or one that does not exist yet (a first run with ``--resume true``): training starts afresh (logged).
    """
    if os.path.isfile(path) or (os.path.splitext(path)[1] and not os.path.isdir(path)):
        load_checkpoint(path)  # a clear error now rather than torch's in the middle of start-up
        return path
    candidates = sorted(glob.glob(os.path.join(path, "checkpoint_*.pt")))
    final_state = os.path.join(path, PRETRAINING_STATE_FILENAME)
    if os.path.isfile(final_state):
        candidates.append(final_state)
    if not candidates:
        logger.info("no checkpoint in %s: training starts afresh", path)
        return None
    # on a tie (the final state saved at the last periodic checkpoint's iteration), the final state
    return max(candidates, key=lambda candidate: (checkpoint_iteration(candidate), candidate == final_state))


def resumable_objects(save_dict: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The entries of ``save_dict`` that the checkpoint at ``path`` holds, for MONAI's ``CheckpointLoader``
    (which fails on any absent key): an exported continuation has no optimizer or random state, and those start
    afresh (logged)."""
    checkpoint = load_checkpoint(path)
    absent = [key for key in save_dict if checkpoint.get(key) is None]
    if absent:
        logger.warning("%s holds no %s: %s afresh", path, ", ".join(absent),
                       "it starts" if len(absent) == 1 else "they start")
    return {key: value for key, value in save_dict.items() if key not in absent}


def _engine_state(trainer: Mapping[str, Any]) -> dict[str, int]:
    """Ignite's engine state (``epoch_length``, ``iteration``, ``max_epochs``), also from the ``{"epoch",
    "iteration"}`` of checkpoints written before monai-ssl used MONAI's ``CheckpointSaver``."""
    if "epoch_length" in trainer:
        return {k: int(trainer[k]) for k in ("epoch_length", "iteration", "max_epochs") if k in trainer}
    epoch, iteration = int(trainer["epoch"]), int(trainer["iteration"])
    if epoch < 1 or iteration % epoch:
        raise ValueError(f"cannot tell the epoch length from epoch {epoch} and iteration {iteration}.")
    return {"epoch_length": iteration // epoch, "iteration": iteration, "max_epochs": epoch}


def export_weights(checkpoint_path: str, model_path: str, continuation_path: str | None = None) -> dict[str, str]:
    """Export a pretraining checkpoint the way Model Zoo bundles ship weights.

    ``model_path`` receives the network's plain ``state_dict`` (float32), what ``network_def`` loads with no
    ``key_in_ckpt`` and what :func:`monai_ssl.load_pretrained` takes. ``continuation_path``, if given, receives
    the network and heads in float16 with the config and trainer counters but no optimizer or random state: a
    compact file from which a run can continue (MONAI's ``CheckpointLoader`` restores float32 weights from it;
    the optimizer and random streams start afresh).

    Returns:
        the written paths by kind.
    """
    checkpoint = load_checkpoint(checkpoint_path)
    written = {"model": save_checkpoint({k: v.float() for k, v in checkpoint["model"].items()}, model_path)}
    if continuation_path:
        half = lambda state: {k: v.half() if v.is_floating_point() else v for k, v in state.items()}  # noqa: E731
        if "heads" not in checkpoint:
            raise ValueError(f"{checkpoint_path} has no task heads; a continuation needs a pretraining checkpoint.")
        continuation = {"model": half(checkpoint["model"]), "heads": half(checkpoint["heads"]),
                        "config": checkpoint.get("config", {}), "trainer": _engine_state(checkpoint["trainer"])}
        written["continuation"] = save_checkpoint(continuation, continuation_path)
    return written
