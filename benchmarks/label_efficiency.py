"""Label-efficiency benchmark on real MRI: does pretraining help with one or two labelled subjects?

It drives the two bundles through ``ConfigWorkflow`` (the code users run) and adds no training path of its own:
for each dataset it pretrains one model per arm (each single pretext task, and all four) on the unlabelled
pool, fine-tunes from scratch and from each pretrained model with the same budget, network, augmentation and
schedule, and evaluates the *final* model (no model selection on evaluation subjects) on held-out subjects in
their original geometry.

Datasets (``--data-root``, default ``../shared/data``):

1. brain tumour: ``brats_deepmedic``, 4 subjects, FLAIR + T1c. Pretraining pool: the 4 subjects' images plus the
   human template brains of ``brain_atlas`` (Colin27, MNI152 T1; single-channel, given in both channels). Fine-
   tuning on 1 labelled subject, evaluated on the other 3, rotating the labelled subject across 4 folds. Dice of
   whole tumour (labels 1-4), tumour core (1, 3, 4) and enhancing tumour (4).
2. brain regions: T1-like images synthesised (SynthSeg-style) from the 20 real anatomies of
   ``synthseg_label_maps`` at 2 mm; labels grouped into 6 regions. Pretraining pool: subjects 1-15, unlabelled.
   Fine-tuning on subject 1, and on subjects 1-2. Evaluation on subjects 16-20, never pretrained or tuned on.

Run: ``python benchmarks/label_efficiency.py --preset cpu`` (or ``gpu``); ``--brats-subjects`` and
``--regions-train``/``--regions-eval`` choose other subjects. Results: ``benchmarks/results/label_efficiency.md``
and ``label_efficiency.png``.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monai_ssl.data.synthesis import BRAIN_REGIONS, group_labels, synthesize_t1  # noqa: E402
from monai_ssl.demo import find_bundles_dir, run_bundle  # noqa: E402

ARMS = ["scratch", "jigsaw", "rotation", "colorization", "relative_position", "all"]
TASKS = ["jigsaw", "rotation", "colorization", "relative_position"]
TUMOUR_REGIONS = {"whole_tumour": [1, 2, 3, 4], "tumour_core": [1, 3, 4], "enhancing_tumour": [4]}
PRESETS = {
    # 2 cores, within 60 minutes: 3 mm voxels, 48^3 crops, a small UNet, short budgets
    "cpu": {"spacing": [3.0, 3.0, 3.0], "roi": [48, 48, 48], "channels": [8, 16, 32, 64], "res_units": 1,
            "pretrain_epochs": 6, "pretrain_epoch_length": 10, "fine_tune_epochs": 60, "samples": 4, "batch": 2,
            "seeds": [0, 1, 2], "threads": 2},
    "gpu": {"spacing": [1.5, 1.5, 1.5], "roi": [96, 96, 96], "channels": [16, 32, 64, 128], "res_units": 2,
            "pretrain_epochs": 50, "pretrain_epoch_length": 40, "fine_tune_epochs": 400, "samples": 4, "batch": 2,
            "seeds": [0, 1, 2], "threads": 8},
    # a minute-long run of every step, for the tests
    "smoke": {"spacing": [6.0, 6.0, 6.0], "roi": [32, 32, 32], "channels": [8, 16, 32], "res_units": 1,
              "pretrain_epochs": 1, "pretrain_epoch_length": 1, "fine_tune_epochs": 1, "samples": 1, "batch": 1,
              "seeds": [0], "threads": 2},
}
TASK_ARGS = {
    48: {"jigsaw": {"grid": [2, 2, 2], "num_permutations": 24, "gap": 2, "jitter": 2},
         "relative_position": {"patch_size": [12, 12, 12], "gap": 2, "jitter": 2, "foreground_threshold": 0.05}},
    96: {"jigsaw": {"grid": [2, 2, 2], "num_permutations": 100, "gap": 4, "jitter": 2},
         "relative_position": {"patch_size": [24, 24, 24], "gap": 4, "jitter": 2, "foreground_threshold": 0.05}},
    32: {"jigsaw": {"grid": [2, 2, 2], "num_permutations": 10, "gap": 2, "jitter": 1},
         "relative_position": {"patch_size": [8, 8, 8], "gap": 1, "jitter": 1}},
}


# ---- data ----------------------------------------------------------------------------------------------------
def brats_subjects(data_root: Path, names: list[str] | None) -> list[dict]:
    folders = sorted(glob.glob(str(data_root / "brats_deepmedic" / "*" / "brats_*")))
    if names:
        folders = [f for f in folders if os.path.basename(f) in names]
    return [{"name": os.path.basename(f), "image": [f"{f}/Flair_subtrMeanDivStd.nii.gz", f"{f}/T1c_subtrMeanDivStd.nii.gz"],
             "label": f"{f}/OTMultiClass.nii.gz"} for f in folders]


def brats_templates(data_root: Path) -> list[dict]:
    names = ["ch2better.nii.gz", "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"]
    paths = [str(data_root / "brain_atlas" / n) for n in names if (data_root / "brain_atlas" / n).exists()]
    return [{"image": [p, p]} for p in paths]  # single-channel templates, in both input channels


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
            "network_def#num_res_units": preset["res_units"], "spacing": preset["spacing"],
            "roi_size": preset["roi"], "num_workers": 0}


def pretrain(bundles: Path, work: Path, dataset: str, arm: str, pool: list[dict], preset: dict,
             in_channels: int, num_classes: int) -> str:
    output = work / "pretrain" / dataset / arm
    model = output / "models" / "model.pt"
    if not model.exists():
        run_bundle(str(bundles / "pretext_pretraining" / "configs" / "train.json"),
                   datalist=write_datalist(work / "lists" / f"{dataset}_pool.json", training=pool),
                   output_dir=str(output), tasks=TASKS if arm == "all" else [arm],
                   task_args=TASK_ARGS[preset["roi"][0]], max_epochs=preset["pretrain_epochs"],
                   epoch_length=preset["pretrain_epoch_length"], samples_per_volume=preset["samples"],
                   batch_size=preset["batch"], num_classes=num_classes, seed=0,
                   **network_overrides(preset, in_channels))
    return str(model)


def fine_tune(bundles: Path, work: Path, run_name: str, labelled: list[dict], evaluation: list[dict],
              preset: dict, seed: int, pretrained: str | None, label_names: dict, label_groups: dict,
              in_channels: int, overrides: dict) -> dict[str, float]:
    """Fine-tune on ``labelled`` with the fixed budget through the segmentation bundle, which validates the final
    model once, after the last epoch, on ``evaluation`` (nothing is selected on it); returns its Dice metrics."""
    datalist = write_datalist(work / "lists" / f"{run_name}.json", training=labelled, validation=evaluation)
    workflow = run_bundle(
        str(bundles / "brain_mri_segmentation" / "configs" / "train.json"), datalist=datalist,
        output_dir=str(work / "fine_tune" / run_name), label_names=label_names, label_groups=label_groups,
        seed=seed, max_epochs=preset["fine_tune_epochs"], val_interval=preset["fine_tune_epochs"],
        samples_per_volume=preset["samples"], batch_size=preset["batch"], use_pretrained=pretrained is not None,
        pretrained_path=pretrained, **network_overrides(preset, in_channels), **overrides)
    metrics = workflow.parser.get_parsed_content("validate#evaluator").state.metrics
    return {k[len("val_dice_"):]: float(v) for k, v in metrics.items() if k.startswith("val_dice_")}


# ---- reporting -----------------------------------------------------------------------------------------------
def mean_sd(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1) if len(values) > 1 else 0.0:.3f}"


def verdict(arm_scores: list[float], scratch_scores: list[float]) -> str:
    difference = np.mean(arm_scores) - np.mean(scratch_scores)
    if min(len(arm_scores), len(scratch_scores)) < 2:
        return f"{difference:+.3f} (one seed: no spread to judge it by)"
    spread = max(np.std(arm_scores, ddof=1) if len(arm_scores) > 1 else 0,
                 np.std(scratch_scores, ddof=1) if len(scratch_scores) > 1 else 0)
    if abs(difference) <= spread:
        return f"{difference:+.3f} (within 1 sd: no clear effect)"
    return f"{difference:+.3f} ({'helps' if difference > 0 else 'hurts'}, beyond 1 sd)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--work-dir", help="intermediate files (default: outputs/label_efficiency/<preset>); "
                        "pretrained models found there are reused")
    parser.add_argument("--results-dir", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--brats-subjects", nargs="+", help="BraTS subject folder names (default: all 4)")
    parser.add_argument("--regions-train", nargs="+", type=int, default=list(range(1, 16)),
                        help="regions subjects for pretraining; the first 1 and 2 are fine-tuned on")
    parser.add_argument("--regions-eval", nargs="+", type=int, default=list(range(16, 21)))
    parser.add_argument("--arms", nargs="+", default=ARMS, choices=ARMS)
    parser.add_argument("--datasets", nargs="+", default=["regions", "tumour"], choices=["regions", "tumour"])
    parser.add_argument("--seeds", nargs="+", type=int, help="fine-tuning seeds (default: the preset's)")
    parser.add_argument("--fine-tune-overrides", type=json.loads, default={},
                        help="segmentation-bundle settings for every arm, scratch included, e.g. "
                        "'{\"freeze_encoder_epochs\": 20}' or '{\"encoder_only\": false}'")
    args = parser.parse_args()
    preset = dict(PRESETS[args.preset])
    if args.seeds:
        preset["seeds"] = args.seeds
    import torch

    torch.set_num_threads(preset["threads"])
    logging.disable(logging.INFO)  # the bundles' per-iteration logs would drown the summary
    start = time.time()
    data_root = Path(args.data_root)
    work = Path(args.work_dir or f"outputs/label_efficiency/{args.preset}").resolve()
    bundles = find_bundles_dir()
    # scores[dataset][setting][arm][seed] = {class: mean Dice over evaluation subjects (and folds)}
    scores: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))

    if "regions" in args.datasets:
        entries = synthesise_regions(data_root, work, sorted(set(args.regions_train + args.regions_eval)))
        pool = [{"image": entries[s]["image"]} for s in args.regions_train]
        evaluation = [entries[s] for s in args.regions_eval]
        names = {"background": 0, **{name: i for i, name in enumerate(BRAIN_REGIONS, start=1)}}
        for arm in args.arms:
            model = None if arm == "scratch" else pretrain(bundles, work, "regions", arm, pool, preset, 1, len(names))
            for count in (1, 2):
                labelled = [entries[s] for s in args.regions_train[:count]]
                for seed in preset["seeds"]:
                    print(f"regions: {arm}, {count} labelled, seed {seed}", flush=True)
                    scores["regions"][count][arm][seed] = fine_tune(
                        bundles, work, f"regions_{count}_{arm}_{seed}", labelled, evaluation, preset, seed, model,
                        names, {}, 1, args.fine_tune_overrides)

    if "tumour" in args.datasets:
        subjects = brats_subjects(data_root, args.brats_subjects)
        pool = [{"image": s["image"]} for s in subjects] + brats_templates(data_root)
        names = {"background": 0, "necrosis": 1, "oedema": 2, "non_enhancing": 3, "enhancing": 4}
        for arm in args.arms:
            model = None if arm == "scratch" else pretrain(bundles, work, "tumour", arm, pool, preset, 2, len(names))
            for seed in preset["seeds"]:
                per_region = defaultdict(list)
                for fold, labelled in enumerate(subjects):
                    evaluation = [s for s in subjects if s is not labelled]
                    print(f"tumour: {arm}, fold {fold}, seed {seed}", flush=True)
                    metrics = fine_tune(bundles, work, f"tumour_{fold}_{arm}_{seed}", [labelled], evaluation,
                                        preset, seed, model, names, TUMOUR_REGIONS, 2, args.fine_tune_overrides)
                    for region in TUMOUR_REGIONS:
                        per_region[region].append(metrics[region])
                scores["tumour"][1][arm][seed] = {k: float(np.mean(v)) for k, v in per_region.items()}
        scores["tumour"]["folds"] = len(subjects)

    write_results(args, preset, scores, time.time() - start)


def write_results(args, preset: dict, scores: dict, seconds: float) -> None:
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    lines = ["# Label-efficiency benchmark", "",
             f"- command: `python benchmarks/label_efficiency.py {' '.join(sys.argv[1:])}`",
             f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; commit {commit}",
             f"- machine: {platform.platform()}, {os.cpu_count()} CPU cores, torch threads {preset['threads']}",
             f"- wall time: {seconds / 60:.1f} min",
             f"- preset `{args.preset}`: {json.dumps(preset)}",
             f"- fine-tuning overrides for every arm: {json.dumps(args.fine_tune_overrides) or '{}'}", "",
             "Each cell: mean ± sd over seeds of the mean Dice over evaluation subjects (and, for the tumour, the "
             "folds). The final fine-tuned model is evaluated; no hyper-parameter or checkpoint is chosen on "
             "evaluation subjects, and every arm has the same fine-tuning budget; arms differ only in their "
             "initial weights.", ""]
    for dataset, settings in scores.items():
        folds = settings.pop("folds", None)
        for setting, arms in sorted(settings.items()):
            classes = list(next(iter(next(iter(arms.values())).values())))
            title = (f"Brain tumour (BraTS, FLAIR + T1c), 1 labelled subject, {folds} folds" if dataset == "tumour" else
                     f"Brain regions (synthetic T1 from real anatomies), {setting} labelled subject(s)")
            lines += [f"## {title}", "", "| arm | mean | " + " | ".join(classes) + " | vs scratch (mean) |",
                      "|---|---|" + "---|" * len(classes) + "---|"]
            scratch = [np.mean(list(v.values())) for v in arms.get("scratch", {}).values()]
            for arm, seeds in arms.items():
                means = [np.mean(list(v.values())) for v in seeds.values()]
                cells = [mean_sd([v[c] for v in seeds.values()]) for c in classes]
                against = verdict(means, scratch) if arm != "scratch" and scratch else "-"
                lines.append(f"| {arm} | {mean_sd(means)} | " + " | ".join(cells) + f" | {against} |")
            lines.append("")
    (results / "label_efficiency.md").write_text("\n".join(lines) + "\n")
    plot(scores, results / "label_efficiency.png")
    print("\n".join(lines))
    print(f"\nwrote {results / 'label_efficiency.md'} and {results / 'label_efficiency.png'}")


def plot(scores: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(scores), figsize=(6 * len(scores), 4.5), squeeze=False)
    for ax, (dataset, settings) in zip(axes[0], scores.items()):
        arms = {arm for arms in settings.values() for arm in arms}
        for arm in [a for a in ARMS if a in arms]:
            counts = sorted(c for c in settings if arm in settings[c])
            means = [np.mean([np.mean(list(v.values())) for v in settings[c][arm].values()]) for c in counts]
            sds = [np.std([np.mean(list(v.values())) for v in settings[c][arm].values()]) for c in counts]
            ax.errorbar(np.array(counts) + 0.03 * ARMS.index(arm), means, yerr=sds, marker="o", capsize=3, label=arm)
        ax.set_xticks(sorted(settings))
        ax.set_xlabel("labelled subjects")
        ax.set_ylabel("mean Dice over classes")
        ax.set_title("brain regions (synthetic T1)" if dataset == "regions" else "brain tumour (BraTS)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
