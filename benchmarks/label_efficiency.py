"""Label-efficiency benchmark on real MRI: does a pretrained encoder help with 1, 2 or 4 labelled subjects?

It drives the segmentation bundle through ``ConfigWorkflow`` (the code users run) and adds no training path of its
own. Every arm fine-tunes the same UNet (the bundles' ``network_def``) with the same iteration budget, schedule and
augmentation; arms differ only in their initial weights. The *final* model is evaluated on subjects that were
never pretrained on, fine-tuned on or used to choose anything.

Datasets (``--data-root``, laid out like ``../shared/data``):

1. brain regions: T1-like images synthesised (SynthSeg-style, fixed seeds) from the real anatomies of
   ``synthseg_label_maps`` at 2 mm; labels grouped into 6 regions. Fine-tuning on the first 1, 2 and 4 of
   ``--regions-train``; evaluation on ``--regions-eval`` (default 16-20).
2. brain tumour: ``brats_deepmedic``, FLAIR + T1c. Fine-tuning on one of ``--brats-train-subjects`` (one fold
   each), evaluation on ``--brats-eval-subjects`` (default: the ``validation`` folder). Dice of whole tumour
   (labels 1-4), tumour core (1, 3, 4) and enhancing tumour (4).

Pretrained weights: ``--pretrained ARM=PATH[,PATH...]`` gives each pretrained arm its checkpoint(s); with one path
per fine-tuning seed, seed ``i`` uses the ``i``-th (the pretraining seed varies with the seed); with one path,
every seed uses it. The default is the encoder shipped in ``bundles/pretext_pretraining/models/model.pt`` for arm
``all``. ``--pretrain`` pretrains instead, through the pretraining bundle, on the pool of
:func:`pretraining_pool` (never an evaluation subject), once per arm and seed; those models are cached under a hash
of the pool and every setting.

The fine-tuning budget is fixed per preset; ``--choose-budget`` measures it instead: scratch is fine-tuned on one
labelled subject and validated on *training-pool* subjects that are neither labelled nor evaluated, and the first
iteration within 2 Dice points of its best is printed.

Run: ``python benchmarks/label_efficiency.py --preset cpu``. Results: ``benchmarks/results/label_efficiency.md`` and
``label_efficiency.png`` (final Dice per arm and labelled count, and Dice against fine-tuning iterations).
"""

from __future__ import annotations

import argparse
import datetime
import glob
import hashlib
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

from monai_ssl.data.synthesis import BRAIN_REGIONS, group_labels, synthesize_t1  # noqa: E402
from monai_ssl import list_tasks  # noqa: E402
from monai_ssl.demo import find_bundles_dir, run_bundle  # noqa: E402
from monai_ssl.utils import atomic_path  # noqa: E402

