"""What the segmentation bundle segments unless told otherwise: the classes of its shipped model."""

from __future__ import annotations

from typing import Any

from monai_ssl.data.muse import MUSE_COARSE, MUSE_LATERAL_PAIRS, label_names, label_sources
from monai_ssl.data.phantom import PHANTOM_LABEL_NAMES

__all__ = ["default_labels"]


def default_labels(demo: bool = False) -> dict[str, Any]:
    """The segmentation bundle's default ``label_names``, ``label_sources`` and ``lateral_pairs``.

    Those of the shipped model: the 8 coarse MUSE brain regions (:data:`monai_ssl.data.muse.MUSE_COARSE`) read from
    DLMUSE label files (atlas ids, left and right told apart); with ``demo``, the demo phantom's classes, whose label
    files hold the class values. Labels of your own: pass ``label_names`` and, unless your label files are DLMUSE
    maps, ``label_sources null`` and ``lateral_pairs null`` (or your atlas's).
    """
    if demo:
        return {"label_names": dict(PHANTOM_LABEL_NAMES), "label_sources": None, "lateral_pairs": None}
    return {"label_names": label_names(MUSE_COARSE), "label_sources": label_sources(MUSE_COARSE),
            "lateral_pairs": [list(pair) for pair in MUSE_LATERAL_PAIRS]}
