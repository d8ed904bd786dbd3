"""The label-efficiency benchmark script: its statistics, its cache keys, its argument checks, and a smoke run of
every step on real IXI, BraTS and synthetic data."""

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import shared_path
from tests.helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import label_efficiency  # noqa: E402
from label_efficiency import (  # noqa: E402
    base_arm,
    compare,
    goals,
    iterations_to_reach,
    mean_sd,
    parse_arguments,
    run_key,
    source_state,
    subject_bootstrap,
    t_interval,
    verdict,
    without_last_variant,
)

SCRIPT = str(REPO / "benchmarks" / "label_efficiency.py")


def test_t_interval_uses_student_t_with_n_minus_1_degrees_of_freedom():
    mean, low, high, n = t_interval([0.01, 0.02, 0.03])
    # sd 0.01, n 3: half width t(0.975, 2) * 0.01 / sqrt(3) = 4.303 * 0.005774
    assert n == 3 and mean == pytest.approx(0.02) and high - mean == pytest.approx(4.3027 * 0.01 / np.sqrt(3), rel=1e-4)
    assert low == pytest.approx(2 * mean - high)
    assert np.isnan(t_interval([0.2])[1])


def test_verdict_helps_only_when_the_interval_excludes_zero():
    # t = 2.8 and 3.6 with n = 3 (the 2- and 4-labelled gains): beyond 2 standard errors, inside 4.30
    for differences in ([0.052, 0.02, 0.084], [0.046, 0.024, 0.068]):
        mean, low, high, _ = t_interval(differences)
        assert mean / (np.std(differences, ddof=1) / np.sqrt(3)) > 2 and low < 0
        assert "no clear effect" in verdict(differences)
    assert "helps" in verdict([0.05, 0.06, 0.05]) and "df = 2" in verdict([0.05, 0.06, 0.05])
    assert "hurts" in verdict([-0.05, -0.06, -0.05])
    assert "no clear effect" in verdict([0.02, -0.01, 0.00])
    assert "n = 1" in verdict([0.2]) and "helps" not in verdict([0.2])


def test_subject_bootstrap_resamples_evaluation_subjects():
    scratch = np.array([[0.5, 0.6, 0.7, 0.8], [0.5, 0.6, 0.7, 0.8]])
    low, high = subject_bootstrap(scratch + 0.03, scratch)  # the same gain on every subject: no spread
    assert low == pytest.approx(0.03) and high == pytest.approx(0.03)
    low, high = subject_bootstrap(scratch + np.array([0.1, -0.1, 0.1, -0.1]), scratch)
    assert low < 0 < high and subject_bootstrap(scratch + 0.1 * np.arange(4), scratch) == \
        subject_bootstrap(scratch + 0.1 * np.arange(4), scratch)  # seeded


def test_goals_say_what_was_not_reached_and_give_no_interval_for_one_pair():
    one_pair = {"mean": 0.035, "low": float("nan"), "high": float("nan"), "n": 1, "reached": None, "budget": 1040}
    text = "\n".join(goals({("ixi_coarse", 1, "encoder", "scratch"): one_pair}, {}))
    assert "+3.5 points (n = 1, no interval)" in text and "nan" not in text
    assert "not within 1040 iterations" in text and "not met" in text
    six_pairs = dict(one_pair, low=0.01, high=0.06, n=6, reached=520)
    text = "\n".join(goals({("ixi_coarse", 1, "encoder", "scratch"): six_pairs}, {}))
    assert "+3.5 [+1.0, +6.0] points (n = 6)" in text and "at iteration 520 of 1040 (goal: half or fewer): met" in text


