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
import re
import tempfile
from typing import Any

import torch

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "CHECKPOINT_PATTERN"]

CHECKPOINT_PATTERN = "checkpoint_iter{iteration:08d}.pt"
_ITERATION = re.compile(r"checkpoint_iter(\d+)\.pt$")


def save_checkpoint(obj: Any, path: str) -> str:
    """Save ``obj`` to ``path`` atomically: a temporary file in the same folder, flushed, then renamed.

    A crash at any point leaves either the previous file or the complete new one, never a partial file.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path


def load_checkpoint(path: str, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; a bare ``state_dict`` is wrapped as ``{"model": ...}``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path}.")
    data = torch.load(path, map_location=map_location, weights_only=True)
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
