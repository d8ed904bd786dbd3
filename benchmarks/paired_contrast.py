"""A paired contrast of label-efficiency runs kept in different results folders.

``label_efficiency.py`` compares arms of one call. A lever that changes a setting of every arm (``--roi``,
``--fine-tune-overrides``) writes a results folder per setting, and its questions span folders: does scratch gain
from larger crops (``+roi64:scratch -roi48:scratch``), and does the encoder's gain over scratch grow with them
(``+roi64:enc -roi64:scratch -roi48:enc +roi48:scratch``)? This script answers them with the benchmark's own
statistics: per (fold, seed) pair present in every term, the signed sum of the runs' mean Dice; the mean over pairs
with its 95 % t interval (df = n - 1) and a 95 % bootstrap over evaluation subjects. The terms must share their
evaluation subjects (the same ``--ixi-eval-dir``): the results keep no subject names, so only their number is
checked. ``--iteration N`` contrasts the runs' fine-tuning curves at a validation point instead (how far along
each arm is; the curves keep means over subjects, so no subject bootstrap). It also prints each term's mean and sd
over the pairs, and, for final models, each class's mean contrast over the pairs.

A term's runs may come from several folders of one protocol, ``FOLDER,FOLDER:ARM`` (more seeds run later at
other commits): refused unless each folder's report names the same preset settings, pretrained weights and
fine-tuning overrides (e.g. another network), apart from which labelled-subject counts, folds, seeds and threads it
ran, and no (fold, seed) pair is in two of them.
The code is not compared (each report names its commit, printed here): merging runs of different commits is the
caller's claim that fine-tuning did not change between them.

Run::

    python benchmarks/paired_contrast.py --dataset ixi_coarse --setting 1 \\
        --plus benchmarks/results/ixi_roi_64:real_pool_2500 benchmarks/results/ixi_roi_48:scratch \\
        --minus benchmarks/results/ixi_roi_64:scratch benchmarks/results/ixi_roi_48:real_pool_2500
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from label_efficiency import score, signed_contrast  # noqa: E402


# which runs a call made and on how many threads; every other preset setting is how each run ran
RUN_SELECTION = ("label_counts", "folds", "seeds", "threads")
# a difference across settings (e.g. crop sizes) is read as a sign, not as an arm that helps
CONTRAST_READINGS = ("above 0", "below 0", "no clear difference (the interval holds 0)")


def report(folder: Path) -> list[str]:
    """The lines of the folder's ``label_efficiency.md`` (none without a report)."""
    path = folder / "label_efficiency.md"
    return path.read_text().splitlines() if path.is_file() else []


def first_line(lines: list[str], prefix: str) -> str | None:
    """The first of ``lines`` that starts with ``prefix`` (``None`` if there is none)."""
    return next((line for line in lines if line.startswith(prefix)), None)


def protocol(folder: Path) -> tuple:
    """The preset (name and settings, less :data:`RUN_SELECTION`), the pretrained-weights line and the fine-tuning
    overrides line (e.g. another network) of a folder's ``label_efficiency.md``."""
    path = folder / "label_efficiency.md"
    if not path.is_file():
        raise SystemExit(f"{path} does not exist: folders are merged only when their reports show one protocol.")
    lines = report(folder)
    preset = first_line(lines, "- preset `")
    if preset is None:
        raise SystemExit(f"{path} has no '- preset' line: give a report written by label_efficiency.py.")
    name, settings = preset.split(": ", 1)
    settings = {k: v for k, v in json.loads(settings).items() if k not in RUN_SELECTION}
    return (name, settings, first_line(lines, "- pretrained weights") or "",
            first_line(lines, "- fine-tuning overrides") or "")


def commit(folder: Path) -> str:
    """The commit named by the folder's report ("?" without one)."""
    date = first_line(report(folder), "- date:")
    return date.rpartition("commit ")[2] if date else "?"


def parse_term(term: str) -> tuple[list[Path], str]:
    """The folders and the arm of ``FOLDER:ARM`` or ``FOLDER,FOLDER,...:ARM``."""
    folders, sep, arm = term.rpartition(":")
    if not sep or not folders or not arm:
        raise SystemExit(f"a term is FOLDER:ARM (a label_efficiency results folder and one of its arms), got {term!r}.")
    return [Path(folder) for folder in folders.split(",")], arm


