"""The label-efficiency benchmark script: its statistics, its argument checks, and a smoke run of every step."""

import subprocess
import sys

from tests.conftest import shared_path
from tests.helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import label_efficiency  # noqa: E402
from label_efficiency import iterations_to_reach, mean_sd, source_state, verdict  # noqa: E402

SCRIPT = str(REPO / "benchmarks" / "label_efficiency.py")


def test_verdict_reads_paired_differences():
    assert "no clear effect" in verdict([0.02, -0.01, 0.00])
    assert "helps" in verdict([0.05, 0.06, 0.05])  # small but consistent: paired differences show it
    assert "hurts" in verdict([-0.05, -0.06, -0.05])
    assert "one pair" in verdict([0.2])


def test_one_spread_everywhere_and_convergence():
    assert mean_sd([1.0, 2.0, 3.0]) == "2.000 ± 1.000"  # ddof 1
    curve = [(40, 0.1), (80, 0.3), (120, 0.5)]
    assert iterations_to_reach(curve, 0.3) == 80 and iterations_to_reach(curve, 0.6) is None


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


def test_overlapping_subjects_are_refused(tmp_path):
    shared_path("synthseg_label_maps")
    result = subprocess.run([sys.executable, SCRIPT, "--preset", "smoke", "--regions-train", "1", "16",
                             "--regions-eval", "16", "--work-dir", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode != 0 and "share subjects [16]" in result.stderr


def test_smoke_run_writes_the_results(tmp_path):
    shared_path("brats_deepmedic")
    shared_path("synthseg_label_maps")
    command = [sys.executable, SCRIPT, "--preset", "smoke", "--work-dir", str(tmp_path / "work"),
               "--results-dir", str(tmp_path / "results"), "--arms", "scratch", "rotation", "cpc", "--pretrain",
               "--regions-train", "1", "2", "--regions-eval", "16"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    table = (tmp_path / "results" / "label_efficiency.md").read_text()
    assert "| scratch |" in table and "| rotation |" in table and "whole_tumour" in table and "brainstem" in table
    assert "| cpc |" in table  # every registered task is an arm
    assert "2 folds" in table and "commit" in table and "wall time" in table and "## Goals" in table
    assert "evaluated on ['brats_2013_pat0003_1', 'brats_2013_pat0004_1']" in table
    assert (tmp_path / "results" / "label_efficiency.png").stat().st_size > 5000
    pretrained = list((tmp_path / "work" / "pretrain").iterdir())
    assert sorted(p.name.split("_seed0_")[0] for p in pretrained) == ["cpc", "rotation"]  # cached under a hash
    assert "unfinished" not in table

    # a re-run (e.g. after an interruption) reuses every finished fine-tuning run and reproduces the table
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert rerun.stdout.count("finished earlier, result reused") == 3 * 3  # 3 arms x (regions + 2 tumour folds)

    def without_timing(text):
        return [line for line in text.splitlines() if not line.startswith(("- date", "- wall time"))]

    assert without_timing((tmp_path / "results" / "label_efficiency.md").read_text()) == without_timing(table)
