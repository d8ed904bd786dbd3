"""The split rule of the real brain MRI (benchmarks/real_mri.py): tuning, labelled and evaluation subjects never
mix, labelled draws are nested, and the real pool holds no synthesised image and no evaluation subject."""

import sys

from tests.conftest import shared_path
from tests.helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from real_mri import TUNING_SUBJECTS, labelled_draw, real_pool, split_ixi_train  # noqa: E402


def test_tuning_and_labelled_subjects_split_ixi_train():
    data_root = shared_path("ixi_dlmuse").parent
    tuning, labelled_pool = split_ixi_train(data_root)
    names = {s["name"] for s in tuning} | {s["name"] for s in labelled_pool}
    assert len(tuning) == TUNING_SUBJECTS and len(names) == 110 and len(tuning) + len(labelled_pool) == 110
    assert split_ixi_train(data_root) == (tuning, labelled_pool)  # deterministic


def test_labelled_draws_are_nested_and_differ_between_folds():
    _, labelled_pool = split_ixi_train(shared_path("ixi_dlmuse").parent)
    for fold in range(3):
        draws = [[s["name"] for s in labelled_draw(labelled_pool, fold, n)] for n in (1, 2, 4, 8)]
        assert all(small == large[: len(small)] for small, large in zip(draws, draws[1:]))
    firsts = {labelled_draw(labelled_pool, fold, 1)[0]["name"] for fold in range(3)}
    assert len(firsts) == 3


def test_real_pool_has_no_evaluation_or_tuning_subject():
    data_root = shared_path("ixi_dlmuse").parent
    pool = real_pool(data_root)
    training = {e["image"] for e in pool["training"]}
    validation = {e["image"] for e in pool["validation"]}
    assert not training & validation and all("label_map" not in e for e in pool["training"])
    assert not any("/eval/" in p or "brats_deepmedic/validation" in p for p in training | validation)
    tuning, _ = split_ixi_train(data_root)
    assert {s["image"] for s in tuning} <= validation
    without_ixi = real_pool(data_root, include_ixi=False)
    assert not any("ixi_dlmuse" in e["image"] for e in without_ixi["training"] + without_ixi["validation"])
    assert len(training) > 150
