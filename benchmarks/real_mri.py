"""The real brain MRI of ``../shared/data``: IXI subjects, the split rule, and the real-MRI pretraining pool.

The rule, fixed before any ``eval`` subject was looked at (and never changed by what ``eval`` shows):

- ``ixi_dlmuse/eval`` (40 subjects) is evaluation only: never pretrained on, fine-tuned on or used to choose.
- ``ixi_dlmuse/train`` (110) is split by the SHA-256 of the subject id: the :data:`TUNING_SUBJECTS` lowest are
  **tuning** subjects (pretext validation of the pool, fine-tuning budgets, schedules; never pretrained or
  fine-tuned on); the rest are the **labelled pool**, from which fold ``f`` draws its labelled subjects in the
  order of ``sha256(f"{f}:{subject}")``, so that the 1 labelled subject of a fold is among its 2, 4 and 8.
- The real pretraining pool is every OpenNeuro T1w, the labelled-pool IXI images (their labels unused), the BraTS
  ``train`` channels and the human templates; its pretext validation volumes are the IXI tuning subjects and the
  :data:`HELD_OUT_OPENNEURO` lowest-hash OpenNeuro subjects of each dataset, which the pool then leaves out.

``python benchmarks/real_mri.py`` writes the pool datalists to ``sample_configs/`` (paths relative to the file).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TUNING_SUBJECTS = 8
HELD_OUT_OPENNEURO = 2
TEMPLATES = ("ch2better.nii.gz", "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
BRATS_CHANNELS = ("Flair_subtrMeanDivStd.nii.gz", "T1c_subtrMeanDivStd.nii.gz")


def _hash_order(names, salt: str = "") -> list[str]:
    return sorted(names, key=lambda name: hashlib.sha256(f"{salt}{name}".encode()).hexdigest())


def ixi_subjects(folder: str | Path) -> list[dict]:
    """The subjects of an IXI-DLMUSE folder (``<subject>/<subject>_T1.nii.gz`` with ``_T1_DLMUSE.nii.gz``),
    sorted by name; a clear error when the folder holds none."""
    entries = []
    for image in sorted(glob.glob(str(Path(folder) / "*" / "*_T1.nii.gz"))):
        label = image[: -len(".nii.gz")] + "_DLMUSE.nii.gz"
        if not os.path.isfile(label):
            raise SystemExit(f"{image} has no label map {label}: an IXI folder holds <subject>/<subject>_T1.nii.gz "
                             "and <subject>_T1_DLMUSE.nii.gz on the same grid.")
        entries.append({"name": os.path.basename(os.path.dirname(image)), "image": image, "label": label})
    if not entries:
        raise SystemExit(f"no <subject>/<subject>_T1.nii.gz under {folder}: give a folder laid out like "
                         "../shared/data/ixi_dlmuse/eval.")
    return entries


def split_ixi_train(data_root: str | Path) -> tuple[list[dict], list[dict]]:
    """``(tuning, labelled_pool)`` of ``ixi_dlmuse/train`` by the module's rule."""
    subjects = {s["name"]: s for s in ixi_subjects(Path(data_root) / "ixi_dlmuse" / "train")}
    order = _hash_order(subjects)
    tuning = sorted(order[:TUNING_SUBJECTS])
    return [subjects[n] for n in tuning], [subjects[n] for n in sorted(order[TUNING_SUBJECTS:])]


def labelled_draw(labelled_pool: list[dict], fold: int, count: int) -> list[dict]:
    """The ``count`` labelled subjects of ``fold``: nested, so a fold's 1 labelled subject is among its 2, 4, 8."""
    if count > len(labelled_pool):
        raise SystemExit(f"{count} labelled subjects asked for, the labelled pool holds {len(labelled_pool)}.")
    by_name = {s["name"]: s for s in labelled_pool}
    return [by_name[n] for n in _hash_order(by_name, salt=f"{fold}:")[:count]]


def _openneuro(data_root: Path) -> dict[str, list[str]]:
    return {os.path.basename(d): sorted(glob.glob(os.path.join(d, "sub-*_T1w.nii.gz")))
            for d in sorted(glob.glob(str(data_root / "openneuro_t1w" / "ds*")))}


def real_pool(data_root: str | Path, include_ixi: bool = True) -> dict[str, list[dict]]:
    """The real-MRI pretraining pool as a datalist ``{"training": [...], "validation": [...]}`` of ``image``
    entries. ``include_ixi=False`` is the transfer ablation: OpenNeuro, BraTS and templates only (its pretext
    validation keeps the held-out OpenNeuro subjects and drops IXI)."""
    data_root = Path(data_root)
    tuning, labelled_pool = split_ixi_train(data_root)
    training, validation = [], []
    for images in _openneuro(data_root).values():
        held_out = set(_hash_order(images)[:HELD_OUT_OPENNEURO])
        training += [{"image": p} for p in images if p not in held_out]
        validation += [{"image": p} for p in sorted(held_out)]
    if include_ixi:
        training += [{"image": s["image"]} for s in labelled_pool]
        validation += [{"image": s["image"]} for s in tuning]
    for subject in sorted(glob.glob(str(data_root / "brats_deepmedic" / "train" / "brats_*"))):
        training += [{"image": os.path.join(subject, channel)} for channel in BRATS_CHANNELS]
    training += [{"image": str(data_root / "brain_atlas" / t)} for t in TEMPLATES
                 if (data_root / "brain_atlas" / t).exists()]
    return {"training": training, "validation": validation}


def write_pool_datalist(path: Path, data_root: Path, include_ixi: bool) -> None:
    pool = real_pool(data_root, include_ixi)
    relative = {key: [{"image": os.path.relpath(e["image"], path.parent)} for e in entries]
                for key, entries in pool.items()}
    what = ("OpenNeuro T1w (ds002748, ds000011), IXI train images outside the tuning subjects (labels unused), "
            if include_ixi else "Transfer ablation without IXI: OpenNeuro T1w (ds002748, ds000011), ")
    description = (f"Real brain-MRI pretraining pool from ../shared/data, written by benchmarks/real_mri.py "
                   f"(paths relative to this file). training: {what}the BraTS train FLAIR and T1c channels as "
                   "single-channel scans, and the Colin27 and MNI152 2009a templates; no synthesised image. "
                   f"validation (pretext scores only, never trained on): {HELD_OUT_OPENNEURO} held-out OpenNeuro "
                   "subjects per dataset" + (f" and the {TUNING_SUBJECTS} IXI train tuning subjects" if include_ixi
                                             else "") + ". No IXI eval subject is in either list.")
    path.write_text(json.dumps({"description": description, **relative}, indent=1) + "\n")
    print(f"{path}: {len(relative['training'])} training, {len(relative['validation'])} validation volumes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    args = parser.parse_args()
    configs = REPO / "sample_configs"
    write_pool_datalist(configs / "brain_mri_real_pool_datalist.json", Path(args.data_root), include_ixi=True)
    write_pool_datalist(configs / "brain_mri_real_pool_no_ixi_datalist.json", Path(args.data_root), include_ixi=False)


if __name__ == "__main__":
    main()
