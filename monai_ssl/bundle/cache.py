"""Where the pretraining pool is cached: in memory (MONAI's ``CacheDataset``) while the preprocessed volumes fit
comfortably, on disk (``PersistentDataset``) beyond that; the pool's size is estimated from the image headers (or
from a ``monai-ssl index`` datalist's ``shape`` and ``spacing``), never by loading the images."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from monai_ssl.bundle.data_sources import IMAGE_KEY, LABEL_MAP_KEY

__all__ = ["CACHE_MODES", "MEMORY_FRACTION", "available_memory", "cached_bytes", "choose_cache"]

logger = logging.getLogger(__name__)

CACHE_MODES = ("auto", "memory", "disk", "none")
# the share of the available memory that the processes of one node may fill with cached volumes: the rest is for
# the loader workers' samples, the model and the system
MEMORY_FRACTION = 0.5
_BYTES = {IMAGE_KEY: 4, LABEL_MAP_KEY: 2}  # float32 images, int16 label maps once preprocessed


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``, else the free pages); ``None`` when
    the system does not say."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _volume_bytes(path: str, spacing: Sequence[float] | None, itemsize: int,
                  known: tuple[Sequence[int], Sequence[float]] | None) -> tuple[int, bool]:
    """Bytes of one preprocessed file and whether its header said so (else its size on disk, times 4, stands in)."""
    if known is None:
        try:
            import nibabel as nib

            header = nib.load(path).header
            known = header.get_data_shape(), header.get_zooms()
        except Exception:  # noqa: BLE001 - DICOM folders and other formats: estimated from their size on disk
            size = sum(os.path.getsize(os.path.join(d, f)) for d, _, names in os.walk(path) for f in names) \
                if os.path.isdir(path) else os.path.getsize(path)
            return 4 * size, False
    shape, zooms = list(known[0]), list(known[1])
    channels = math.prod(shape[3:]) if len(shape) > 3 else 1
    scale = [z / s for z, s in zip(zooms[:3], spacing)] if spacing is not None else [1.0] * 3
    return int(math.prod(n * f for n, f in zip(shape[:3], scale)) * channels * itemsize), True


def cached_bytes(entries: Sequence[Mapping[str, Any]], spacing: Sequence[float] | None) -> tuple[int, int]:
    """Estimated bytes of the entries' volumes after loading and resampling to ``spacing``, and how many entries
    had no readable header (their size on disk, times 4, was counted instead)."""
    total, guessed = 0, 0
    for entry in entries:
        key = IMAGE_KEY if IMAGE_KEY in entry else LABEL_MAP_KEY
        paths = entry[key] if isinstance(entry[key], (list, tuple)) else [entry[key]]
        # a `monai-ssl index` datalist gives each volume's shape and spacing: no file is opened
        known = (entry["shape"], entry["spacing"]) if len(paths) == 1 and "shape" in entry and "spacing" in entry \
            else None
        for path in paths:
            size, from_header = _volume_bytes(str(path), spacing, _BYTES[key], known)
            total += size
            guessed += not from_header
    return total, guessed


def choose_cache(entries: Sequence[Mapping[str, Any]], spacing: Sequence[float] | None,
                 memory_fraction: float = MEMORY_FRACTION) -> str:
    """``"memory"`` when this node's processes' cached volumes take at most ``memory_fraction`` of the available
    memory, else ``"disk"``; logged with the figures it was decided on.

    ``entries`` are this process's share of the pool (each rank caches its own partition); the processes of one node
    (``$LOCAL_WORLD_SIZE``, set by ``torchrun``) are assumed to hold shares of the same size.
    """
    if not 0 < memory_fraction <= 1:
        raise ValueError(f"memory_fraction must be in (0, 1], got {memory_fraction}.")
    size, guessed = cached_bytes(entries, spacing)
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    available = available_memory()
    guess = f"; {guessed} of them estimated from their size on disk (no readable header)" if guessed else ""
    if available is None:
        logger.info("cache 'auto': disk, since the system does not report its available memory (%d volumes, about "
                    "%.1f GB%s); set cache to 'memory' to keep them in memory", len(entries), size / 1e9, guess)
        return "disk"
    choice = "memory" if size * processes <= memory_fraction * available else "disk"
    logger.info("cache 'auto': %s: %d volumes, about %.1f GB preprocessed%s, x %d process(es) on this node, against "
                "%.0f %% of the %.1f GB available", choice, len(entries), size / 1e9, guess, processes,
                100 * memory_fraction, available / 1e9)
    return choice