# the "all" arm: the shipped encoder's mix; every registered task is also an arm of its own
TASKS = ["jigsaw", "rotation", "colorization", "relative_position"]
ARMS = ["scratch", "all", *list_tasks()]
TUMOUR_REGIONS = {"whole_tumour": [1, 2, 3, 4], "tumour_core": [1, 3, 4], "enhancing_tumour": [4]}
SHIPPED = REPO / "bundles" / "pretext_pretraining" / "models" / "model.pt"
PRESETS = {
    # 2 cores. The network is the bundles' default (the shipped encoder's); fine-tuning crops of 48^3 at 2 mm keep
    # an iteration near 0.2 s. The budgets per dataset come from --choose-budget --max-iterations 1200
    # (results/fine_tune_budget_cpu.md): on training subjects, scratch comes within 0.02 Dice of its best at 800
    # iterations (regions) and 160 (tumour, then flat to 1,120). The tumour budget stays 320, inside that plateau.
    "cpu": {"spacing": [2.0, 2.0, 2.0], "roi": [48, 48, 48], "channels": [16, 32, 64, 128], "res_units": 2,
            "fine_tune_iterations": {"regions": 800, "tumour": 320}, "curve_interval": 80, "samples": 2, "batch": 2,
            "label_counts": [1, 2, 4], "seeds": [0, 1, 2], "threads": 2,
            "pretrain_epochs": 6, "pretrain_epoch_length": 10, "pretrain_roi": [64, 64, 64]},
    "gpu": {"spacing": [2.0, 2.0, 2.0], "roi": [64, 64, 64], "channels": [16, 32, 64, 128], "res_units": 2,
            "fine_tune_iterations": {"regions": 2000, "tumour": 1000}, "curve_interval": 100, "samples": 4, "batch": 2,
            "label_counts": [1, 2, 4], "seeds": [0, 1, 2], "threads": 8,
            "pretrain_epochs": 30, "pretrain_epoch_length": 100, "pretrain_roi": [64, 64, 64]},
    # a minute-long run of every step, for the tests
    "smoke": {"spacing": [6.0, 6.0, 6.0], "roi": [32, 32, 32], "channels": [8, 16, 32], "res_units": 1,
              "fine_tune_iterations": {"regions": 2, "tumour": 2}, "curve_interval": 1, "samples": 1, "batch": 1,
              "label_counts": [1], "seeds": [0], "threads": 2,
              "pretrain_epochs": 1, "pretrain_epoch_length": 1, "pretrain_roi": [32, 32, 32]},
}
# pretext settings for --pretrain, by crop size
TASK_ARGS = {
    64: {"jigsaw": {"grid": [2, 2, 2], "num_permutations": 100, "gap": 4, "jitter": 2},
         "relative_position": {"patch_size": [16, 16, 16], "gap": 2, "jitter": 2, "foreground_threshold": 0.05},
         "contrastive": {"view_size": [48, 48, 48]}, "exemplar": {"view_size": [48, 48, 48]},
         "cpc": {"patch_size": [16, 16, 16], "grid": [4, 4, 4]}},
    32: {"jigsaw": {"grid": [2, 2, 2], "num_permutations": 10, "gap": 2, "jitter": 1},
         "relative_position": {"patch_size": [8, 8, 8], "gap": 1, "jitter": 1},
         "contrastive": {"view_size": [24, 24, 24]}, "exemplar": {"view_size": [24, 24, 24]},
         "cpc": {"patch_size": [8, 8, 8], "grid": [4, 4, 4]}},
}


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


def pretraining_pool(data_root: Path, regions_train: list[int], brats_train: list[dict]) -> list[dict]:
    """The unlabelled pool: anatomies of the regions training subjects as label maps (a new random-contrast image
    at every draw), each BraTS training subject's FLAIR and T1c as single-channel scans, and the human templates.
    Evaluation subjects are never in it."""
    pool = [{"label_map": str(data_root / "synthseg_label_maps" / f"training_seg_{s:02d}.nii.gz")}
            for s in regions_train]
    pool += [{"image": channel} for subject in brats_train for channel in subject["image"]]
    for name in ("ch2better.nii.gz", "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"):
        if (data_root / "brain_atlas" / name).exists():
            pool.append({"image": str(data_root / "brain_atlas" / name)})
    return pool


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


def write_datalist(path: Path, **lists) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: [{kk: vv for kk, vv in e.items() if kk != "name"} for e in v]
                                for k, v in lists.items()}, indent=1))
    return str(path)


# ---- runs ----------------------------------------------------------------------------------------------------
def network_overrides(preset: dict, in_channels: int) -> dict:
    return {"in_channels": in_channels, "network_def#channels": preset["channels"],
            "network_def#strides": [2] * (len(preset["channels"]) - 1),
            "network_def#num_res_units": preset["res_units"], "spacing": preset["spacing"], "num_workers": 0}


