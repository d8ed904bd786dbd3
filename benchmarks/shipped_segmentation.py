"""The brain-region model shipped in ``bundles/brain_mri_segmentation/models/model.pt``, made and measured by one
command: the segmentation bundle fine-tuned on 8 labelled IXI ``train`` subjects (fold 0's draw of
``benchmarks/real_mri.py``) for the 8 coarse MUSE regions,

- ``pretrained``: from the shipped real-MRI encoder (the bundle's ``use_pretrained``), the model that ships;
- ``scratch``: the same network, subjects and schedule from random weights;
- ``all``: from scratch on the whole 102-subject labelled pool (an upper bound at the same schedule).

Each run keeps the checkpoint with the best mean Dice on the 8 IXI *tuning* subjects (training side), then
``evaluate.json`` scores it on the 40 IXI ``eval`` subjects, which choose nothing. The labels are automated
DLMUSE segmentations: a silver standard. Schedule: the label-efficiency benchmark's cpu preset (48³ crops, batch 2 x 2
crops, 1,040 iterations, validation every 260).

With ``--ship``, the pretrained arm's ``model.pt`` is copied into the bundle and ``inference.json``, run as a user would
(the bundle's defaults, one IXI eval scan in a folder), draws ``docs/segmentation_example.png``.

Run: ``python benchmarks/shipped_segmentation.py [--arms pretrained scratch all] [--ship]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import torch  # noqa: E402

from label_efficiency import write_datalist  # noqa: E402
from monai_ssl.bundle import default_labels  # noqa: E402
from real_mri import ixi_subjects, labelled_draw, split_ixi_train  # noqa: E402

BUNDLE = REPO / "bundles" / "brain_mri_segmentation"
LABELLED = 8
ITERATIONS, VALIDATIONS = 1040, 4
SETTINGS = {
    **default_labels(), "roi_size": [48, 48, 48], "samples_per_volume": 2,
    "batch_size": 2, "epoch_length": ITERATIONS // VALIDATIONS, "max_epochs": VALIDATIONS, "val_interval": 1,
    "num_workers": 0, "seed": 0,
}


def run_arm(arm: str, work: Path, training: list[dict], tuning: list[dict], evaluation: list[dict]) -> dict:
    """Train one arm (best checkpoint on the tuning subjects), then evaluate it on ``evaluation``; cached."""
    from monai.bundle import ConfigWorkflow

    out = work / arm
    result_path = out / "result.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    names = [n for n, v in SETTINGS["label_names"].items() if v]
    start = time.perf_counter()
    train_list = write_datalist(out / "train.json", training=training, validation=tuning)
    train = ConfigWorkflow(config_file=str(BUNDLE / "configs" / "train.json"), workflow_type="train",
                           datalist=train_list, output_dir=str(out), ckpt_dir=str(out / "models"),
                           use_pretrained=arm == "pretrained", **SETTINGS)
    train.initialize()
    train.run()
    trainer = train.parser.get_parsed_content("train#trainer")
    train.finalize()
    minutes = (time.perf_counter() - start) / 60
    eval_list = write_datalist(out / "eval.json", training=training, validation=evaluation)
    evaluate = ConfigWorkflow(config_file=[str(BUNDLE / "configs" / "train.json"),
                                           str(BUNDLE / "configs" / "evaluate.json")], workflow_type="eval",
                              datalist=eval_list, output_dir=str(out / "eval"),
                              ckpt_dir=str(out / "models"), **SETTINGS)
    evaluate.initialize()
    evaluate.run()
    metrics = evaluate.parser.get_parsed_content("validate#evaluator").state.metrics
    evaluate.finalize()
    result = {"dice": {n: float(metrics[f"val_dice_{n}"]) for n in names},
              "skipped_steps": int(trainer.state.skipped_steps), "train_minutes": round(minutes, 1),
              "labelled": [e["name"] for e in training]}
    result["mean"] = sum(result["dice"].values()) / len(names)
    result_path.write_text(json.dumps(result, indent=1))
    return result


def draw_example(subject: dict, work: Path, picture: Path) -> None:
    """Segment one scan with the shipped bundle's ``inference.json`` and its defaults; draw it with its result."""
    import nibabel as nib
    from monai.bundle import ConfigWorkflow

    from monai_ssl.visualize import render_segmentation_montage

    scans = work / "example" / "scans"
    scans.mkdir(parents=True, exist_ok=True)
    scan = scans / Path(subject["image"]).name
    if not scan.exists():
        scan.symlink_to(subject["image"])
    infer = ConfigWorkflow(config_file=str(BUNDLE / "configs" / "inference.json"), workflow_type="infer",
                           dataset_dir=str(scans), output_dir=str(work / "example"), num_workers=0)
    infer.initialize()
    infer.run()
    infer.finalize()
    prediction = next((work / "example" / "predictions").rglob("*_seg.nii.gz"))
    # the prediction is written in the scan's own voxel order (IXI's is sagittal): both drawn in RAS
    image, labels = (nib.as_closest_canonical(nib.load(p)).get_fdata() for p in (scan, prediction))
    render_segmentation_montage(image, labels, str(picture), SETTINGS["label_names"],
                                title=f"{subject['name']} (IXI eval, never used to choose anything): the shipped "
                                "model's brain regions")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--work-dir", default=str(REPO / "outputs" / "shipped_segmentation"))
    parser.add_argument("--arms", nargs="+", default=["pretrained", "scratch", "all"],
                        choices=["pretrained", "scratch", "all"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ship", action="store_true",
                        help="copy the pretrained arm's model.pt into the segmentation bundle's models/")
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "results" / "shipped_segmentation.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = Path(args.data_root)
    tuning, pool = split_ixi_train(data)
    evaluation = ixi_subjects(data / "ixi_dlmuse" / "eval")
    training = {"pretrained": labelled_draw(pool, 0, LABELLED), "scratch": labelled_draw(pool, 0, LABELLED),
                "all": pool}
    work = Path(args.work_dir)
    results = {arm: run_arm(arm, work, training[arm], tuning, evaluation) for arm in args.arms}
    names = [n for n, v in SETTINGS["label_names"].items() if v]
    lines = [
        "# The shipped brain-region model",
        "",
        f"- command: `python benchmarks/shipped_segmentation.py --arms {' '.join(args.arms)}"
        f"{' --ship' if args.ship else ''}` ({args.threads} thread)",
        f"- labelled: {LABELLED} IXI train subjects, fold 0 of `benchmarks/real_mri.py` "
        f"({', '.join(training['pretrained'][i]['name'] for i in range(LABELLED))}); `all`: the {len(pool)}-subject "
        f"labelled pool. Checkpoint: best mean Dice on the {len(tuning)} IXI tuning subjects (training side). "
        f"Scores: the {len(evaluation)} IXI eval subjects, which chose nothing. DLMUSE labels: a silver standard.",
        f"- schedule: {ITERATIONS} iterations of batch 2 x 2 crops of 48³ at 2 mm, validation every "
        f"{ITERATIONS // VALIDATIONS}; one seed, one labelled draw: a description of the shipped model, not a "
        "comparison with an interval (that is `benchmarks/label_efficiency.py`)",
        "",
        "| arm | mean | " + " | ".join(names) + " | skipped steps | training minutes |",
        "|---|---|" + "---|" * len(names) + "---|---|",
    ]
    for arm, result in results.items():
        lines.append(f"| {arm} | {result['mean']:.3f} | " + " | ".join(f"{result['dice'][n]:.3f}" for n in names)
                     + f" | {result['skipped_steps']} | {result['train_minutes']} |")
    Path(args.results).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.ship:
        models = BUNDLE / "models"
        models.mkdir(exist_ok=True)
        shutil.copyfile(work / "pretrained" / "models" / "model.pt", models / "model.pt")
        print(f"shipped: {models / 'model.pt'} ({os.path.getsize(models / 'model.pt') / 1e6:.1f} MB)")
        draw_example(evaluation[0], work, BUNDLE / "docs" / "segmentation_example.png")


if __name__ == "__main__":
    main()
