"""Label-efficiency benchmark on real MRI: does a pretrained encoder help when 1, 2, 4 or 8 subjects are labelled?

It drives the segmentation bundle through ``ConfigWorkflow`` (the code users run) and adds no training path of its
own. Every arm fine-tunes the same UNet (the bundles' ``network_def``) with the same iteration budget, schedule and
augmentation; arms differ only in their initial weights, or, for the ``+synthseg`` arms, in SynthSeg-style
synthesis of a share of the training crops from the labelled subjects' own label maps (domain randomisation, the
usual scarce-label baseline without pretraining; at the cpu preset's budget it falls under plain scratch), or, for
the ``+meanteacher`` arms, in a mean teacher on the unlabelled real pool (semi-supervised fine-tuning). The
*final* model is evaluated on subjects that were never pretrained on, fine-tuned on or used to choose anything.

Datasets (``--data-root``, laid out like ``../shared/data``):

1. ``ixi_coarse`` and ``ixi_fine``: real IXI T1 at 2 mm with DLMUSE labels (automated: a silver standard) grouped
   into 8 tissue classes or 49 structures (:mod:`monai_ssl.data.muse`). Fold ``f`` labels ``N`` subjects of the
   ``ixi_dlmuse/train`` labelled pool, drawn by the rule of ``benchmarks/real_mri.py`` (nested: a fold's 1 subject
   is among its 2, 4 and 8); evaluation on every subject of ``--ixi-eval-dir`` (default ``ixi_dlmuse/eval``).
2. ``tumour``: ``brats_deepmedic``, FLAIR + T1c. Fine-tuning on one of ``--brats-train-subjects`` (one fold each),
   evaluation on ``--brats-eval-subjects`` (default: the ``validation`` folder). Dice of whole tumour (labels 1-4),
   tumour core (1, 3, 4) and enhancing tumour (4).
3. ``synthetic_regions`` (an ablation, with its caveat: the images are synthesised from label maps, so every
   intensity edge lies on a label boundary): T1-like images from the anatomies of ``synthseg_label_maps``, 6 regions.

Arms: ``scratch``; a pretrained arm per ``--pretrained NAME=PATH[,PATH...]`` (one path per fine-tuning seed, or one
for all; default ``all`` = the encoder shipped in ``bundles/pretext_pretraining/models/model.pt``); ``--pretrain``
pretrains the arms named after a task mix (``all`` or a registered task) through the pretraining bundle, with its
current task settings, on the real pool of ``benchmarks/real_mri.py`` (never an evaluation subject). Any arm
``NAME+synthseg`` is arm ``NAME`` with SynthSeg-style synthesis (IXI datasets only); any arm ``NAME+meanteacher`` is
arm ``NAME`` with the segmentation bundle's ``semi_supervised`` mean teacher on the real pool's training scans (no
evaluation subject; the labelled subjects' own images are among them; single-channel datasets only). Pairs are
(fold, seed).

Statistics: for each arm against scratch, the mean paired difference with its 95 % t interval (df = n - 1) over the
(fold, seed) pairs, and a paired bootstrap over evaluation subjects; "helps" only when the t interval excludes 0.

Budgets come from ``--choose-budget``: scratch on one labelled subject, validated on the IXI tuning subjects (train
subjects that are neither labelled nor evaluated). Other settings are chosen with ``--tune``: any arms, validated on
the tuning subjects instead of the evaluation subjects, into a results folder of its own (the real pool holds no
tuning subject's scan, so neither the encoder nor the mean teacher has seen them). Finished runs are cached under a
hash of everything they depend on: the datalist's files, the settings, the bundle config, the ``monai_ssl`` sources
and the torch/MONAI versions.

Levers: ``--roi X Y Z`` fine-tunes every arm on larger (or smaller) crops, with the same sliding window at
evaluation (input resolution); ``--fine-tune-overrides`` sets any other segmentation-bundle setting for every arm.

Run: ``python benchmarks/label_efficiency.py --preset cpu``. Results: ``benchmarks/results/label_efficiency.md``,
``.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import glob
import hashlib
import itertools
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from monai_ssl import list_tasks  # noqa: E402
from monai_ssl.data.muse import (  # noqa: E402
    MUSE_GROUPINGS,
    MUSE_LATERAL_PAIRS,
    label_names as muse_label_names,
    label_sources,
)
from monai_ssl.data.synthesis import BRAIN_REGIONS, group_labels, synthesize_t1  # noqa: E402
from monai_ssl.demo import find_bundles_dir, run_bundle  # noqa: E402
from monai_ssl.utils import atomic_path  # noqa: E402
from real_mri import ixi_subjects, labelled_draw, real_pool, split_ixi_train  # noqa: E402

# the "all" mix: the shipped encoder's four tasks; every registered task is also a mix of its own for --pretrain
TASKS = ["jigsaw", "rotation", "colorization", "relative_position"]
MIXES = ["all", *list_tasks()]
SYNTHSEG = "+synthseg"
MEAN_TEACHER = "+meanteacher"
#: what an arm's name may add to a base arm (``scratch``, a pretrained or a pretrained-here arm), in this order
VARIANTS = (SYNTHSEG, MEAN_TEACHER)
# share of training crops synthesised from their label map in the +synthseg arms, the scan kept around the label
# map: chosen with benchmarks/synthesis_probe.py on the IXI tuning subjects (0.1 of 0.1, 0.25 and 0.5, by its rule)
SYNTHESIS_PROB = 0.1
DATASETS = ["ixi_coarse", "ixi_fine", "tumour", "synthetic_regions"]
TUMOUR_REGIONS = {"whole_tumour": [1, 2, 3, 4], "tumour_core": [1, 3, 4], "enhancing_tumour": [4]}
SHIPPED = REPO / "bundles" / "pretext_pretraining" / "models" / "model.pt"
PRESETS = {
    # 2 cores. The network is the bundles' default (the shipped encoder's); fine-tuning crops of 48^3 at 2 mm keep
    # an iteration near 0.2 s. Budgets per dataset from --choose-budget, on training subjects only: IXI coarse
    # 1,040 (scratch, 1 labelled, 8 tuning subjects: within 0.02 of its best 0.817 from 1,040 of 1,200 iterations;
    # results/fine_tune_budget_cpu.md); IXI fine takes the coarse budget until its own probe has run; synthetic
    # regions 800 and tumour 320 (results/label_efficiency_synthetic_regions/fine_tune_budget_cpu.md). IXI is
    # evaluated 4 times per run (every quarter of the budget): 40 subjects.
    "cpu": {"spacing": [2.0, 2.0, 2.0], "roi": [48, 48, 48], "channels": [16, 32, 64, 128], "res_units": 2,
            "fine_tune_iterations": {"ixi_coarse": 1040, "ixi_fine": 1040, "synthetic_regions": 800, "tumour": 320},
            "curve_points": {"ixi_coarse": 4, "ixi_fine": 4, "synthetic_regions": 10, "tumour": 4},
            "samples": 2, "batch": 2, "label_counts": [1, 2, 4, 8], "folds": [0, 1, 2], "seeds": [0, 1, 2],
            "threads": 2, "pretrain_epochs": 6, "pretrain_epoch_length": 10, "pretrain_roi": [64, 64, 64]},
    "gpu": {"spacing": [2.0, 2.0, 2.0], "roi": [64, 64, 64], "channels": [16, 32, 64, 128], "res_units": 2,
            "fine_tune_iterations": {"ixi_coarse": 2000, "ixi_fine": 2000, "synthetic_regions": 2000,
                                     "tumour": 1000},
            "curve_points": {"ixi_coarse": 10, "ixi_fine": 10, "synthetic_regions": 10, "tumour": 10},
            "samples": 4, "batch": 2, "label_counts": [1, 2, 4, 8], "folds": [0, 1, 2], "seeds": [0, 1, 2],
            "threads": 8, "pretrain_epochs": 30, "pretrain_epoch_length": 100, "pretrain_roi": [64, 64, 64]},
    # a minute-long run of every step, for the tests
    "smoke": {"spacing": [6.0, 6.0, 6.0], "roi": [32, 32, 32], "channels": [8, 16, 32], "res_units": 1,
              "fine_tune_iterations": {"ixi_coarse": 2, "ixi_fine": 2, "synthetic_regions": 2, "tumour": 2},
              "curve_points": {"ixi_coarse": 2, "ixi_fine": 2, "synthetic_regions": 2, "tumour": 2},
              "samples": 1, "batch": 1, "label_counts": [1], "folds": [0], "seeds": [0], "threads": 2,
              "pretrain_epochs": 1, "pretrain_epoch_length": 1, "pretrain_roi": [32, 32, 32]},
}
# --pretrain on 32^3 crops (the smoke preset): the pretraining bundle's task settings are for 64^3
SMALL_TASK_ARGS = {"jigsaw": {"grid": [2, 2, 2], "num_permutations": 10, "gap": 2, "jitter": 1},
                   "relative_position": {"patch_size": [12, 12, 12], "gap": 1, "jitter": 1},
                   "contrastive": {"view_size": [24, 24, 24]}, "exemplar": {"view_size": [24, 24, 24]},
                   "cpc": {"patch_size": [12, 12, 12], "grid": [4, 4, 4]}}


# ---- data ----------------------------------------------------------------------------------------------------
def brats_subjects(data_root: Path, names: list[str]) -> list[dict]:
    folders = {os.path.basename(f): f for f in glob.glob(str(data_root / "brats_deepmedic" / "*" / "brats_*"))}
    missing = [n for n in names if n not in folders]
    if missing:
        raise SystemExit(f"BraTS subjects {missing} are not under {data_root / 'brats_deepmedic'}; found "
                         f"{sorted(folders)}.")
    channels = ("Flair_subtrMeanDivStd.nii.gz", "T1c_subtrMeanDivStd.nii.gz")
    return [{"name": n, "image": [f"{folders[n]}/{channel}" for channel in channels],
             "label": f"{folders[n]}/OTMultiClass.nii.gz"} for n in names]


def default_brats_split(data_root: Path) -> tuple[list[str], list[str]]:
    def names(split: str) -> list[str]:
        return sorted(os.path.basename(f) for f in glob.glob(str(data_root / "brats_deepmedic" / split / "brats_*")))

    return names("train"), names("validation")


def synthesise_regions(data_root: Path, work: Path, subjects: list[int]) -> dict[int, dict]:
    """Synthesised T1-like images and grouped region labels at 2 mm, written once into ``work``."""
    out = work / "regions_data"
    out.mkdir(parents=True, exist_ok=True)
    entries = {}
    for subject in subjects:
        image_path, label_path = out / f"subject{subject:02d}_t1.nii.gz", out / f"subject{subject:02d}_regions.nii.gz"
        if not image_path.exists():
            source = nib.load(str(data_root / "synthseg_label_maps" / f"training_seg_{subject:02d}.nii.gz"))
            labels = np.asarray(source.dataobj).astype(np.int32)[::2, ::2, ::2]
            affine = source.affine @ np.diag([2.0, 2.0, 2.0, 1.0])
            nib.save(nib.Nifti1Image(group_labels(labels), affine), str(label_path))
            nib.save(nib.Nifti1Image(synthesize_t1(labels, seed=1000 + subject, spacing=2.0), affine), str(image_path))
        entries[subject] = {"name": f"subject{subject:02d}", "image": str(image_path), "label": str(label_path)}
    return entries


def datalist_text(**lists) -> str:
    """A MONAI datalist of ``lists`` (``training=[...]``, ...) without the entries' names."""
    return json.dumps({k: [{kk: vv for kk, vv in e.items() if kk != "name"} for e in v] for k, v in lists.items()},
                      indent=1)


