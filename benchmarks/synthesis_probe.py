"""Which SynthSeg-style synthesis makes the strongest scarce-label baseline? Chosen on IXI tuning subjects only.

The ``+synthseg`` arms of ``label_efficiency.py`` repaint a share of the training crops from their label map. DLMUSE
maps label the brain, not the head around it, so the voxels of label 0 need a rule, and each rule marks the
labelled region unless it paints them too:

- ``kept``: label 0 keeps the scan, so real and synthetic texture meet exactly on the labels' outline;
- ``painted``: label 0 is painted as 3 extra labels binned by the scan's intensity there (SynthSeg's
  extra-cerebral labels), so the whole crop is synthetic.

Each variant fine-tunes from scratch on fold 0's labelled subject with the preset's IXI coarse budget and is
validated on the IXI tuning subjects (``ixi_dlmuse/train`` subjects that are neither labelled nor evaluated); no
evaluation subject is read. The rule, written before any variant ran: the variant with the higher final mean Dice
becomes the segmentation bundle's ``synthesis_unlabelled_classes`` default and so the ``+synthseg`` arms'
synthesis; within 0.005 of each other, ``painted`` (SynthSeg's own recipe). Scratch without synthesis runs beside
them, to say whether synthesis helps on these subjects at all.

Second stage (``--probabilities``), its rule also written before it ran: the chosen variant with each share of
synthesised crops given; the share with the highest final mean Dice becomes ``SYNTHESIS_PROB`` of the
``+synthseg`` arms (within 0.005, the larger share, nearer SynthSeg, which synthesises every crop). 0 is not a
candidate: the arm stays a synthesis arm, whatever scratch scores.

Run: ``python benchmarks/synthesis_probe.py --threads 1``. Results: ``benchmarks/results/synthesis_probe.md``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from label_efficiency import PRESETS, REPO, fine_tune, load_datasets, parse_arguments  # noqa: E402

from monai_ssl.demo import find_bundles_dir  # noqa: E402

# the share of synthesised crops of the first stage: half, so that the real images' appearance is still learnt
# (SynthSeg itself trains on synthetic images only, with no real image at hand)
FIRST_SHARE = 0.5
VARIANTS = {"scratch": {"synthesis_prob": 0.0},
            "kept": {"synthesis_prob": FIRST_SHARE, "synthesis_unlabelled_classes": 0},
            "painted": {"synthesis_prob": FIRST_SHARE, "synthesis_unlabelled_classes": 3}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu", help="label_efficiency.py's presets")
    parser.add_argument("--work-dir", help="intermediate files, shared with label_efficiency.py's runs (default: "
                        "outputs/label_efficiency/<preset>)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--probabilities", nargs="*", type=float, default=[0.1, 0.25],
                        help="shares of synthesised crops tried with the chosen variant, beside the default")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "results" / "synthesis_probe.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    preset = dict(PRESETS[args.preset], label_counts=[1], folds=[0])
    work = Path(args.work_dir or REPO / "outputs" / "label_efficiency" / args.preset).resolve()
    # the benchmark's own defaults for everything but the dataset
    benchmark_args = parse_arguments(["--datasets", "ixi_coarse", "--data-root", str(args.data_root)])
    spec = load_datasets(benchmark_args, Path(args.data_root), work)["ixi_coarse"]
    _, _, labelled = spec["draws"](preset)[0]
    finals = {}

    def probe(name: str, overrides: dict) -> None:
        result = fine_tune(find_bundles_dir(), work, "ixi_coarse", f"synthesis_probe_{name}", labelled,
                           spec["tuning"], preset, preset["seeds"][0], None, spec["label_names"], {}, 1,
                           dict(overrides, label_sources=spec["label_sources"], lateral_pairs=spec["lateral_pairs"]))
        finals[name] = (result["curve"][-1][1], result["dice"])

    for variant in args.variants:
        probe(variant, VARIANTS[variant])
    chosen = None
    if {"kept", "painted"} <= finals.keys():
        chosen = "kept" if finals["kept"][0] > finals["painted"][0] + 0.005 else "painted"
        for probability in args.probabilities:
            probe(f"{chosen}_p{probability:g}", dict(VARIANTS[chosen], synthesis_prob=probability))
    classes = [k for k in spec["label_names"] if k != "background"]
    lines = ["# SynthSeg-style synthesis: which rule for the voxels outside the label map (tuning subjects only)", "",
             f"- command: `python benchmarks/synthesis_probe.py {shlex.join(sys.argv[1:])}`",
             f"- fine-tuned from scratch on {[s['name'] for s in labelled]} (fold 0, 1 labelled, seed "
             f"{preset['seeds'][0]}), {preset['fine_tune_iterations']['ixi_coarse']} iterations; validated on the "
             f"{len(spec['tuning'])} tuning subjects {[s['name'] for s in spec['tuning']]}",
             f"- synthesised share of the crops: {FIRST_SHARE}, or the one a name gives (`_pSHARE`)", "",
             "| variant | final mean Dice | " + " | ".join(classes) + " |", "|---|---|" + "---|" * len(classes)]
    for variant, (mean, dice) in finals.items():
        lines.append(f"| {variant} | {mean:.3f} | " + " | ".join(f"{dice[k]:.3f}" for k in classes) + " |")
    if chosen is not None:
        lines += ["", f"Variant chosen by the rule (higher final mean Dice; painted within 0.005): **{chosen}**."]
        shares = {FIRST_SHARE: finals[chosen][0],
                  **{p: finals[f"{chosen}_p{p:g}"][0] for p in args.probabilities}}
        best = max(shares.values())
        share = max(p for p, dice in shares.items() if dice >= best - 0.005)
        lines.append(f"Share of synthesised crops chosen by the rule (highest final mean Dice; the larger share "
                     f"within 0.005): **{share:g}**.")
    Path(args.results).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