def test_goals_pair_an_arm_with_fewer_labels_against_scratch_with_more():
    def run(dice):
        return {"dice": {"a": dice}, "subjects": {"a": [dice, dice]}}

    pairs = [(0, 0), (1, 0), (2, 0)]
    results = {"ixi_coarse": {
        2: {"scratch": {k: run(0.80) for k in pairs}, "encoder": {k: run(d) for k, d in zip(pairs, (.86, .87, .88))}},
        3: {"encoder": {k: run(0.90) for k in pairs}},
        8: {"scratch": {k: run(d) for k, d in zip(pairs, (.85, .85, .86))}}}}
    text = "\n".join(goals({}, results))
    # 2 vs 8: differences +1, +2, +2 points; 3 vs 8 has no goal, only its interval; scratch with 2 is the control
    assert "ixi_coarse, encoder with 2 labelled − scratch with 8 (4x the labels): +1.7 [" in text
    assert text.count("(goal: at least as good): met") == 1
    assert "encoder with 3 labelled − scratch with 8 (2.66667x the labels): +4.7 [" in text  # not floored to 2x
    assert "ixi_coarse, scratch with 2 labelled − scratch with 8 (4x the labels): -5.3 [" in text
    assert "with 2 labelled − scratch with 3" not in text  # no scratch with 3 to compare against
    results["ixi_coarse"][2]["encoder"] = {k: run(0.84) for k in pairs}
    assert "(goal: at least as good): not met" in "\n".join(goals({}, results))


def test_results_compare_two_encoders_with_each_other(tmp_path):
    def run(dice):
        return {"dice": {"a": dice}, "subjects": {"a": [dice, dice]}, "curve": [[520, dice - 0.1], [1040, dice]]}

    pairs = [(0, 0), (1, 0), (2, 0)]
    arms = {"scratch": {k: run(0.80) for k in pairs}, "mix": {k: run(0.83) for k in pairs},
            "masked": {k: run(d) for k, d in zip(pairs, (0.84, 0.85, 0.85))},
            "mix+meanteacher": {k: run(0.83) for k in pairs}}
    args = argparse.Namespace(results_dir=str(tmp_path), arms=list(arms), pretrain=False, consistency_weight=None,
                              fine_tune_overrides={}, tune=False, preset="cpu")
    label_efficiency.write_results(args, {"threads": 1}, {"ixi_coarse": {1: arms}}, {"mix": ["m.pt"]}, {}, 1.0,
                                   {"ixi_coarse": {"describe": "three draws"}}, "abc", final=False)
    table = (tmp_path / "label_efficiency.md").read_text()
    # differences +1, +2, +2 points; a variant is compared with its plain arm in the table, not here
    assert "- mix − masked (points): -1.7 [" in table and "(n = 3, df = 2)" in table
    assert "mix+meanteacher −" not in table and "− mix+meanteacher" not in table and "scratch −" not in table


def test_compare_pairs_runs_by_fold_and_seed():
    def run(dice):
        return {"dice": {"a": dice, "b": dice}, "subjects": {"a": [dice, dice], "b": [dice, dice]}}

    scratch = {(0, 0): run(0.5), (0, 1): run(0.6), (1, 0): run(0.7)}
    arm = {(0, 0): run(0.55), (0, 1): run(0.65), (1, 0): run(0.75), (2, 0): run(0.9)}  # (2, 0) has no pair
    comparison = compare(arm, scratch)
    assert comparison["n"] == 3 and comparison["mean"] == pytest.approx(0.05)
    assert comparison["bootstrap"] == pytest.approx((0.05, 0.05))


def test_one_spread_everywhere_and_convergence():
    assert mean_sd([1.0, 2.0, 3.0]) == "2.000 ± 1.000"  # ddof 1
    curve = [(40, 0.1), (80, 0.3), (120, 0.5)]
    assert iterations_to_reach(curve, 0.3) == 80 and iterations_to_reach(curve, 0.6) is None


def test_cache_key_follows_files_sources_and_settings(tmp_path, monkeypatch):
    image = tmp_path / "image.nii.gz"
    image.write_bytes(b"one")
    key = run_key({"lr": 1}, files=[str(image)])
    assert run_key({"lr": 1}, files=[str(image)]) == key
    assert run_key({"lr": 2}, files=[str(image)]) != key
    other = tmp_path / "other.nii.gz"
    other.write_bytes(b"two")
    assert run_key({"lr": 1}, files=[str(other)]) != key  # the image files, not their names alone
    monkeypatch.setattr(label_efficiency, "code_digest", lambda: "edited sources")
    assert run_key({"lr": 1}, files=[str(image)]) != key


