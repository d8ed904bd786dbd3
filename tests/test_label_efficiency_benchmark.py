"""The label-efficiency benchmark script runs every step (smoke preset) and writes its table and plot."""

import subprocess
import sys

from tests.conftest import shared_path
from tests.helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from label_efficiency import verdict  # noqa: E402


def test_verdict():
    assert "no clear effect" in verdict([0.50, 0.52, 0.51], [0.50, 0.49, 0.53])
    assert "helps" in verdict([0.70, 0.71, 0.72], [0.50, 0.51, 0.52])
    assert "hurts" in verdict([0.40, 0.41, 0.42], [0.50, 0.51, 0.52])
    assert "one seed" in verdict([0.7], [0.5])


def test_smoke_run_writes_the_results(tmp_path):
    shared_path("brats_deepmedic")
    shared_path("synthseg_label_maps")
    command = [sys.executable, str(REPO / "benchmarks" / "label_efficiency.py"), "--preset", "smoke",
               "--work-dir", str(tmp_path / "work"), "--results-dir", str(tmp_path / "results"),
               "--arms", "scratch", "rotation", "--regions-train", "1", "2", "--regions-eval", "16",
               "--brats-subjects", "brats_2013_pat0005_1", "brats_2013_pat0003_1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    table = (tmp_path / "results" / "label_efficiency.md").read_text()
    assert "| scratch |" in table and "| rotation |" in table and "whole_tumour" in table and "brainstem" in table
    assert "2 folds" in table and "commit" in table and "wall time" in table
    assert (tmp_path / "results" / "label_efficiency.png").stat().st_size > 5000
