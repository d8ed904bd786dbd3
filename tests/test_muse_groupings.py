"""The MUSE region groupings (coarse and fine) against the atlas's own label list and composites."""

import csv
import json

from monai_ssl.data.muse import MUSE_COARSE, MUSE_FINE, label_names, label_sources
from tests.conftest import shared_path


def _atlas_ids() -> set[int]:
    with open(shared_path("ixi_dlmuse", "muse_labels.csv")) as f:
        return {int(row["id"]) for row in csv.DictReader(f)}


def test_groupings_are_disjoint_named_atlas_ids():
    ids = _atlas_ids()
    for groups, expected in ((MUSE_COARSE, 8), (MUSE_FINE, 49)):
        listed = [i for members in groups.values() for i in members]
        assert len(groups) == expected and len(listed) == len(set(listed)) and set(listed) <= ids
    assert set(ids) - {i for m in MUSE_FINE.values() for i in m} == {1}  # only cortical CSF is background
    assert set(ids) - {i for m in MUSE_COARSE.values() for i in m} == {1, 4, 11}  # and the thin ventricles


def test_groupings_follow_the_atlas_composites():
    composites = json.loads(shared_path("ixi_dlmuse", "muse_composites.json").read_text())
    for lobe in ("frontal", "limbic", "occipital", "parietal", "temporal"):
        for side in ("r", "l"):
            assert sorted(MUSE_FINE[f"{lobe}_grey_{side}"]) == composites[f"{lobe.capitalize()}_GM_{side.upper()}"]
    cortical = set(composites["GM"]) - set(composites["BasalGanglia"]) - set(composites["Cerebellum"]) - \
        set(composites["Deep_GM"]) - {31, 32, 47, 48, 75, 76}
    assert set(MUSE_COARSE["cortical_grey"]) == cortical
    assert set(MUSE_COARSE["cerebral_white"]) == set(composites["WM"]) - {40, 41}


def test_bundle_settings_of_a_grouping():
    names = label_names(MUSE_COARSE)
    assert names["background"] == 0 and sorted(names.values()) == list(range(9))
    assert set(label_sources(MUSE_COARSE)) == set(names) - {"background"}
