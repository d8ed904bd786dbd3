"""Checkpoint files: written atomically, read with ``torch.load(weights_only=True)``.

Format of a monai-ssl checkpoint (a dict):

- ``"model"``: the wrapped network's ``state_dict()`` with MONAI's own key names, so that
  ``UNet(...).load_state_dict(ckpt["model"])`` works for the same architecture;
- ``"heads"``: the task heads' weights;
- ``"config"``: network class and arguments, tasks and their arguments, loss weights;
- ``"optimizer"``, ``"scheduler"``: their ``state_dict()`` (``None`` where absent), for resuming;
- ``"trainer"``: ``{"epoch": ..., "iteration": ...}``;
- ``"monai_ssl_version"``.
"""

from __future__ import annotations

import glob
import os
import pickle
import re
import zipfile
from typing import Any

import torch

from monai_ssl.utils import atomic_path

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "export_weights", "CHECKPOINT_PATTERN",
           "PRETRAINING_STATE_FILENAME"]

CHECKPOINT_PATTERN = "checkpoint_iter{iteration:08d}.pt"
# a pretraining run's final training state, beside its plain network weights (model.pt)
PRETRAINING_STATE_FILENAME = "pretext_checkpoint.pt"
_ITERATION = re.compile(r"checkpoint_iter(\d+)\.pt$")


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


def latest_checkpoint(directory: str) -> str | None:
    """The periodic checkpoint with the highest iteration in ``directory``, or ``None``."""
    found = [(int(m.group(1)), p) for p in glob.glob(os.path.join(directory, "checkpoint_iter*.pt"))
             if (m := _ITERATION.search(p))]
    return max(found)[1] if found else None


def export_weights(checkpoint_path: str, model_path: str, continuation_path: str | None = None) -> dict[str, str]:
    """Export a pretraining checkpoint the way Model Zoo bundles ship weights.

    ``model_path`` receives the network's plain ``state_dict`` (float32), what ``network_def`` loads with no
    ``key_in_ckpt`` and what :func:`monai_ssl.load_pretrained` takes. ``continuation_path``, if given, receives
    the network and heads in float16 with the config and trainer counters but no optimizer state: a compact file
    from which a run can continue (``PretextCheckpointLoader`` restores float32 weights from it; the optimizer
    starts afresh).

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
                        "config": checkpoint.get("config", {}), "trainer": checkpoint.get("trainer", {}),
                        "optimizer": None, "scheduler": None}
        written["continuation"] = save_checkpoint(continuation, continuation_path)
    return written