def write_datalist(path: Path, **lists) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(datalist_text(**lists))
    return str(path)


# ---- cache keys ----------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def file_digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """The ``monai_ssl`` sources and the torch and MONAI versions: a change to any of them is a new run."""
    import monai
    import torch

    digest = hashlib.sha256(f"torch {torch.__version__} monai {monai.__version__}".encode())
    for path in sorted((REPO / "monai_ssl").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def run_key(*parts, files: list[str] = ()) -> str:
    """A run's cache key: its settings, the digests of the files it reads, and :func:`code_digest`."""
    return hashlib.sha256(json.dumps([parts, [file_digest(f) for f in files], code_digest()], sort_keys=True,
                                     default=str).encode()).hexdigest()[:16]


def entry_files(entries: list[dict]) -> list[str]:
    return [p for e in entries for key in ("image", "label") if key in e
            for p in (e[key] if isinstance(e[key], list) else [e[key]])]


# ---- runs ----------------------------------------------------------------------------------------------------
def network_overrides(preset: dict, in_channels: int) -> dict:
    return {"in_channels": in_channels, "network_def#channels": preset["channels"],
            "network_def#strides": [2] * (len(preset["channels"]) - 1),
            "network_def#num_res_units": preset["res_units"], "spacing": preset["spacing"], "num_workers": 0}


def network_settings(overrides: dict) -> dict:
    """The ``network_def#`` settings among segmentation-bundle ``overrides``: the pretraining bundle builds the
    same network from the same keys."""
    return {key: value for key, value in overrides.items() if key.startswith("network_def#")}


def downsampling(preset: dict, overrides: dict) -> np.ndarray:
    """Per axis, the factor by which the network (the preset's, or one set by ``overrides``) downsamples a crop:
    the product of its strides, each an int or one per axis."""
    strides = (network_overrides(preset, 1) | overrides)["network_def#strides"]
    return np.prod([np.broadcast_to(stride, 3) for stride in strides], axis=0).astype(int)


def pretrain(bundles: Path, work: Path, mix: str, seed: int, pool: list[dict], preset: dict,
             network: dict) -> tuple[str, int]:
    """Pretrain the task mix ``mix`` with one seed through the pretraining bundle, with the bundle's own task
    settings (smaller ones for crops under 64^3), on the preset's network or the one ``network``
    (:func:`network_settings`) sets; cached. Returns the model and the optimizer steps the non-finite-gradient
    guard skipped."""
    settings = {"tasks": TASKS if mix == "all" else [mix],
                "max_epochs": preset["pretrain_epochs"], "epoch_length": preset["pretrain_epoch_length"],
                "samples_per_volume": preset["samples"],
                # two volumes at least: the contrastive and exemplar tasks contrast a volume with the others
                "batch_size": max(2, preset["batch"]), "seed": seed,
                "roi_size": preset["pretrain_roi"], **network_overrides(preset, 1)} | network
    if preset["pretrain_roi"][0] < 64:
        settings["task_args"] = SMALL_TASK_ARGS
    config_file = bundles / "pretext_pretraining" / "configs" / "train.json"
    key = run_key(pool, settings, file_digest(str(config_file)), files=entry_files(pool))
    output = work / "pretrain" / f"{mix}_seed{seed}_{key}"
    model, finished = output / "models" / "model.pt", output / "finished.json"
    # not model.pt alone: MONAI's CheckpointSaver also writes its final file when a run stops with an exception
    if not finished.exists():
        workflow = run_bundle(str(config_file),
                              datalist=write_datalist(work / "lists" / f"pool_{key}.json", training=pool),
                              output_dir=str(output), ckpt_dir=str(output / "models"), **settings)
        skipped = int(workflow.parser.get_parsed_content("train#trainer").state.skipped_steps)
        finished.write_text(json.dumps({"skipped_steps": skipped}))
    return str(model), json.loads(finished.read_text())["skipped_steps"]


def fine_tune(bundles: Path, work: Path, dataset: str, run_name: str, labelled: list[dict], evaluation: list[dict],
              preset: dict, seed: int, pretrained: str | None, label_names: dict, label_groups: dict,
              in_channels: int, overrides: dict) -> dict:
    """Fine-tune on ``labelled`` for the preset's iteration budget of ``dataset`` through the segmentation bundle,
    validating on ``evaluation`` at the preset's curve points (read only: nothing is selected on it).

    Returns ``{"dice": {class or region: Dice}, "subjects": {class or region: [Dice per evaluation subject]},
    "curve": [(iteration, mean Dice)]}`` of the final model."""
    from ignite.engine import Events
    from monai.bundle import ConfigWorkflow

    budget, points = preset["fine_tune_iterations"][dataset], preset["curve_points"][dataset]
    if budget % points:
        raise ValueError(f"the {dataset} budget of {budget} iterations is not a multiple of its {points} curve points.")
    interval = budget // points
    datalist = datalist_text(training=labelled, validation=evaluation)
    # the overrides win over the preset's settings (e.g. a larger network, whose weights ``pretrained`` must hold)
    settings = dict(
        label_names=label_names, label_groups=label_groups, seed=seed, epoch_length=interval,
        max_epochs=points, val_interval=1, roi_size=preset["roi"], samples_per_volume=preset["samples"],
        batch_size=preset["batch"], use_pretrained=pretrained is not None, pretrained_path=pretrained,
        **network_overrides(preset, in_channels)) | overrides
    config_file = bundles / "brain_mri_segmentation" / "configs" / "train.json"
    # a finished run is kept under a hash of everything it depends on, so that an interrupted benchmark re-run
    # picks up where it stopped (and a changed setting, file, source or checkpoint is never mistaken for it)
    unlabelled = (json.loads(Path(settings["unlabelled_datalist"]).read_text())["training"]
                  if settings.get("semi_supervised") else [])
    key = run_key(datalist, settings, file_digest(str(config_file)),
                  file_digest(pretrained) if pretrained else None,
                  files=entry_files(labelled + evaluation + unlabelled))
    # the folder is keyed too, so that runs differing only in a setting (a crop size) never share checkpoints
    output = work / "fine_tune" / f"{run_name}_{key}"
    finished = output / "result.json"
    if finished.exists():
        print(f"  {run_name}: finished earlier, result reused from {finished}", flush=True)
        return json.loads(finished.read_text())
    output.mkdir(parents=True, exist_ok=True)
    (output / "datalist.json").write_text(datalist)
    workflow = ConfigWorkflow(
        config_file=str(config_file), workflow_type="train", datalist=str(output / "datalist.json"),
        output_dir=str(output), ckpt_dir=str(output / "models"), **settings)
    workflow.initialize()
    trainer = workflow.parser.get_parsed_content("train#trainer")
    evaluator = workflow.parser.get_parsed_content("validate#evaluator")
    # the score of the tables: the mean of the reported Dice (classes, or tumour regions)
    reported = label_groups or {n: v for n, v in label_names.items() if v}
    curve: list[tuple[int, float]] = []
    evaluator.add_event_handler(Events.COMPLETED, lambda e: curve.append(
        (int(trainer.state.iteration), float(np.mean([e.state.metrics[f"val_dice_{k}"] for k in reported])))))
    workflow.run()
    workflow.finalize()
    metrics = evaluator.state.metrics
    # per evaluation subject: the bundle's own MeanDice handlers keep them (save_details)
    per_subject = {k: evaluator.state.metric_details[f"val_dice_{k}"].nan_to_num(0.0).flatten().tolist()
                   for k in reported}
    result = {"dice": {k: float(metrics[f"val_dice_{k}"]) for k in reported}, "subjects": per_subject,
              "curve": curve, "skipped_steps": int(trainer.state.skipped_steps)}
    with atomic_path(finished) as temporary:
        Path(temporary).write_text(json.dumps(result))
    return result


# ---- statistics ----------------------------------------------------------------------------------------------
def mean_sd(values) -> str:
    """Mean ± sample standard deviation (ddof 1) — the one spread used in tables and plots."""
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.3f} ± {values.std(ddof=1) if values.size > 1 else 0.0:.3f}"


