"""Are the pretext tasks learnt? Held-out scores of pretraining checkpoints, against chance.

Scores each checkpoint (network + heads, e.g. the shipped ``bundles/pretext_pretraining/models/
pretext_checkpoint.pt``) on the ``validation`` list of a pool datalist: volumes outside the pretraining pool, in two
groups, synthetic scans of unseen anatomies (``label_map`` entries) and real MRI (``image`` entries). The default is
the real-MRI pool of ``benchmarks/real_mri.py``, whose held-out volumes come from the training side (IXI tuning
subjects, held-out OpenNeuro subjects): never a subject the label-efficiency benchmark evaluates on. The
crops and pseudo-labels are drawn from a fixed seed. With ``--history``, the held-out curves logged during
pretraining (``pretext_scores.json``) are plotted too.

Run: ``python benchmarks/pretext_scores.py bundles/pretext_pretraining/models/pretext_checkpoint.pt``
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monai_ssl.bundle import validation_files  # noqa: E402
from monai_ssl.checkpoint import load_checkpoint  # noqa: E402
from monai_ssl.evaluation import plot_pretext_scores, score_checkpoint, score_metric_name  # noqa: E402
from monai_ssl.tasks import create_task  # noqa: E402

TARGETS = {"rotation_accuracy": ">= 0.90", "relative_position_accuracy": ">= 0.60", "jigsaw_accuracy": ">= 0.80",
           "colorization_mse_ratio": "< 0.50"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="pretraining checkpoints with heads")
    parser.add_argument("--datalist", default=str(REPO / "sample_configs" / "brain_mri_real_pool_datalist.json"))
    parser.add_argument("--samples-per-volume", type=int, default=8)
    parser.add_argument("--spacing", type=float, nargs=3, default=[2.0, 2.0, 2.0])
    parser.add_argument("--roi-size", type=int, nargs=3, default=[64, 64, 64])
    parser.add_argument("--history", help="a pretext_scores.json written during pretraining, to plot")
    parser.add_argument("--plot", default=str(REPO / "outputs" / "pretext_scores.png"),
                        help="where the --history plot goes (the bundle docs' plots are written only when named here)")
    parser.add_argument("--out", help="also write the table to this markdown file")
    parser.add_argument("--history-volumes", default="the run's validation volumes",
                        help="what the run's held-out evaluations scored, for the plot's title (the history file "
                             "does not record it), e.g. '5 unseen anatomies, 20 crops per evaluation'")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    logging.disable(logging.WARNING)
    held_out = validation_files(args.datalist)
    if not held_out:
        raise SystemExit(f"{args.datalist} has no 'validation' list of held-out volumes.")
    groups = {"unseen anatomies, synthetic scans": [f for f in held_out if "label_map" in f],
              "unseen subjects, real MRI": [f for f in held_out if "image" in f]}
    checkpoints = {path: load_checkpoint(path) for path in args.checkpoints}
    tasks = {path: [create_task(t["name"], **t["args"]) for t in checkpoint["config"]["tasks"]]
             for path, checkpoint in checkpoints.items()}
    # the four context tasks' scores (with the issue's targets), then those of any other task in the checkpoints
    columns = list(TARGETS) + sorted({score_metric_name(t) for ts in tasks.values() for t in ts} - set(TARGETS))
    lines = [f"Held-out pretext scores (`python benchmarks/pretext_scores.py {shlex.join(sys.argv[1:])}`): "
             f"{args.samples_per_volume} crops of {args.roi_size} at {args.spacing} mm per volume, fixed seed.", "",
             "| checkpoint | iteration | held-out volumes | samples | " + " | ".join(columns) + " |",
             "|---|---|---|---|" + "---|" * len(columns)]
    for path, checkpoint in checkpoints.items():
        chance = {score_metric_name(t): t.chance_score() for t in tasks[path]}
        iteration = checkpoint.get("trainer", {}).get("iteration", "?")
        for group, files in groups.items():
            if not files:
                continue
            scores = score_checkpoint(path, files, spacing=args.spacing, roi_size=args.roi_size,
                                      samples_per_volume=args.samples_per_volume)
            cells = [f"{scores[k]:.2f} (chance {chance[k]:.2f})" if k in scores else "-" for k in columns]
            lines.append(f"| {os.path.relpath(path, REPO)} | {iteration} | {group} ({len(files)}) | "
                         f"{len(files) * args.samples_per_volume} | " + " | ".join(cells) + " |")
    lines += ["", "Targets: " + ", ".join(f"{k} {v}" for k, v in TARGETS.items()) + "; colorization_mse_ratio is the "
              "restoration's squared error as a fraction of the degraded input's (the identity's)."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if args.history:
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        plot_pretext_scores(args.history, args.plot, title="held-out pretext scores during pretraining "
                            f"({args.history_volumes})")
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
