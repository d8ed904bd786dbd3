"""The segmentation bundle's left-right flip of training crops swaps the ids of left and right structures, so a
flipped left hippocampus is labelled right; without pairs it is MONAI's RandFlipd."""

import pytest
import torch
from monai.transforms import RandFlipd

from monai_ssl.bundle import left_right_flip
from monai_ssl.data.muse import MUSE_FINE, MUSE_LATERAL_PAIRS


def crop() -> dict:
    image = torch.arange(8 * 4 * 4, dtype=torch.float32).reshape(1, 8, 4, 4)
    label = torch.zeros(1, 8, 4, 4, dtype=torch.int16)
    label[:, :4] = 47  # right hippocampus (RAS: low x is right)
    label[:, 4:] = 48
    label[:, :, 0] = 35  # brainstem: one id, on both sides
    return {"image": image, "label": label}


def test_a_flip_swaps_the_paired_ids_and_keeps_each_on_its_side():
    flip = left_right_flip([[47, 48]], prob=1.0)
    out = flip(crop())
    assert torch.equal(out["image"], torch.flip(crop()["image"], dims=[1]))
    assert torch.equal(out["label"], crop()["label"])  # the flipped right structure is the left one, and so on
    assert left_right_flip([[47, 48]], prob=0.0)(crop())["label"].equal(crop()["label"])


def test_the_flip_is_drawn_with_its_probability():
    flip = left_right_flip([[47, 48]], prob=0.5)
    flip.set_random_state(seed=0)
    flipped = [not torch.equal(flip(crop())["image"], crop()["image"]) for _ in range(200)]
    assert 70 < sum(flipped) < 130


def test_without_pairs_a_plain_monai_flip():
    flip = left_right_flip(None, prob=1.0)
    assert isinstance(flip, RandFlipd)
    assert torch.equal(flip(crop())["label"], torch.flip(crop()["label"], dims=[1]))


@pytest.mark.parametrize("pairs", [[[47, 47]], [[47, 48], [48, 49]], [[47]], [[-1, 3]]])
def test_bad_pairs_name_the_form(pairs):
    with pytest.raises(ValueError, match=r"\[\[right_id, left_id\], \.\.\.\]"):
        left_right_flip(pairs)


def test_muse_pairs_cover_every_sided_structure_of_the_fine_grouping():
    pairs = dict(MUSE_LATERAL_PAIRS)
    for name, ids in MUSE_FINE.items():
        if name.endswith("_r"):
            assert [pairs[i] for i in ids] == list(MUSE_FINE[name[:-2] + "_l"])
    sided = {i for name, ids in MUSE_FINE.items() if name.endswith(("_r", "_l")) for i in ids}
    assert {i for pair in MUSE_LATERAL_PAIRS for i in pair} == sided