def sd(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1)) if values.size > 1 else 0.0


def t_interval(differences) -> tuple[float, float, float, int]:
    """``(mean, low, high, n)``: the mean of paired differences and its 95 % Student t interval (df = n - 1);
    ``low``/``high`` are NaN for fewer than two pairs."""
    from scipy import stats

    values = np.asarray(differences, dtype=float)
    mean = float(values.mean())
    if values.size < 2:
        return mean, float("nan"), float("nan"), int(values.size)
    half = float(stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size))
    return mean, mean - half, mean + half, int(values.size)


# how a paired difference (arm - scratch) is read: above 0, below 0, or an interval that holds 0
ARM_READINGS = ("helps", "hurts", "no clear effect")


def verdict(differences, readings: tuple[str, str, str] = ARM_READINGS) -> str:
    """Reading of paired differences (arm - scratch, same fold and seed): ``readings[0]`` ("helps") or
    ``readings[1]`` ("hurts") only when the 95 % t interval of their mean excludes 0, else ``readings[2]``."""
    mean, low, high, n = t_interval(differences)
    if n < 2:
        return f"{100 * mean:+.1f} (n = 1: no interval, no reading)"
    reading = readings[0] if low > 0 else readings[1] if high < 0 else readings[2]
    return f"{100 * mean:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}] (n = {n}, df = {n - 1}): {reading}"


