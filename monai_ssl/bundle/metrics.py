"""Metrics of the segmentation bundle: Dice per class and per group of labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from monai.handlers import MeanDice, from_engine

__all__ = ["per_class_dice"]


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