def pretrain(bundles: Path, work: Path, arm: str, seed: int, pool: list[dict], preset: dict) -> str:
    """Pretrain one arm with one seed through the pretraining bundle; cached under a hash of pool, settings and the
    bundle's config."""
    settings = {"tasks": TASKS if arm == "all" else [arm], "task_args": TASK_ARGS[preset["pretrain_roi"][0]],
                "max_epochs": preset["pretrain_epochs"], "epoch_length": preset["pretrain_epoch_length"],
                "samples_per_volume": preset["samples"],
                # two volumes at least: the contrastive and exemplar tasks contrast a volume with the others
                "batch_size": max(2, preset["batch"]), "seed": seed,
                "roi_size": preset["pretrain_roi"], **network_overrides(preset, 1)}
    config_file = bundles / "pretext_pretraining" / "configs" / "train.json"
    key = hashlib.sha256(json.dumps([pool, settings, file_digest(config_file)], sort_keys=True).encode()).hexdigest()[:16]
    output = work / "pretrain" / f"{arm}_seed{seed}_{key}"
    model, finished = output / "models" / "model.pt", output / "finished"
    # not model.pt alone: MONAI's CheckpointSaver also writes its final file when a run stops with an exception
    if not finished.exists():
        run_bundle(str(config_file),
                   datalist=write_datalist(work / "lists" / f"pool_{key}.json", training=pool),
                   output_dir=str(output), ckpt_dir=str(output / "models"), **settings)
        finished.touch()
    return str(model)


def fine_tune(bundles: Path, work: Path, dataset: str, run_name: str, labelled: list[dict], evaluation: list[dict],
              preset: dict, seed: int, pretrained: str | None, label_names: dict, label_groups: dict,
              in_channels: int, overrides: dict) -> tuple[dict[str, float], list[tuple[int, float]]]:
    """Fine-tune on ``labelled`` for the preset's iteration budget of ``dataset`` through the segmentation bundle,
    validating on
    ``evaluation`` every ``curve_interval`` iterations (read only: nothing is selected on it).

    Returns the final model's Dice per class and region, and the mean-Dice curve ``[(iteration, Dice)]``."""
    from ignite.engine import Events
    from monai.bundle import ConfigWorkflow

    interval, budget = preset["curve_interval"], preset["fine_tune_iterations"][dataset]
    if budget % interval:
        raise ValueError(f"the {dataset} budget of {budget} iterations is not a multiple of curve_interval {interval}.")
    datalist = write_datalist(work / "lists" / f"{run_name}.json", training=labelled, validation=evaluation)
    settings = dict(
        label_names=label_names, label_groups=label_groups, seed=seed, epoch_length=interval,
        max_epochs=budget // interval, val_interval=1, roi_size=preset["roi"], samples_per_volume=preset["samples"],
        batch_size=preset["batch"], use_pretrained=pretrained is not None, pretrained_path=pretrained,
        **network_overrides(preset, in_channels), **overrides)
    config_file = bundles / "brain_mri_segmentation" / "configs" / "train.json"
    # a finished run is kept under a hash of everything it depends on, so that an interrupted benchmark re-run
    # picks up where it stopped (and a changed setting, bundle default or checkpoint is never mistaken for a
    # finished run)
    key = hashlib.sha256(json.dumps([Path(datalist).read_text(), settings, file_digest(config_file),
                                     file_digest(pretrained) if pretrained else None], sort_keys=True).encode())
    finished = work / "fine_tune" / run_name / f"result_{key.hexdigest()[:16]}.json"
    if finished.exists():
        print(f"  {run_name}: finished earlier, result reused from {finished}", flush=True)
        result = json.loads(finished.read_text())
        return result["dice"], [tuple(point) for point in result["curve"]]
    workflow = ConfigWorkflow(
        config_file=str(config_file), workflow_type="train",
        datalist=datalist, output_dir=str(work / "fine_tune" / run_name),
        ckpt_dir=str(work / "fine_tune" / run_name / "models"), **settings)
    workflow.initialize()
    trainer = workflow.parser.get_parsed_content("train#trainer")
    evaluator = workflow.parser.get_parsed_content("validate#evaluator")
    # the curve follows the table's score: the mean of the reported Dice (classes, or tumour regions)
    reported = [f"val_dice_{name}" for name in (label_groups or {n: v for n, v in label_names.items() if v})]
    curve: list[tuple[int, float]] = []
    evaluator.add_event_handler(Events.COMPLETED, lambda e: curve.append(
        (int(trainer.state.iteration), float(np.mean([e.state.metrics[k] for k in reported])))))
    workflow.run()
    workflow.finalize()
    metrics = evaluator.state.metrics
    dice = {k[len("val_dice_"):]: float(v) for k, v in metrics.items() if k.startswith("val_dice_")}
    with atomic_path(finished) as temporary:
        Path(temporary).write_text(json.dumps({"dice": dice, "curve": curve}))
    return dice, curve