def test_source_state_leaves_out_the_runs_own_results(tmp_path, monkeypatch):
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "table.md").write_text("old")
    (tmp_path / "code.py").write_text("x = 1")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "start")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tmp_path, capture_output=True,
                            text=True).stdout.strip()
    monkeypatch.setattr(label_efficiency, "REPO", tmp_path)
    (tmp_path / "results" / "table.md").write_text("rewritten by the run")
    (tmp_path / "notes.txt").write_text("untracked")
    assert source_state(str(tmp_path / "results")) == commit
    assert source_state(str(tmp_path.parent / "elsewhere")) == f"{commit} with uncommitted changes"
    (tmp_path / "code.py").write_text("x = 2")
    assert source_state(str(tmp_path / "results")) == f"{commit} with uncommitted changes"
    monkeypatch.setattr(label_efficiency, "REPO", tmp_path.parent)  # not a git checkout
    assert source_state(str(tmp_path / "results")).startswith("unknown")


def test_arm_variants_strip_in_order_and_out_of_order_is_refused(tmp_path):
    assert base_arm("all+synthseg+meanteacher") == base_arm("all+meanteacher") == base_arm("all") == "all"
    assert without_last_variant("all+synthseg+meanteacher") == "all+synthseg"
    assert without_last_variant("all+synthseg") == "all" and without_last_variant("all") is None
    result = subprocess.run([sys.executable, SCRIPT, "--preset", "smoke", "--arms", "scratch+meanteacher+synthseg",
                             "--work-dir", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode != 0 and "in the order ('+synthseg', '+meanteacher')" in result.stderr


def test_overlapping_subjects_are_refused(tmp_path):
    shared_path("synthseg_label_maps")
    result = subprocess.run([sys.executable, SCRIPT, "--preset", "smoke", "--regions-train", "1", "16",
                             "--regions-eval", "16", "--work-dir", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode != 0 and "share subjects [16]" in result.stderr


def test_ixi_train_subjects_are_refused_as_evaluation_subjects(tmp_path):
    train = shared_path("ixi_dlmuse", "train")
    subject = sorted(os.listdir(train))[0]
    os.symlink(train / subject, tmp_path / subject)
    result = subprocess.run([sys.executable, SCRIPT, "--preset", "smoke", "--datasets", "ixi_coarse",
                             "--arms", "scratch", "--ixi-eval-dir", str(tmp_path), "--work-dir", str(tmp_path / "w")],
                            capture_output=True, text=True)
    assert result.returncode != 0 and f"['{subject}'] are IXI train subjects" in result.stderr


def test_smoke_run_writes_the_results(tmp_path):
    shared_path("brats_deepmedic")
    shared_path("synthseg_label_maps")
    ixi_eval = shared_path("ixi_dlmuse", "eval")
    # a folder of subjects the project has never seen: two evaluation subjects, linked elsewhere
    unseen = tmp_path / "unseen"
    unseen.mkdir()
    for subject in sorted(os.listdir(ixi_eval))[:2]:
        os.symlink(ixi_eval / subject, unseen / subject)
    command = [sys.executable, SCRIPT, "--preset", "smoke", "--work-dir", str(tmp_path / "work"),
               "--results-dir", str(tmp_path / "results"), "--arms", "scratch", "scratch+synthseg", "rotation",
               "rotation+meanteacher", "--pretrain", "--datasets", "ixi_coarse", "tumour", "synthetic_regions",
               "--ixi-eval-dir", str(unseen), "--regions-train", "1", "2", "--regions-eval", "16",
               "--consistency-weight", "0.5"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    table = (tmp_path / "results" / "label_efficiency.md").read_text()
    for row in ("| scratch |", "| scratch+synthseg |", "| rotation |", "| rotation+meanteacher |"):
        assert row in table
    # the mean-teacher arm against the same init without it, in its own column
    row = next(line for line in table.splitlines() if line.startswith("| rotation+meanteacher |"))
    assert row.split(" | ")[-2].startswith(("+", "-"))
    assert "mean teacher (`semi_supervised`, consistency weight 0.5" in table
    assert "IXI T1, coarse regions (8)" in table and "hippocampus_amygdala" in table and "silver standard" in table
    assert "evaluated on 2 subjects of" in table and "whole_tumour" in table and "brainstem" in table
    assert "rotation seed 0: 0 steps skipped" in table  # what the pretraining guard did is in the results
    assert "commit" in table and "wall time" in table and "## Goals" in table and "unfinished" not in table
    assert "df = 1" in table  # tumour: 2 folds x 1 seed
    raw = json.loads((tmp_path / "results" / "label_efficiency.json").read_text())
    run = raw["ixi_coarse"]["1"]["scratch"]["fold0_seed0"]
    assert len(run["subjects"]["brainstem"]) == 2 and np.mean(run["subjects"]["brainstem"]) == \
        pytest.approx(run["dice"]["brainstem"], abs=1e-5)
    assert "scratch+synthseg" not in raw["tumour"]["1"]  # synthesis needs atlas label maps
    assert "rotation+meanteacher" not in raw["tumour"]["1"]  # the unlabelled pool has no FLAIR + T1c pairs
    assert (tmp_path / "results" / "label_efficiency.png").stat().st_size > 5000

    # a re-run (e.g. after an interruption) reuses every finished fine-tuning run and reproduces the table
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    # ixi: 4 arms; tumour: 2 arms x 2 folds; synthetic regions: 3 arms
    assert rerun.stdout.count("finished earlier, result reused") == 4 + 4 + 3

    def without_timing(text):
        return [line for line in text.splitlines() if not line.startswith(("- date", "- wall time"))]

    assert without_timing((tmp_path / "results" / "label_efficiency.md").read_text()) == without_timing(table)


def test_tune_validates_on_the_tuning_subjects_into_a_folder_of_its_own(tmp_path):
    train, evaluation = shared_path("ixi_dlmuse", "train"), shared_path("ixi_dlmuse", "eval")
    with pytest.raises(SystemExit, match="--results-dir of its own"):
        parse_arguments(["--tune", "--datasets", "ixi_coarse"])  # the default results folder
    with pytest.raises(SystemExit, match="the IXI datasets only"):
        parse_arguments(["--tune", "--datasets", "ixi_coarse", "tumour", "--results-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="leave out --ixi-eval-dir"):
        parse_arguments(["--tune", "--datasets", "ixi_coarse", "--ixi-eval-dir", str(evaluation),
                         "--results-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="--consistency-weight must be > 0"):
        parse_arguments(["--consistency-weight", "0"])
    with pytest.raises(SystemExit, match="positive multiples of \\[4, 4, 4\\] .* got \\[24, 30, 24\\]"):
        parse_arguments(["--preset", "smoke", "--roi", "24", "30", "24"])
    with pytest.raises(SystemExit, match="multiples of \\[8, 8, 8\\] per axis \\(the cpu preset's network"):
        parse_arguments(["--preset", "cpu", "--roi", "60", "60", "60"])
    assert parse_arguments(["--preset", "cpu", "--roi", "64", "64", "64"]).roi == [64, 64, 64]
    # the crops are checked against the network that runs: one set by the overrides, per axis
    deeper = json.dumps({"network_def#channels": [8, 16, 32, 64], "network_def#strides": [2, 2, [2, 2, 1]]})
    with pytest.raises(SystemExit, match="multiples of \\[8, 8, 4\\] per axis \\(--fine-tune-overrides' network"):
        parse_arguments(["--preset", "smoke", "--roi", "36", "36", "36", "--fine-tune-overrides", deeper])
    assert parse_arguments(["--preset", "smoke", "--roi", "36", "36", "36"])  # the preset's network takes them
    assert parse_arguments(["--preset", "smoke", "--roi", "40", "40", "36", "--fine-tune-overrides", deeper])
    with pytest.raises(SystemExit, match="a JSON object of settings, got \\[2, 2\\]"):
        parse_arguments(["--fine-tune-overrides", "[2, 2]"])
    shallower = json.dumps({"network_def#strides": [2, 2, 1]})
    assert parse_arguments(["--preset", "cpu", "--roi", "44", "44", "44", "--fine-tune-overrides", shallower])
    base = [sys.executable, SCRIPT, "--preset", "smoke", "--work-dir", str(tmp_path / "work"), "--arms", "scratch"]
    # the input-resolution (--roi) and network-size (a network override over the preset's) levers reach the run
    network = {"network_def#channels": [8, 16, 32, 40], "network_def#strides": [2, 2, 1]}
    result = subprocess.run(base + ["--tune", "--datasets", "ixi_coarse", "--results-dir", str(tmp_path / "tuning"),
                                    "--roi", "24", "24", "24", "--fine-tune-overrides", json.dumps(network)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "tuning" / "label_efficiency.md").read_text()
    assert '"roi": [24, 24, 24]' in report and json.dumps(network) in report
    assert "validated on the 8 IXI train tuning subjects (--tune)" in report
    assert "no evaluation subject was opened" in report and "used to choose anything" not in report
    from real_mri import split_ixi_train

    tuning = {s["name"] for s in split_ixi_train(train.parent.parent)[0]}
    # the run's folder is its name and cache key: one run here
    run_dir, = (tmp_path / "work" / "fine_tune").glob("ixi_coarse_1_scratch_fold0_seed0_*")
    weights = torch.load(run_dir / "models" / "model.pt", weights_only=True)
    assert any(w.ndim == 5 and w.shape[0] == 40 for w in weights.values())  # a fourth level: not the preset's
    datalist = json.loads((run_dir / "datalist.json").read_text())
    validated = {os.path.basename(os.path.dirname(e["image"])) for e in datalist["validation"]}
    assert validated == tuning and not validated & set(os.listdir(evaluation))


def test_pretrain_builds_the_network_the_fine_tuning_overrides_set(tmp_path, monkeypatch):
    """--pretrain pretrains the network that the arms then fine-tune (its weights would not load in another)."""
    settings_of_runs = []

    def record_and_stop(config_file, **settings):
        settings_of_runs.append(settings)
        raise InterruptedError

    monkeypatch.setattr(label_efficiency, "run_bundle", record_and_stop)
    scan = tmp_path / "scan.nii.gz"
    scan.write_bytes(b"a pool entry: only its digest is read before the run")
    network = {"network_def#channels": [8, 16, 32, 64], "network_def#strides": [2, 2, 1]}
    overrides = {**network, "freeze_encoder_epochs": 2}  # a fine-tuning setting: not the pretraining bundle's
    for fine_tune_overrides in ({}, overrides):
        with pytest.raises(InterruptedError):
            label_efficiency.pretrain(REPO / "bundles", tmp_path / "work", "rotation", 0, [{"image": str(scan)}],
                                      label_efficiency.PRESETS["smoke"],
                                      label_efficiency.network_settings(fine_tune_overrides))
    preset_network, overridden = settings_of_runs
    assert preset_network["network_def#channels"] == [8, 16, 32] and preset_network["network_def#strides"] == [2, 2]
    assert {k: overridden[k] for k in network} == network and "freeze_encoder_epochs" not in overridden
    assert overridden["network_def#num_res_units"] == preset_network["network_def#num_res_units"]
    assert overridden["output_dir"] != preset_network["output_dir"]  # its own cache key


def test_synthesis_probe_runs_every_variant_on_tuning_subjects_and_applies_its_rules(tmp_path):
    shared_path("ixi_dlmuse", "train")
    results = tmp_path / "synthesis_probe.md"
    command = [sys.executable, str(REPO / "benchmarks" / "synthesis_probe.py"), "--preset", "smoke", "--work-dir",
               str(tmp_path / "work"), "--results", str(results), "--probabilities", "0.2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    table = results.read_text()
    rows = {line.split(" | ")[0][2:]: float(line.split(" | ")[1]) for line in table.splitlines()
            if line.startswith("| ") and not line.startswith(("| variant", "|---"))}
    chosen = "kept" if rows["kept"] > rows["painted"] + 0.005 else "painted"
    assert set(rows) == {"scratch", "kept", "painted", f"{chosen}_p0.2"}
    assert f"**{chosen}**" in table
    best = max(rows[chosen], rows[f"{chosen}_p0.2"])
    share = 0.5 if rows[chosen] >= best - 0.005 else 0.2
    assert f"Share of synthesised crops chosen by the rule (highest final mean Dice; the larger share within " \
           f"0.005): **{share:g}**" in table
    evaluation = os.listdir(shared_path("ixi_dlmuse", "eval"))
    assert "8 tuning subjects" in table and not any(name in table for name in evaluation)  # never read