def load_term(term: str, dataset: str, setting: str) -> dict:
    """The runs of ``FOLDER:ARM`` or ``FOLDER,FOLDER,...:ARM`` (each ``FOLDER`` holds a ``label_efficiency.json``),
    keyed by ``foldF_seedS``."""
    folders, arm = parse_term(term)
    runs: dict = {}
    for folder in folders:
        path = folder / "label_efficiency.json"
        if not path.is_file():
            raise SystemExit(f"{path} does not exist: give a folder written by label_efficiency.py --results-dir.")
        results = json.loads(path.read_text())
        arms = results.get(dataset, {}).get(setting)
        if not arms or arm not in arms:
            found = sorted(arms) if arms else sorted(f"{d} {s}" for d in results for s in results[d])
            raise SystemExit(f"{path} has no arm {arm!r} for {dataset}, {setting} labelled; it has: {found}.")
        shared = sorted(set(runs) & set(arms[arm]))
        if shared:
            raise SystemExit(f"{folder} repeats {shared} of {arm!r}: merge folders holding different (fold, seed) "
                             "pairs.")
        runs.update(arms[arm])
    if len(folders) > 1:
        protocols = {folder: protocol(folder) for folder in folders}
        first = protocols[folders[0]]
        for folder, other in protocols.items():
            if other != first:
                raise SystemExit(f"{folder} ran another protocol than {folders[0]} ({other} against {first}): "
                                 "merge only folders of the same preset settings, weights and fine-tuning overrides.")
    return runs


def curve_point(run: dict, iteration: int) -> float:
    """The run's mean Dice at a validation point of its fine-tuning curve (evaluation subjects, read only)."""
    points = dict(run["curve"])
    if iteration not in points:
        raise SystemExit(f"no validation point at iteration {iteration}: the runs' curves have {sorted(points)}.")
    return float(points[iteration])


def class_dice(run: dict, name: str) -> float:
    """The run's final Dice of one reported class (mean over evaluation subjects)."""
    return float(run["dice"][name])


def metric_at(iteration: int | None):
    """The final models' score, or the curves' mean Dice at ``iteration``."""
    return score if iteration is None else functools.partial(curve_point, iteration=iteration)


def contrast(plus: list[dict], minus: list[dict], iteration: int | None = None, metric=None) -> dict:
    """:func:`label_efficiency.signed_contrast` of the terms' final models' scores, or of the curves' mean Dice at
    ``iteration`` (a curve point keeps the mean over subjects only: no subject bootstrap), or of ``metric`` when
    given, read with :data:`CONTRAST_READINGS`."""
    try:
        result = signed_contrast([(1.0, runs) for runs in plus] + [(-1.0, runs) for runs in minus],
                                 metric or metric_at(iteration), CONTRAST_READINGS)
    except ValueError as error:
        raise SystemExit(f"{error} Give folders run with the same --ixi-eval-dir.") from None
    if result is None:
        raise SystemExit("the terms share no (fold, seed) pair: run the same --folds and --seeds in every folder.")
    return result


def term_summaries(terms: list[dict], pairs: list[str], metric) -> list[tuple[float, float]]:
    """Each term's mean and sd (ddof 1; 0 for one pair) of ``metric`` over the contrast's pairs: where each side
    stands, not only how far apart."""
    values = [np.array([metric(runs[pair]) for pair in pairs]) for runs in terms]
    return [(float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0) for v in values]


def class_differences(plus: list[dict], minus: list[dict]) -> dict[str, float]:
    """Per class that the first plus term's runs report, the contrast's mean over pairs of the final models' Dice."""
    names = next(iter(plus[0].values()))["dice"]
    return {name: contrast(plus, minus, metric=functools.partial(class_dice, name=name))["mean"] for name in names}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="e.g. ixi_coarse")
    parser.add_argument("--setting", required=True, help="labelled subjects, e.g. 1")
    parser.add_argument("--plus", nargs="+", required=True, metavar="FOLDER:ARM", help="terms added")
    parser.add_argument("--minus", nargs="+", default=[], metavar="FOLDER:ARM", help="terms subtracted")
    parser.add_argument("--iteration", type=int, default=None,
                        help="contrast the curves' mean Dice at this validation point instead of the final models")
    args = parser.parse_args(argv)
    plus = [load_term(t, args.dataset, args.setting) for t in args.plus]
    minus = [load_term(t, args.dataset, args.setting) for t in args.minus]
    result = contrast(plus, minus, iteration=args.iteration)
    at = "final models" if args.iteration is None else f"iteration {args.iteration} of the curves"
    signed = [f"+{t}" for t in args.plus] + [f"-{t}" for t in args.minus]
    print(f"{args.dataset}, {args.setting} labelled, {at}: " + " ".join(signed))
    folders = dict.fromkeys(folder for term in args.plus + args.minus for folder in parse_term(term)[0])
    print("commits: " + ", ".join(f"{folder} {commit(folder)}" for folder in folders))
    print("per pair: " + ", ".join(f"{pair} {100 * d:+.1f}" for pair, d in zip(result["pairs"],
                                                                              result["differences"])))
    print(result["text"])
    summaries = term_summaries(plus + minus, result["pairs"], metric_at(args.iteration))
    print("each term over these pairs: " + "; ".join(f"{name} {mean:.3f} ± {sd:.3f}"
                                                     for name, (mean, sd) in zip(signed, summaries)))
    if args.iteration is None:
        gains = sorted(class_differences(plus, minus).items(), key=lambda item: item[1])
        print("per class, mean over pairs, lowest first: " + ", ".join(f"{name} {100 * d:+.1f}" for name, d in gains))


if __name__ == "__main__":
    main()