def subject_bootstrap(arm_scores: np.ndarray, scratch_scores: np.ndarray, draws: int = 10000,
                      seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of the mean paired difference when the evaluation subjects are resampled.

    Args:
        arm_scores, scratch_scores: ``(pairs, subjects)`` scores of the same (fold, seed) pairs and subjects.
    """
    per_subject = (np.asarray(arm_scores) - np.asarray(scratch_scores)).mean(axis=0)
    rng = np.random.default_rng(seed)
    means = per_subject[rng.integers(0, per_subject.size, size=(draws, per_subject.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def iterations_to_reach(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((iteration for iteration, dice in curve if dice >= target), None)


# ---- arms ----------------------------------------------------------------------------------------------------
def parse_pretrained(values: list[str]) -> dict[str, list[str]]:
    arms: dict[str, list[str]] = {}
    for value in values or []:
        arm, _, paths = value.partition("=")
        if not arm or arm == "scratch" or any(v in arm for v in VARIANTS) or not paths:
            raise SystemExit(f"--pretrained takes NAME=PATH[,PATH...] with NAME an arm other than scratch (its "
                             f"{' and '.join(VARIANTS)} variants follow), got {value!r}.")
        arms[arm] = paths.split(",")
        for path in arms[arm]:
            if not os.path.isfile(path):
                raise SystemExit(f"--pretrained {arm}: no checkpoint at {path}.")
    return arms


def base_arm(arm: str) -> str:
    """The arm without its variants: ``all+synthseg+meanteacher`` -> ``all``."""
    for variant in reversed(VARIANTS):
        arm = arm.removesuffix(variant)
    return arm


def without_last_variant(arm: str) -> str | None:
    """The arm this one adds its last variant to (``all+synthseg+meanteacher`` -> ``all+synthseg``), or ``None``."""
    return next((arm.removesuffix(v) for v in VARIANTS if arm.endswith(v)), None)


# ---- main ----------------------------------------------------------------------------------------------------
def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with the settings that no run can use refused (``SystemExit`` naming the fix)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--work-dir", help="intermediate files (default: outputs/label_efficiency/<preset>)")
    parser.add_argument("--results-dir", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--datasets", nargs="+", default=["ixi_coarse", "ixi_fine", "tumour"], choices=DATASETS)
    parser.add_argument("--ixi-eval-dir", help="a folder of IXI-DLMUSE subjects to evaluate on, never seen by the "
                        "project (default: <data-root>/ixi_dlmuse/eval)")
    parser.add_argument("--brats-train-subjects", nargs="+", help="BraTS subjects to fine-tune on, one fold each "
                        "(default: the 'train' folder); their images are in the --pretrain pool")
    parser.add_argument("--brats-eval-subjects", nargs="+", help="BraTS subjects that are only evaluated, never "
                        "pretrained or tuned on (default: the 'validation' folder)")
    parser.add_argument("--regions-train", nargs="+", type=int, default=list(range(1, 16)),
                        help="synthetic_regions: anatomies whose first 1, 2, 4 are fine-tuned on")
    parser.add_argument("--regions-eval", nargs="+", type=int, default=list(range(16, 21)))
    parser.add_argument("--arms", nargs="+", default=["scratch", "all"],
                        help=f"scratch, pretrained arms (--pretrained NAME, or with --pretrain one of {MIXES}), "
                        f"and any of them with '{SYNTHSEG}', '{MEAN_TEACHER}' or both, in that order")
    parser.add_argument("--seeds", nargs="+", type=int, help="fine-tuning seeds (default: the preset's)")
    parser.add_argument("--threads", type=int, help="torch threads (default: the preset's); 1 beside another job "
                        "on the same cores, where oversubscribed threads slow both many times over")
    parser.add_argument("--folds", nargs="+", type=int, help="labelled-subject draws (default: the preset's)")
    parser.add_argument("--roi", nargs=3, type=int, metavar=("X", "Y", "Z"),
                        help="fine-tuning crop and sliding-window size in voxels for every arm (default: the "
                        "preset's); the input-resolution lever")
    parser.add_argument("--label-counts", nargs="+", type=int, help="labelled subjects per setting (default: the "
                        "preset's)")
    parser.add_argument("--pretrained", nargs="+", metavar="NAME=PATH[,PATH...]",
                        help="checkpoints of the pretrained arms, one per seed or one for all (default: the "
                        "shipped encoder as 'all')")
    parser.add_argument("--pretrain", action="store_true", help="pretrain the arms named after a task mix here "
                        "instead (the preset's short budget), on the real pool of benchmarks/real_mri.py, with the "
                        "network that --fine-tune-overrides sets, if any")
    parser.add_argument("--choose-budget", action="store_true",
                        help="only measure the fine-tuning budget at which scratch plateaus on tuning subjects")
    parser.add_argument("--max-iterations", type=int, default=1200, help="longest budget tried by --choose-budget")
    parser.add_argument("--budget-points", type=int, default=15, help="validation points of --choose-budget")
    parser.add_argument("--fine-tune-overrides", type=json.loads, default={},
                        help="segmentation-bundle settings for every arm, scratch included, over the preset's "
                        "(a network set here needs --pretrained weights of that network, or --pretrain), e.g. "
                        "'{\"freeze_encoder_epochs\": 2}'")
    parser.add_argument("--consistency-weight", type=float,
                        help=f"the '{MEAN_TEACHER}' arms' consistency weight (default: the segmentation bundle's)")
    parser.add_argument("--tune", action="store_true",
                        help="validate on the IXI tuning subjects (train subjects neither labelled nor evaluated) "
                        "instead of the evaluation subjects, to choose a setting; needs a --results-dir of its own")
    args = parser.parse_args(argv)
    if not isinstance(args.fine_tune_overrides, dict):
        raise SystemExit(f"--fine-tune-overrides must be a JSON object of settings, got {args.fine_tune_overrides!r}.")
    # every strided UNet level halves the crop: a size that does not halve evenly would not line up with its skip
    roi = args.roi or PRESETS[args.preset]["roi"]
    factor = downsampling(PRESETS[args.preset], args.fine_tune_overrides)
    if any(size <= 0 or size % step for size, step in zip(roi, factor)):
        network = "--fine-tune-overrides' network" if "network_def#strides" in args.fine_tune_overrides \
            else f"the {args.preset} preset's network"
        raise SystemExit(f"fine-tuning crops must be positive multiples of {factor.tolist()} per axis ({network} "
                         f"downsamples them that much), got {roi}: give --roi sizes that are.")
    if args.consistency_weight is not None and args.consistency_weight <= 0:
        raise SystemExit(f"--consistency-weight must be > 0, got {args.consistency_weight}; leave it out for the "
                         "bundle's default.")
    if args.tune and (Path(args.results_dir).resolve() == (REPO / "benchmarks" / "results").resolve()
                      or not set(args.datasets) <= {"ixi_coarse", "ixi_fine"}):
        raise SystemExit("--tune validates on the IXI tuning subjects: give it the IXI datasets only and a "
                         "--results-dir of its own, so that no tuning figure is read as a result.")
    if args.tune and args.ixi_eval_dir:
        raise SystemExit("--tune validates on the IXI tuning subjects and evaluates nothing: leave out --ixi-eval-dir.")
    return args


def main() -> None:
    args = parse_arguments()
    preset = dict(PRESETS[args.preset])
    if args.threads:
        preset["threads"] = args.threads
    for name in ("seeds", "folds", "label_counts"):
        if getattr(args, name):
            if min(getattr(args, name)) < (1 if name == "label_counts" else 0):
                bound = "positive" if name == "label_counts" else ">= 0"
                raise SystemExit(f"--{name.replace('_', '-')} must be {bound}, got {getattr(args, name)}.")
            preset[name] = sorted(set(getattr(args, name)))
    if args.roi:
        preset["roi"] = args.roi
    data_root = Path(args.data_root)
    if not data_root.is_dir():
        raise SystemExit(f"--data-root {data_root} is not a folder laid out like ../shared/data.")
    overlap = set(args.regions_train) & set(args.regions_eval)
    if overlap:
        raise SystemExit(f"--regions-train and --regions-eval share subjects {sorted(overlap)}; evaluation subjects "
                         "must never be pretrained or fine-tuned on.")
    pretrained = parse_pretrained(args.pretrained)
    if not args.pretrain and "all" in map(base_arm, args.arms) and "all" not in pretrained:
        pretrained["all"] = [str(SHIPPED)]
    for arm in args.arms:
        base = base_arm(arm)
        if base + "".join(v for v in VARIANTS if v in arm) != arm:
            raise SystemExit(f"arm {arm!r}: variants follow the arm's name once each, in the order {VARIANTS}.")
        if base != "scratch" and base not in pretrained and not (args.pretrain and base in MIXES):
            raise SystemExit(f"arm {arm!r} has no checkpoint: give --pretrained {base}=PATH, or --pretrain with "
                             f"an arm among {MIXES}.")

    import torch

    torch.set_num_threads(preset["threads"])
    logging.disable(logging.WARNING)  # the bundles' per-iteration logs would drown the summary
    start = time.time()
    commit = source_state(args.results_dir)
    work = Path(args.work_dir or REPO / "outputs" / "label_efficiency" / args.preset).resolve()
    bundles = find_bundles_dir()
    data = load_datasets(args, data_root, work)

    if args.choose_budget:
        choose_budget(args, preset, bundles, work, data)
        return
    pool_datalist = unlabelled_pool(work, data_root) if any(MEAN_TEACHER in arm for arm in args.arms) else None

    skipped: dict[str, int] = {}

    def checkpoint(arm: str, seed_index: int, seed: int) -> str | None:
        base = base_arm(arm)
        if base == "scratch":
            return None
        if base in pretrained:
            paths = pretrained[base]
            return paths[seed_index] if len(paths) > 1 else paths[0]
        model, skipped[f"{base} seed {seed}"] = pretrain(bundles, work, base, seed, real_pool(data_root)["training"],
                                                         preset, network_settings(args.fine_tune_overrides))
        return model

    # results[dataset][setting][arm][(fold, seed)] = fine_tune()'s result
    results: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    for arm in args.arms:
        for seed_index, seed in enumerate(preset["seeds"]):
            model = checkpoint(arm, seed_index, seed)
            for dataset in args.datasets:
                if SYNTHSEG in arm and not dataset.startswith("ixi"):
                    continue  # synthesis paints atlas label maps: the IXI datasets only
                if MEAN_TEACHER in arm and data[dataset]["in_channels"] != 1:
                    continue  # the real pool's scans are single-channel: no unlabelled FLAIR + T1c pairs
                spec = data[dataset]
                overrides = dict(args.fine_tune_overrides, label_sources=spec["label_sources"],
                                 lateral_pairs=spec["lateral_pairs"],
                                 synthesis_prob=SYNTHESIS_PROB if SYNTHSEG in arm else 0.0)
                if MEAN_TEACHER in arm:
                    overrides.update(semi_supervised=True, unlabelled_cache="memory", unlabelled_datalist=pool_datalist)
                    if args.consistency_weight is not None:
                        overrides.update(consistency_weight=args.consistency_weight)
                for setting, fold, labelled in spec["draws"](preset):
                    print(f"{dataset}: {arm}, {setting} labelled, fold {fold}, seed {seed}", flush=True)
                    results[dataset][setting][arm][(fold, seed)] = fine_tune(
                        bundles, work, dataset, f"{dataset}_{setting}_{arm}_fold{fold}_seed{seed}", labelled,
                        spec["evaluation"], preset, seed, model, spec["label_names"], spec["label_groups"],
                        spec["in_channels"], overrides)
        # after every arm, so that a long run stopped early still leaves the arms it finished
        write_results(args, preset, results, pretrained, skipped, time.time() - start, data, commit,
                      final=arm == args.arms[-1])


def unlabelled_pool(work: Path, data_root: Path) -> str:
    """A datalist of the real pool's training scans (``benchmarks/real_mri.py``: no evaluation or tuning subject)
    for the mean-teacher arms."""
    path = work / "lists" / "unlabelled_pool.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        Path(temporary).write_text(json.dumps({"training": real_pool(data_root)["training"]}, indent=1))
    return str(path)


def load_datasets(args, data_root: Path, work: Path) -> dict[str, dict]:
    """Per dataset: its label names and groups, the label-file ids of each class (atlas labels), the evaluation
    subjects, and ``draws(preset)``, the ``(setting, fold, labelled subjects)`` to fine-tune on."""
    data = {}
    if any(d.startswith("ixi") for d in args.datasets) or args.choose_budget:
        tuning, labelled_pool = split_ixi_train(data_root)
        # --tune validates on the tuning subjects and never opens the evaluation folder
        evaluation = [] if args.tune else ixi_subjects(args.ixi_eval_dir or data_root / "ixi_dlmuse" / "eval")
        seen = {s["name"] for s in tuning + labelled_pool} & {s["name"] for s in evaluation}
        if seen:
            raise SystemExit(f"the evaluation subjects {sorted(seen)} are IXI train subjects; evaluate on subjects "
                             "that were never pretrained on, fine-tuned on or used to choose anything.")
        for grouping, groups in MUSE_GROUPINGS.items():
            data[f"ixi_{grouping}"] = {
                "label_names": muse_label_names(groups), "label_groups": {}, "label_sources": label_sources(groups),
                "lateral_pairs": [list(pair) for pair in MUSE_LATERAL_PAIRS],
                "in_channels": 1, "evaluation": tuning if args.tune else evaluation, "tuning": tuning,
                "draws": lambda preset, pool=labelled_pool: [
                    (count, fold, labelled_draw(pool, fold, count))
                    for count in preset["label_counts"] for fold in preset["folds"]],
                "describe": f"fine-tuned on N subjects of the {len(labelled_pool)}-subject IXI train labelled pool "
                            f"(fold f: benchmarks/real_mri.py's draw), " + (
                                f"**validated on the {len(tuning)} IXI train tuning subjects (--tune): figures for "
                                "choosing a setting, not results**" if args.tune else
                                f"evaluated on {len(evaluation)} subjects of {args.ixi_eval_dir or 'ixi_dlmuse/eval'}")}
    if "tumour" in args.datasets:
        default_train, default_eval = default_brats_split(data_root)
        brats_train = args.brats_train_subjects or default_train
        brats_eval = args.brats_eval_subjects or default_eval
        if set(brats_train) & set(brats_eval):
            raise SystemExit(f"--brats-train-subjects and --brats-eval-subjects share "
                             f"{sorted(set(brats_train) & set(brats_eval))}.")
        train_subjects = brats_subjects(data_root, brats_train)
        data["tumour"] = {
            "label_names": {"background": 0, "necrosis": 1, "oedema": 2, "non_enhancing": 3, "enhancing": 4},
            "label_groups": TUMOUR_REGIONS, "label_sources": None, "lateral_pairs": None, "in_channels": 2,
            "evaluation": brats_subjects(data_root, brats_eval), "tuning": train_subjects[1:],
            "draws": lambda preset: [(1, fold, [s]) for fold, s in enumerate(train_subjects)],
            "describe": f"fine-tuned on each of {brats_train} (one fold each), evaluated on {brats_eval}"}
    if "synthetic_regions" in args.datasets:
        regions = synthesise_regions(data_root, work, sorted(set(args.regions_train + args.regions_eval)))
        data["synthetic_regions"] = {
            "label_names": {"background": 0, **{name: i for i, name in enumerate(BRAIN_REGIONS, start=1)}},
            "label_groups": {}, "label_sources": None, "lateral_pairs": None, "in_channels": 1,
            "evaluation": [regions[s] for s in args.regions_eval],
            "tuning": [regions[s] for s in args.regions_train[-3:]],
            "draws": lambda preset: [(c, 0, [regions[s] for s in args.regions_train[:c]])
                                     for c in preset["label_counts"] if c <= len(args.regions_train)],
            "describe": f"fine-tuned on the first N of anatomies {args.regions_train}, evaluated on anatomies "
                        f"{args.regions_eval} (synthetic images: an ablation)"}
    return data


def choose_budget(args, preset, bundles, work, data) -> None:
    """Scratch on fold 0's one labelled subject, validated on tuning subjects (neither labelled nor evaluated);
    prints the first iteration within 2 Dice points of the best."""
    budget = {d: args.max_iterations for d in DATASETS}
    probe = dict(preset, fine_tune_iterations=budget, curve_points={d: args.budget_points for d in DATASETS})
    lines = []
    for dataset in args.datasets:
        spec = data[dataset]
        _, fold, labelled = spec["draws"](dict(preset, label_counts=[1], folds=[0]))[0]
        if not spec["tuning"]:
            continue
        result = fine_tune(bundles, work, dataset, f"budget_{dataset}", labelled, spec["tuning"], probe,
                           preset["seeds"][0], None, spec["label_names"], spec["label_groups"], spec["in_channels"],
                           dict(label_sources=spec["label_sources"], lateral_pairs=spec["lateral_pairs"]))
        lines.append(report_budget(dataset, f"labelled {[s['name'] for s in labelled]}, validated on tuning "
                                   f"subjects {[s['name'] for s in spec['tuning']]}", result["curve"]))
    text = "\n".join(["# Fine-tuning budget (scratch, training subjects only)", "",
                      f"- command: `python benchmarks/label_efficiency.py {shlex.join(sys.argv[1:])}`", "", *lines])
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    (results / f"fine_tune_budget_{args.preset}.md").write_text(text + "\n")
    print(text)


def report_budget(dataset: str, setting: str, curve: list[tuple[int, float]]) -> str:
    best = max(d for _, d in curve)
    plateau = next(i for i, d in curve if d >= best - 0.02)
    points = ", ".join(f"{i}: {d:.3f}" for i, d in curve)
    return (f"- {dataset} ({setting}): plateau (within 0.02 of the best {best:.3f}) at iteration {plateau}; "
            f"curve {points}")


# ---- results -------------------------------------------------------------------------------------------------
def speed_settings(overrides: dict) -> str:
    """The segmentation bundle's speed settings as this machine resolves them (they follow the device and CPU)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(find_bundles_dir() / "brain_mri_segmentation" / "configs" / "train.json"))
    parser.update(overrides)
    return ", ".join(f"{name} {json.dumps(bool(parser.get_parsed_content(name)))}"
                     for name in ("channels_last", "bf16_autocast"))


def source_state(results_dir: str) -> str:
    """The commit the run starts from, and whether tracked files other than its own results differ from it.

    Taken once at the start: the run rewrites its tracked result files after every arm, and edits made while it
    runs do not change the code it has imported."""
    results = Path(results_dir).resolve()
    own_results = [f":(exclude){results.relative_to(REPO)}"] if results.is_relative_to(REPO) else []
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO,
                                check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *own_results],
                                 capture_output=True, text=True, cwd=REPO, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + (" with uncommitted changes" if changed else "")


