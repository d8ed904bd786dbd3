"""benchmarks/paired_contrast.py: signed sums of runs from several results folders, paired by (fold, seed)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from paired_contrast import contrast, load_term, main  # noqa: E402


def run(classes: list[float], subjects: int = 4) -> dict:
    """A fine-tuning result whose classes score ``classes`` on every evaluation subject."""
    names = [f"c{i}" for i in range(len(classes))]
    return {"dice": dict(zip(names, classes)), "subjects": {n: [v] * subjects for n, v in zip(names, classes)}}


def write(folder, arms: dict) -> str:
    folder.mkdir()
    (folder / "label_efficiency.json").write_text(json.dumps({"ixi_coarse": {"1": arms}}))
    return str(folder)


@pytest.fixture
def folders(tmp_path):
    # scratch gains 2 points from larger crops on every pair; the encoder gains 3, 5 and 4: its advantage over
    # scratch grows by 1, 3 and 2 points
    small = write(tmp_path / "roi48", {
        "scratch": {f"fold{f}_seed0": run([0.70, 0.80]) for f in range(3)},
        "enc": {f"fold{f}_seed0": run([0.73, 0.83]) for f in range(3)}})
    large = write(tmp_path / "roi64", {
        "scratch": {f"fold{f}_seed0": run([0.72, 0.82]) for f in range(3)},
        "enc": {"fold0_seed0": run([0.76, 0.86]), "fold1_seed0": run([0.78, 0.88]), "fold2_seed0": run([0.77, 0.87]),
                "fold3_seed0": run([0.99, 0.99])}})  # a pair no other term has: left out
    return small, large


def terms(names: list[str]) -> list[dict]:
    return [load_term(name, "ixi_coarse", "1") for name in names]


def test_a_difference_and_a_difference_of_differences_pair_by_fold_and_seed(folders):
    small, large = folders
    scratch_gain = contrast(terms([f"{large}:scratch"]), terms([f"{small}:scratch"]))
    assert scratch_gain["pairs"] == ["fold0_seed0", "fold1_seed0", "fold2_seed0"]
    assert scratch_gain["differences"] == pytest.approx([0.02] * 3)
    assert scratch_gain["bootstrap"] == pytest.approx((0.02, 0.02))  # the same on every subject
    growth = contrast(terms([f"{large}:enc", f"{small}:scratch"]), terms([f"{large}:scratch", f"{small}:enc"]))
    assert growth["differences"] == pytest.approx([0.01, 0.03, 0.02])
    # mean 0.02, sd 0.01, n 3: half width t(0.975, 2) * 0.01 / sqrt(3)
    assert growth["mean"] == pytest.approx(0.02) and growth["n"] == 3
    assert growth["high"] - growth["mean"] == pytest.approx(4.3027 * 0.01 / np.sqrt(3), rel=1e-4)
    assert growth["text"].startswith("+2.0 [-0.5, +4.5] (n = 3, df = 2): no clear difference")
    assert "above 0" in scratch_gain["text"]


def test_bad_terms_are_refused_with_what_to_give(folders, tmp_path):
    small, _ = folders
    with pytest.raises(SystemExit, match="FOLDER:ARM"):
        load_term("no_arm", "ixi_coarse", "1")
    with pytest.raises(SystemExit, match="label_efficiency.py --results-dir"):
        load_term(f"{tmp_path / 'absent'}:scratch", "ixi_coarse", "1")
    with pytest.raises(SystemExit, match=r"no arm 'mix' .* it has: \['enc', 'scratch'\]"):
        load_term(f"{small}:mix", "ixi_coarse", "1")
    with pytest.raises(SystemExit, match="no arm 'scratch' for ixi_coarse, 2 labelled; it has: \\['ixi_coarse 1'\\]"):
        load_term(f"{small}:scratch", "ixi_coarse", "2")
    other = write(tmp_path / "other", {"scratch": {"fold5_seed0": run([0.7, 0.8])},
                                       "six_subjects": {f"fold{f}_seed0": run([0.7, 0.8], 6) for f in range(3)}})
    with pytest.raises(SystemExit, match="share no \\(fold, seed\\) pair"):
        contrast(terms([f"{other}:scratch"]), terms([f"{small}:scratch"]))
    with pytest.raises(SystemExit, match="different numbers of subjects"):
        contrast(terms([f"{other}:six_subjects"]), terms([f"{small}:scratch"]))


def test_the_command_prints_each_pair_and_the_interval(folders, capsys):
    small, large = folders
    main(["--dataset", "ixi_coarse", "--setting", "1", "--plus", f"{large}:scratch", "--minus", f"{small}:scratch"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ixi_coarse, 1 labelled, final models: +")
    assert out[1] == f"commits: {large} ?, {small} ?"  # reports without a date line
    assert out[2] == "per pair: fold0_seed0 +2.0, fold1_seed0 +2.0, fold2_seed0 +2.0"
    assert out[3].startswith("+2.0 [+2.0, +2.0] (n = 3, df = 2): above 0")
    # where each side stands over the shared pairs (roi64's fold3 is not one of them), and each class's gain
    assert out[4] == f"each term over these pairs: +{large}:scratch 0.770 ± 0.000; -{small}:scratch 0.750 ± 0.000"
    prefix = "per class, mean over pairs, lowest first: "
    assert out[5].startswith(prefix) and sorted(out[5][len(prefix):].split(", ")) == ["c0 +2.0", "c1 +2.0"]


def test_each_class_and_each_term_are_read_over_the_shared_pairs(folders, tmp_path, capsys):
    small, large = folders
    main(["--dataset", "ixi_coarse", "--setting", "1", "--plus", f"{large}:enc", "--minus", f"{small}:enc"])
    # enc at roi64 over folds 0-2: 0.81, 0.83, 0.82 (fold3's 0.99 left out); at roi48 0.78 on each fold
    assert capsys.readouterr().out.splitlines()[4] == (
        f"each term over these pairs: +{large}:enc 0.820 ± 0.010; -{small}:enc 0.780 ± 0.000")
    # class c0 gains 5 points on one pair and 3 on the other, c1 1 point on both: c1 is listed first
    folder = write(tmp_path / "classes", {
        "scratch": {"fold0_seed0": run([0.70, 0.80]), "fold1_seed0": run([0.70, 0.80])},
        "enc": {"fold0_seed0": run([0.75, 0.81]), "fold1_seed0": run([0.73, 0.81])}})
    main(["--dataset", "ixi_coarse", "--setting", "1", "--plus", f"{folder}:enc", "--minus", f"{folder}:scratch"])
    out = capsys.readouterr().out.splitlines()
    assert out[4] == f"each term over these pairs: +{folder}:enc 0.775 ± 0.007; -{folder}:scratch 0.750 ± 0.000"
    assert out[5] == "per class, mean over pairs, lowest first: c1 +1.0, c0 +4.0"


def report(folder, roi: int, seeds: list[int], weights: str = "enc: model.pt", overrides: str = "{}") -> str:
    """The lines of a ``label_efficiency.md`` that name its protocol."""
    preset = {"roi": [roi] * 3, "channels": [16, 32], "folds": [0, 1, 2], "seeds": seeds, "threads": 1}
    (folder / "label_efficiency.md").write_text(
        f"# Label-efficiency benchmark\n\n- preset `cpu`: {json.dumps(preset)}\n- pretrained weights: {weights}\n"
        f"- fine-tuning overrides for every arm: {overrides}; channels_last true, bf16_autocast true\n")
    return str(folder)


def test_folders_of_one_protocol_merge_into_one_term(folders, tmp_path):
    _, large = folders
    report(tmp_path / "roi64", 64, [0])
    seed1 = report(Path(write(tmp_path / "roi64_seed1", {
        "scratch": {f"fold{f}_seed1": run([0.70, 0.80]) for f in range(3)},
        "enc": {f"fold{f}_seed1": run([0.71, 0.81]) for f in range(3)}})), 64, [1])
    merged = contrast(terms([f"{large},{seed1}:enc"]), terms([f"{large},{seed1}:scratch"]))
    assert merged["pairs"] == [f"fold{f}_seed{s}" for f in range(3) for s in (0, 1)]
    assert merged["differences"] == pytest.approx([0.04, 0.01, 0.06, 0.01, 0.05, 0.01])
    assert merged["n"] == 6


def test_folders_that_overlap_or_ran_another_protocol_are_refused(folders, tmp_path):
    small, large = folders
    other = write(tmp_path / "roi48_seed1", {"scratch": {"fold0_seed1": run([0.7, 0.8])}})
    with pytest.raises(SystemExit, match=r"label_efficiency.md does not exist"):
        load_term(f"{large},{other}:scratch", "ixi_coarse", "1")
    report(tmp_path / "roi64", 64, [0])
    report(tmp_path / "roi48", 48, [0])
    report(tmp_path / "roi48_seed1", 48, [1])
    with pytest.raises(SystemExit, match=r"repeats \['fold0_seed0', 'fold1_seed0', 'fold2_seed0'\] of 'scratch'"):
        load_term(f"{large},{small}:scratch", "ixi_coarse", "1")
    with pytest.raises(SystemExit, match="ran another protocol"):
        load_term(f"{large},{other}:scratch", "ixi_coarse", "1")
    other_weights = report(Path(write(tmp_path / "roi64_seed1", {"scratch": {"fold0_seed1": run([0.7, 0.8])}})), 64,
                           [1], weights="enc: other.pt")
    with pytest.raises(SystemExit, match="ran another protocol"):
        load_term(f"{large},{other_weights}:scratch", "ixi_coarse", "1")
    report(tmp_path / "roi64_seed1", 64, [1], overrides='{"network_def#channels": [16, 32, 64]}')
    with pytest.raises(SystemExit, match="ran another protocol.*network_def#channels"):
        load_term(f"{large},{other_weights}:scratch", "ixi_coarse", "1")
    assert set(load_term(f"{small},{other}:scratch", "ixi_coarse", "1")) == {
        "fold0_seed0", "fold1_seed0", "fold2_seed0", "fold0_seed1"}


def test_a_curve_point_is_contrasted_without_a_subject_bootstrap(tmp_path, capsys):
    def curved(early: float, final: float) -> dict:
        return dict(run([final]), curve=[[260, early], [520, final]])

    folder = write(tmp_path / "roi64", {
        "scratch": {f"fold{f}_seed0": curved(0.60, 0.80) for f in range(3)},
        "enc": {"fold0_seed0": curved(0.70, 0.80), "fold1_seed0": curved(0.72, 0.81),
                "fold2_seed0": curved(0.71, 0.79)}})
    early = contrast(terms([f"{folder}:enc"]), terms([f"{folder}:scratch"]), iteration=260)
    assert early["differences"] == pytest.approx([0.10, 0.12, 0.11]) and "bootstrap" not in early
    assert early["text"] == "+11.0 [+8.5, +13.5] (n = 3, df = 2): above 0"
    with pytest.raises(SystemExit, match=r"no validation point at iteration 300: the runs' curves have \[260, 520\]"):
        contrast(terms([f"{folder}:enc"]), terms([f"{folder}:scratch"]), iteration=300)
    main(["--dataset", "ixi_coarse", "--setting", "1", "--iteration", "260", "--plus", f"{folder}:enc",
          "--minus", f"{folder}:scratch"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ixi_coarse, 1 labelled, iteration 260 of the curves: +")
    assert out[3] == "+11.0 [+8.5, +13.5] (n = 3, df = 2): above 0"
    # the terms' curve means at that point; no per-class line, since curves keep only the mean over classes
    assert out[4] == f"each term over these pairs: +{folder}:enc 0.710 ± 0.010; -{folder}:scratch 0.600 ± 0.000"
    assert len(out) == 5