def file_digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# ---- reporting -----------------------------------------------------------------------------------------------
def mean_sd(values) -> str:
    """Mean ± sample standard deviation (ddof 1) — the one spread used in tables and plots."""
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.3f} ± {values.std(ddof=1) if values.size > 1 else 0.0:.3f}"


def sd(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1)) if values.size > 1 else 0.0


def verdict(differences: list[float]) -> str:
    """Reading of paired differences (arm - scratch, same seed and fold): their mean against their spread."""
    differences = np.asarray(differences, dtype=float)
    mean = differences.mean()
    if differences.size < 2:
        return f"{mean:+.3f} (one pair: no spread to judge it by)"
    spread = differences.std(ddof=1)
    standard_error = spread / np.sqrt(differences.size)
    if abs(mean) <= 2 * standard_error:
        return f"{mean:+.3f} ± {spread:.3f} (within 2 standard errors: no clear effect)"
    return f"{mean:+.3f} ± {spread:.3f} ({'helps' if mean > 0 else 'hurts'}, beyond 2 standard errors)"


def iterations_to_reach(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((iteration for iteration, dice in curve if dice >= target), None)


def parse_pretrained(values: list[str]) -> dict[str, list[str]]:
    arms: dict[str, list[str]] = {}
    for value in values or []:
        arm, _, paths = value.partition("=")
        if arm not in ARMS[1:] or not paths:
            raise SystemExit(f"--pretrained takes ARM=PATH[,PATH...] with ARM one of {ARMS[1:]}, got {value!r}.")
        arms[arm] = paths.split(",")
        for path in arms[arm]:
            if not os.path.isfile(path):
                raise SystemExit(f"--pretrained {arm}: no checkpoint at {path}.")
    return arms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--work-dir", help="intermediate files (default: outputs/label_efficiency/<preset>)")
    parser.add_argument("--results-dir", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--brats-train-subjects", nargs="+", help="BraTS subjects to fine-tune on, one fold each "
                        "(default: the 'train' folder); their images are in the --pretrain pool")
    parser.add_argument("--brats-eval-subjects", nargs="+", help="BraTS subjects that are only evaluated, never "
                        "pretrained or tuned on (default: the 'validation' folder)")
    parser.add_argument("--regions-train", nargs="+", type=int, default=list(range(1, 16)),
                        help="regions subjects of the pretraining pool; the first 1, 2 and 4 are fine-tuned on")
    parser.add_argument("--regions-eval", nargs="+", type=int, default=list(range(16, 21)))
    parser.add_argument("--arms", nargs="+", default=["scratch", "all"], choices=ARMS)
    parser.add_argument("--datasets", nargs="+", default=["regions", "tumour"], choices=["regions", "tumour"])
    parser.add_argument("--seeds", nargs="+", type=int, help="fine-tuning seeds (default: the preset's)")
    parser.add_argument("--label-counts", nargs="+", type=int,
                        help="labelled region subjects per setting (default: the preset's)")
    parser.add_argument("--pretrained", nargs="+", metavar="ARM=PATH[,PATH...]",
                        help="checkpoints of the pretrained arms, one per seed or one for all (default: the "
                        "shipped encoder for 'all')")
    parser.add_argument("--pretrain", action="store_true", help="pretrain every pretrained arm and seed here "
                        "instead (the preset's short budget), on the pool of the training subjects")
    parser.add_argument("--choose-budget", action="store_true",
                        help="only measure the fine-tuning budget at which scratch plateaus on training subjects")
    parser.add_argument("--max-iterations", type=int, default=480, help="longest budget tried by --choose-budget")
    parser.add_argument("--budget-interval", type=int, default=40, help="validation interval of --choose-budget")
    parser.add_argument("--fine-tune-overrides", type=json.loads, default={},
                        help="segmentation-bundle settings for every arm, scratch included, e.g. "
                        "'{\"freeze_encoder_epochs\": 2}'")
    args = parser.parse_args()
    preset = dict(PRESETS[args.preset])
    if args.seeds:
        preset["seeds"] = args.seeds
    if args.label_counts:
        if min(args.label_counts) < 1:
            raise SystemExit(f"--label-counts must be positive, got {args.label_counts}.")
        preset["label_counts"] = sorted(set(args.label_counts))
    data_root = Path(args.data_root)
    if not data_root.is_dir():
        raise SystemExit(f"--data-root {data_root} is not a folder laid out like ../shared/data.")
    overlap = set(args.regions_train) & set(args.regions_eval)
    if overlap:
        raise SystemExit(f"--regions-train and --regions-eval share subjects {sorted(overlap)}; evaluation subjects "
                         "must never be pretrained or fine-tuned on.")
    default_train, default_eval = default_brats_split(data_root)
    brats_train = args.brats_train_subjects or default_train
    brats_eval = args.brats_eval_subjects or default_eval
    if set(brats_train) & set(brats_eval):
        shared = sorted(set(brats_train) & set(brats_eval))
        raise SystemExit(f"--brats-train-subjects and --brats-eval-subjects share {shared}.")
    if max(preset["label_counts"]) > len(args.regions_train):
        preset["label_counts"] = [c for c in preset["label_counts"] if c <= len(args.regions_train)]
    pretrained = parse_pretrained(args.pretrained)
    if not args.pretrain and "all" in args.arms and "all" not in pretrained:
        pretrained["all"] = [str(SHIPPED)]
    missing = [a for a in args.arms if a != "scratch" and a not in pretrained and not args.pretrain]
    if missing:
        raise SystemExit(f"arms {missing} have no checkpoint: give --pretrained {missing[0]}=PATH, or --pretrain.")

    import torch

    torch.set_num_threads(preset["threads"])
    logging.disable(logging.WARNING)  # the bundles' per-iteration logs would drown the summary
    start = time.time()
    commit = source_state(args.results_dir)
    work = Path(args.work_dir or REPO / "outputs" / "label_efficiency" / args.preset).resolve()
    bundles = find_bundles_dir()
    regions = synthesise_regions(data_root, work, sorted(set(args.regions_train + args.regions_eval)))
    train_subjects = brats_subjects(data_root, brats_train)
    eval_subjects = brats_subjects(data_root, brats_eval)
    region_names = {"background": 0, **{name: i for i, name in enumerate(BRAIN_REGIONS, start=1)}}
    tumour_names = {"background": 0, "necrosis": 1, "oedema": 2, "non_enhancing": 3, "enhancing": 4}

    if args.choose_budget:
        choose_budget(args, preset, bundles, work, regions, train_subjects, region_names, tumour_names)
        return

    pool = pretraining_pool(data_root, args.regions_train, train_subjects)

    def checkpoint(arm: str, seed_index: int, seed: int) -> str | None:
        if arm == "scratch":
            return None
        if args.pretrain:
            return pretrain(bundles, work, arm, seed, pool, preset)
        paths = pretrained[arm]
        return paths[seed_index] if len(paths) > 1 else paths[0]

    # results[dataset][setting][arm][(seed, fold)] = {"dice": {class: Dice}, "curve": [(iteration, Dice)]}
    results: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    for arm in args.arms:
        for seed_index, seed in enumerate(preset["seeds"]):
            model = checkpoint(arm, seed_index, seed)
            if "regions" in args.datasets:
                evaluation = [regions[s] for s in args.regions_eval]
                for count in preset["label_counts"]:
                    labelled = [regions[s] for s in args.regions_train[:count]]
                    print(f"regions: {arm}, {count} labelled, seed {seed}", flush=True)
                    dice, curve = fine_tune(bundles, work, "regions", f"regions_{count}_{arm}_{seed}", labelled,
                                            evaluation, preset, seed, model, region_names, {}, 1,
                                            args.fine_tune_overrides)
                    results["regions"][count][arm][(seed, 0)] = {"dice": dice, "curve": curve}
            if "tumour" in args.datasets:
                for fold, labelled in enumerate(train_subjects):
                    print(f"tumour: {arm}, fold {fold} ({labelled['name']}), seed {seed}", flush=True)
                    metrics, curve = fine_tune(bundles, work, "tumour", f"tumour_{fold}_{arm}_{seed}", [labelled],
                                               eval_subjects, preset, seed, model, tumour_names, TUMOUR_REGIONS, 2,
                                               args.fine_tune_overrides)
                    dice = {region: metrics[region] for region in TUMOUR_REGIONS}
                    results["tumour"][1][arm][(seed, fold)] = {"dice": dice, "curve": curve}
        # after every arm, so that a long run stopped early still leaves the arms it finished
        write_results(args, preset, results, pretrained, time.time() - start,
                      {"tumour": (brats_train, brats_eval), "regions": (args.regions_train, args.regions_eval)},
                      commit, final=arm == args.arms[-1])


def choose_budget(args, preset, bundles, work, regions, train_subjects, region_names, tumour_names) -> None:
    """Scratch on one labelled subject, validated on training-pool subjects that are neither labelled nor
    evaluated; prints the first iteration within 2 Dice points of the best."""
    probe = dict(preset, fine_tune_iterations={"regions": args.max_iterations, "tumour": args.max_iterations},
                 curve_interval=args.budget_interval)
    seed = preset["seeds"][0]
    lines = []
    if "regions" in args.datasets:
        labelled, held = args.regions_train[:1], args.regions_train[-3:]
        _, curve = fine_tune(bundles, work, "regions", "budget_regions", [regions[s] for s in labelled],
                             [regions[s] for s in held], probe, seed, None, region_names, {}, 1, {})
        lines.append(report_budget("regions", f"labelled {labelled}, validated on training subjects {held}", curve))
    if "tumour" in args.datasets and len(train_subjects) > 1:
        _, curve = fine_tune(bundles, work, "tumour", "budget_tumour", train_subjects[:1], train_subjects[1:], probe, seed,
                             None, tumour_names, TUMOUR_REGIONS, 2, {})
        lines.append(report_budget("tumour", f"labelled {train_subjects[0]['name']}, validated on "
                                   f"{[s['name'] for s in train_subjects[1:]]}", curve))
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


def write_results(args, preset: dict, results: dict, pretrained: dict, seconds: float, subjects: dict,
                  commit: str, final: bool = True) -> None:
    out = Path(args.results_dir)
    out.mkdir(parents=True, exist_ok=True)
    pretraining = ("pretrained here (`--pretrain`), one model per arm and seed" if args.pretrain else
                   "; ".join(f"{arm}: {', '.join(os.path.relpath(p, REPO) if p.startswith(str(REPO)) else p for p in paths)}"
                             for arm, paths in pretrained.items() if arm in args.arms) or "none")
    lines = ["# Label-efficiency benchmark", "",
             f"- command: `python benchmarks/label_efficiency.py {shlex.join(sys.argv[1:])}`",
             f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; commit {commit}",
             f"- machine: {platform.platform()}, {os.cpu_count()} CPU cores, torch threads {preset['threads']}",
             f"- wall time: {seconds / 60:.1f} min" + ("" if final else
                                                       f" (unfinished: arms {list(results_arms(results))} so far)"),
             f"- preset `{args.preset}`: {json.dumps(preset)}",
             f"- pretrained weights: {pretraining}",
             f"- fine-tuning overrides for every arm: {json.dumps(args.fine_tune_overrides) or '{}'}; "
             f"{speed_settings(args.fine_tune_overrides)}",
             f"- tumour: fine-tuned on each of {subjects['tumour'][0]} (one fold each), evaluated on "
             f"{subjects['tumour'][1]}; regions: fine-tuned on the first N of {subjects['regions'][0]}, evaluated on "
             f"{subjects['regions'][1]}. Evaluation subjects are never pretrained on, fine-tuned on or used to choose "
             "anything.", "",
             "Cells: mean ± sd (ddof 1) over seeds (tumour: over seeds × folds) of the mean Dice over evaluation "
             "subjects. *vs scratch*: mean ± sd of the paired differences (same seed and fold), with a reading "
             "against 2 standard errors. *iterations to scratch's final*: the first validation point at which the "
             "arm's mean curve reaches scratch's final mean Dice (for reading; the headline is the final model).",
             ""]
    headline = {}
    for dataset, settings in results.items():
        for setting, arms in sorted(settings.items()):
            first = next(iter(next(iter(arms.values())).values()))
            classes = list(first["dice"])
            title = (f"Brain tumour (BraTS, FLAIR + T1c), 1 labelled subject, {len(subjects['tumour'][0])} folds"
                     if dataset == "tumour" else
                     f"Brain regions (synthetic T1 from real anatomies), {setting} labelled subject(s)")
            lines += [f"## {title}", "", "| arm | mean | " + " | ".join(classes) +
                      " | vs scratch (paired) | iterations to scratch's final |",
                      "|---|---|" + "---|" * len(classes) + "---|---|"]
            scratch = arms.get("scratch", {})
            scratch_final = np.mean([np.mean(list(r["dice"].values())) for r in scratch.values()]) if scratch else None
            for arm, runs in arms.items():
                means = [np.mean(list(r["dice"].values())) for r in runs.values()]
                cells = [mean_sd([r["dice"][c] for r in runs.values()]) for c in classes]
                against, reach = "-", "-"
                if arm != "scratch" and scratch:
                    pairs = [k for k in runs if k in scratch]
                    differences = [np.mean(list(runs[k]["dice"].values())) - np.mean(list(scratch[k]["dice"].values()))
                                   for k in pairs]
                    against = verdict(differences)
                    curve = mean_curve(runs)
                    reached = iterations_to_reach(curve, scratch_final)
                    reach = f"{reached} of {curve[-1][0]}" if reached is not None else f"not within {curve[-1][0]}"
                    key = ("whole_tumour" if dataset == "tumour" else "mean", dataset, setting, arm)
                    if dataset == "tumour":
                        differences = [runs[k]["dice"]["whole_tumour"] - scratch[k]["dice"]["whole_tumour"]
                                       for k in pairs]
                    headline[key] = (float(np.mean(differences)), sd(differences), reached, curve[-1][0])
                lines.append(f"| {arm} | {mean_sd(means)} | " + " | ".join(cells) + f" | {against} | {reach} |")
            lines.append("")
    lines += goals(headline)
    (out / "label_efficiency.md").write_text("\n".join(lines) + "\n")
    raw = {dataset: {str(setting): {arm: {f"seed{seed}_fold{fold}": run for (seed, fold), run in runs.items()}
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


def goals(headline: dict) -> list[str]:
    """The issue's goals, each met or not, from the paired differences and the mean curves."""
    lines = ["## Goals", ""]
    for (metric, dataset, setting, arm), (mean, spread, reached, budget) in sorted(headline.items()):
        if dataset == "tumour":
            lines.append(f"- tumour, {arm}: whole-tumour Dice {100 * mean:+.1f} ± {100 * spread:.1f} points vs scratch "
                         f"(goal ≥ +5): {'met' if mean >= 0.05 else 'not met'}")
        elif setting == 1:
            lines.append(f"- regions, 1 labelled, {arm}: mean region Dice {100 * mean:+.1f} ± {100 * spread:.1f} "
                         f"points vs scratch (goal ≥ +3): {'met' if mean >= 0.03 else 'not met'}")
        else:
            continue
        half = reached is not None and reached <= budget / 2
        lines.append(f"  - reaches scratch's final Dice at iteration {reached if reached is not None else '-'} "
                     f"of {budget} (goal: half or fewer): {'met' if half else 'not met'}")
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
    for dataset, settings in results.items():
        arms = {arm for arms in settings.values() for arm in arms}
        for arm in [a for a in ARMS if a in arms]:
            counts = sorted(c for c in settings if arm in settings[c])
            values = [[np.mean(list(r["dice"].values())) for r in settings[c][arm].values()] for c in counts]
            summary.errorbar(np.array(counts) + 0.05 * ARMS.index(arm), [np.mean(v) for v in values],
                             yerr=[sd(v) for v in values], marker="o", capsize=3, label=f"{dataset}: {arm}")
    summary.set_xlabel("labelled subjects")
    summary.set_ylabel("mean Dice (final model)")
    summary.set_title("final Dice, mean ± sd", fontsize=10)
    summary.legend(fontsize=7)
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