def score(run: dict) -> float:
    """A run's headline score: the mean Dice over its reported classes (tumour: regions)."""
    return float(np.mean(list(run["dice"].values())))


def subject_scores(run: dict) -> np.ndarray:
    """Per evaluation subject, the mean Dice over the reported classes."""
    return np.mean([run["subjects"][c] for c in run["dice"]], axis=0)


def signed_contrast(terms: list[tuple[float, dict]], metric=score,
                    readings: tuple[str, str, str] = ARM_READINGS) -> dict | None:
    """Per (fold, seed) pair that every term's runs share, the sum of ``sign * metric(run)`` over the
    ``(sign, runs)`` terms; the mean over pairs with its t interval, and, for final scores whose runs keep their
    evaluation subjects', the subject bootstrap. ``"text"`` reads them with :func:`verdict`'s ``readings``.
    ``None`` without a shared pair."""
    pairs = sorted(set.intersection(*(set(runs) for _, runs in terms)))
    if not pairs:
        return None
    differences = [sum(sign * metric(runs[pair]) for sign, runs in terms) for pair in pairs]
    mean, low, high, n = t_interval(differences)
    result = {"pairs": pairs, "differences": differences, "mean": mean, "low": low, "high": high, "n": n,
              "text": verdict(differences, readings)}
    if metric is score and all("subjects" in runs[pair] for _, runs in terms for pair in pairs):
        subjects = [[subject_scores(runs[pair]) for _, runs in terms] for pair in pairs]
        if len({scores.shape for row in subjects for scores in row}) != 1:
            raise ValueError("the runs were evaluated on different numbers of subjects: a paired contrast needs the "
                             "same evaluation subjects in every term.")
        per_subject = np.stack([sum(sign * scores for (sign, _), scores in zip(terms, row)) for row in subjects])
        boot = subject_bootstrap(per_subject, np.zeros_like(per_subject))
        result["bootstrap"] = boot
        result["text"] += f"; subjects bootstrap [{100 * boot[0]:+.1f}, {100 * boot[1]:+.1f}]"
    return result


def compare(runs: dict, reference: dict, metric=score) -> dict | None:
    """Paired comparison of two arms over their shared (fold, seed) pairs: t interval and subject bootstrap."""
    return signed_contrast([(1.0, runs), (-1.0, reference)], metric)


def write_results(args, preset: dict, results: dict, pretrained: dict, skipped: dict, seconds: float, data: dict,
                  commit: str, final: bool = True) -> None:
    out = Path(args.results_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = "; ".join(f"{arm}: {', '.join(os.path.relpath(p, REPO) if p.startswith(str(REPO)) else p for p in paths)}"
                        for arm, paths in pretrained.items() if arm in map(base_arm, args.arms))
    if args.pretrain:
        weights += ("; " if weights else "") + "pretrained here (`--pretrain`, real pool): " + (
            ", ".join(f"{k}: {v} steps skipped (non-finite gradients)" for k, v in skipped.items()) or "none")
    lines = ["# Label-efficiency benchmark", "",
             f"- command: `python benchmarks/label_efficiency.py {shlex.join(sys.argv[1:])}`",
             f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; commit {commit}",
             f"- machine: {platform.platform()}, {os.cpu_count()} CPU cores, torch threads {preset['threads']}",
             f"- wall time: {seconds / 60:.1f} min" + ("" if final else
                                                       f" (unfinished: arms {list(results_arms(results))} so far)"),
             f"- preset `{args.preset}`: {json.dumps(preset)}",
             f"- pretrained weights: {weights or 'none'}",
             f"- `{SYNTHSEG}` arms: {SYNTHESIS_PROB:.0%} of the training crops synthesised from their DLMUSE label "
             "map (SynthSeg-style random contrast, bias, blur, noise, gamma), the same init as the arm without it",
             f"- `{MEAN_TEACHER}` arms: the segmentation bundle's mean teacher (`semi_supervised`, "
             + (f"consistency weight {args.consistency_weight}, its default" if args.consistency_weight is not None
                else "its default weight,") + " ramp-up, decay and noise) on the real pool's training scans, the "
             "same init as the arm without it",
             f"- fine-tuning overrides for every arm: {json.dumps(args.fine_tune_overrides) or '{}'}; "
             f"{speed_settings(args.fine_tune_overrides)}",
             *[f"- {dataset}: {spec['describe']}" for dataset, spec in data.items() if dataset in results],
             ("- Validated on tuning subjects (`--tune`), which are never pretrained on or fine-tuned on; no "
              "evaluation subject was opened." if args.tune else
              "- Evaluation subjects are never pretrained on, fine-tuned on or used to choose anything.")
             + " IXI labels are automated DLMUSE segmentations: a silver standard.", "",
             "Cells: mean ± sd (ddof 1) over (fold, seed) pairs of the mean Dice over evaluation subjects. "
             "*vs scratch*: the mean paired difference in Dice points with its 95 % t interval over the pairs "
             "(n pairs, df = n - 1), read \"helps\" only when the interval excludes 0, then a 95 % paired bootstrap "
             "over evaluation subjects (10,000 draws). *iterations to scratch's final*: the first validation point at "
             "which the arm's mean curve reaches scratch's final mean Dice.", ""]
    headline: dict = {}
    for dataset, settings in results.items():
        for setting, arms in sorted(settings.items()):
            classes = list(next(iter(next(iter(arms.values())).values()))["dice"])
            title = {"tumour": "Brain tumour (BraTS, FLAIR + T1c), 1 labelled subject",
                     "synthetic_regions": f"Synthetic brain regions (ablation), {setting} labelled subject(s)",
                     }.get(dataset, f"IXI T1, {dataset.removeprefix('ixi_')} regions ({len(classes)}), "
                                    f"{setting} labelled subject(s)")
            folds = sorted({fold for runs in arms.values() for fold, _ in runs})
            shown = classes if len(classes) <= 10 else []
            lines += [f"## {title}, folds {folds}", "",
                      "| arm | pairs | mean | " + "".join(f"{c} | " for c in shown) +
                      f"vs scratch (points) | vs scratch{SYNTHSEG} (points) | vs the arm without its last variant "
                      "(points) | iterations to scratch's final |",
                      "|---|---|---|" + "---|" * len(shown) + "---|---|---|---|"]
            scratch, strong = arms.get("scratch", {}), arms.get("scratch" + SYNTHSEG, {})
            scratch_final = float(np.mean([score(r) for r in scratch.values()])) if scratch else None
            for arm, runs in arms.items():
                cells = "".join(f"{mean_sd([r['dice'][c] for r in runs.values()])} | " for c in shown)
                against = compare(runs, scratch) if arm != "scratch" else None
                against_strong = compare(runs, strong) if arm not in ("scratch", "scratch" + SYNTHSEG) else None
                reach = "-"
                if against is not None:
                    curve = mean_curve(runs)
                    reached = iterations_to_reach(curve, scratch_final)
                    reach = f"{reached} of {curve[-1][0]}" if reached is not None else f"not within {curve[-1][0]}"
                    headline[(dataset, setting, arm, "scratch")] = dict(against, reached=reached, budget=curve[-1][0])
                    if dataset == "tumour":
                        headline[(dataset, setting, arm, "whole_tumour")] = compare(
                            runs, scratch, metric=lambda r: r["dice"]["whole_tumour"])
                if against_strong is not None:
                    headline[(dataset, setting, arm, "scratch" + SYNTHSEG)] = against_strong
                plain = without_last_variant(arm)
                against_plain = compare(runs, arms[plain]) if plain in arms else None
                lines.append(f"| {arm} | {len(runs)} | {mean_sd([score(r) for r in runs.values()])} | {cells}"
                             f"{against['text'] if against else '-'} | "
                             f"{against_strong['text'] if against_strong else '-'} | "
                             f"{against_plain['text'] if against_plain else '-'} | {reach} |")
            lines.append("")
            # two encoders (two pretraining tasks, budgets or pools) against each other, not only through scratch
            encoders = [arm for arm in arms if arm == base_arm(arm) != "scratch"]
            against_each_other = [(a, b, compare(arms[a], arms[b])) for a, b in itertools.combinations(encoders, 2)]
            lines += [f"- {a} − {b} (points): {c['text']}" for a, b, c in against_each_other if c is not None]
            if against_each_other:
                lines.append("")
    lines += goals(headline, results)
    (out / "label_efficiency.md").write_text("\n".join(lines) + "\n")
    raw = {dataset: {str(setting): {arm: {f"fold{fold}_seed{seed}": run for (fold, seed), run in runs.items()}
                                    for arm, runs in arms.items()} for setting, arms in settings.items()}
           for dataset, settings in results.items()}
    (out / "label_efficiency.json").write_text(json.dumps(raw, indent=1) + "\n")
    plot(results, out / "label_efficiency.png")
    if not final:
        return
    print("\n".join(lines))
    print(f"\nwrote {out / 'label_efficiency.md'} and {out / 'label_efficiency.png'}")


def results_arms(results: dict) -> dict:
    return {arm: None for settings in results.values() for arms in settings.values() for arm in arms}


def goals(headline: dict, results: dict) -> list[str]:
    """The goals of the label-efficiency issue, each met or not, from the paired intervals and the mean curves."""
    def met(ok: bool) -> str:
        return "met" if ok else "not met"

    lines = ["## Goals", ""]
    for (dataset, setting, arm, reference), c in sorted(headline.items()):
        if base_arm(arm) == "scratch" or c is None:
            continue
        interval = (f"{100 * c['mean']:+.1f} [{100 * c['low']:+.1f}, {100 * c['high']:+.1f}] points (n = {c['n']})"
                    if c["n"] > 1 else f"{100 * c['mean']:+.1f} points (n = 1, no interval)")
        if dataset == "ixi_coarse" and setting == 1 and reference == "scratch":
            lines.append(f"- IXI coarse, 1 labelled, {arm} vs scratch: {interval} (goal ≥ +5, interval above 0): "
                         f"{met(c['mean'] >= 0.05 and c['low'] > 0)}")
        elif dataset == "ixi_coarse" and setting == 1 and reference == "scratch" + SYNTHSEG:
            lines.append(f"- IXI coarse, 1 labelled, {arm} vs scratch{SYNTHSEG}: {interval} (goal ≥ +2): "
                         f"{met(c['mean'] >= 0.02)}")
        elif dataset == "ixi_fine" and setting == 1 and reference == "scratch":
            lines.append(f"- IXI fine, 1 labelled, {arm} vs scratch: {interval} (goal ≥ +8, interval above 0): "
                         f"{met(c['mean'] >= 0.08 and c['low'] > 0)}")
        elif dataset == "tumour" and reference == "whole_tumour":
            lines.append(f"- whole tumour, {arm} vs scratch: {interval} (stretch goal ≥ +3, interval above 0): "
                         f"{met(c['mean'] >= 0.03 and c['low'] > 0)}")
        if reference == "scratch" and dataset.startswith("ixi") and setting == 1:
            reached, budget = c["reached"], c["budget"]
            reach = f"at iteration {reached} of {budget}" if reached is not None else f"not within {budget} iterations"
            lines.append(f"  - reaches scratch's final Dice {reach} (goal: half or fewer): "
                         f"{met(reached is not None and reached <= budget / 2)}")
    for dataset in ("ixi_coarse", "ixi_fine"):
        settings = results.get(dataset, {})
        for few, many in itertools.combinations(sorted(settings), 2):
            if "scratch" not in settings[many]:
                continue
            scratch_many = settings[many]["scratch"]
            # scratch with fewer labels is the control: when it matches scratch with more, so does any arm, and
            # the comparison says nothing of pretraining
            for arm, runs in settings[few].items():
                # a fold's draws are nested (its `few` subjects are among its `many`), so (fold, seed) still pairs
                against = compare(runs, scratch_many)
                if against is None:
                    continue
                line = (f"- {dataset}, {arm} with {few} labelled − scratch with {many} ({many / few:g}x the labels): "
                        f"{against['text']}")
                if (few, many) == (2, 8) and arm != "scratch":
                    line += f" (goal: at least as good): {met(against['mean'] >= 0)}"
                lines.append(line)
    return lines + [""]


def mean_curve(runs: dict) -> list[tuple[int, float]]:
    curves = [r["curve"] for r in runs.values()]
    length = min(len(c) for c in curves)
    return [(curves[0][i][0], float(np.mean([c[i][1] for c in curves]))) for i in range(length)]


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(d, s) for d, settings in results.items() for s in sorted(settings)]
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(4.2 * (len(panels) + 1), 3.8), squeeze=False)
    summary = axes[0][0]
    arms_order = list(results_arms(results))
    for dataset, settings in results.items():
        for arm in arms_order:
            counts = sorted(c for c in settings if arm in settings[c])
            if not counts:
                continue
            values = [[score(r) for r in settings[c][arm].values()] for c in counts]
            summary.errorbar(np.array(counts) * (1 + 0.02 * arms_order.index(arm)), [np.mean(v) for v in values],
                             yerr=[sd(v) for v in values], marker="o", capsize=3, label=f"{dataset}: {arm}")
    summary.set_xscale("log", base=2)
    summary.set_xlabel("labelled subjects")
    summary.set_ylabel("mean Dice (final model)")
    summary.set_title("final Dice, mean ± sd over pairs", fontsize=10)
    summary.legend(fontsize=6)
    for ax, (dataset, setting) in zip(axes[0][1:], panels):
        for arm, runs in results[dataset][setting].items():
            curve = mean_curve(runs)
            ax.plot([i for i, _ in curve], [d for _, d in curve], marker=".", label=arm)
        ax.set_title(f"{dataset}, {setting} labelled", fontsize=10)
        ax.set_xlabel("fine-tuning iteration")
        ax.set_ylabel("mean Dice on evaluation subjects")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
