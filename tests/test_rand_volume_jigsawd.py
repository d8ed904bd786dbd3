import pytest
import torch

from monai_ssl.transforms import RandVolumeJigsaw, RandVolumeJigsawd, RandVolumeJigsawD, RandVolumeJigsawDict
from tests.helpers import crop


def sample():
    image = torch.arange(40 * 36 * 32, dtype=torch.float32).reshape(1, 40, 36, 32)
    return {"image": image, "mask": image.clone() * 2, "other": "kept"}


def test_label_is_a_0d_long_tensor_and_keys_share_the_permutation():
    jigsaw = RandVolumeJigsawd(keys=("image", "mask"), num_permutations=30, gap=2, jitter=1).set_random_state(0)
    out = jigsaw(sample())
    label = out["jigsaw_label"]
    assert label.dtype == torch.long and label.ndim == 0 and 0 <= int(label) < 30
    assert torch.equal(out["mask"], out["image"] * 2)
    assert out["other"] == "kept"


def test_matches_the_array_transform_with_the_same_seed():
    data = sample()
    out = RandVolumeJigsawd(keys="image", num_permutations=30, gap=2, jitter=1).set_random_state(5)(data)
    array = RandVolumeJigsaw(num_permutations=30, gap=2, jitter=1).set_random_state(5)
    assert torch.equal(out["image"], array(data["image"]))
    assert int(out["jigsaw_label"]) == array.label


def test_undoing_the_labelled_permutation_restores_every_key_in_grid_order():
    """Each key's cubes come back in grid (C) order when the permutation named by the label is undone: both keys
    share one draw, and the label indexes the exposed permutation set."""
    d = RandVolumeJigsawd(keys=("image", "mask"), num_permutations=30, gap=2, jitter=1).set_random_state(4)
    assert d.permutations.shape == (30, 8) and d.num_classes == 30
    data = sample()
    for _ in range(3):
        out = d(data)
        permutation = torch.as_tensor(d.permutations[int(out["jigsaw_label"])])
        starts, size = d.jigsaw.cube_starts, d.jigsaw.cube_size(data["image"].shape[1:])
        for key in ("image", "mask"):
            restored = torch.empty_like(out[key])
            restored[permutation] = out[key]
            assert torch.equal(restored, torch.stack([crop(data[key], s, size) for s in starts]))


def test_flip_flags_go_to_their_own_key():
    out = RandVolumeJigsawd(keys="image", label_key="perm", flip_label_key="flags", num_permutations=30,
                            gap=2, jitter=1, flip_axes=(0, 2)).set_random_state(0)(sample())
    assert "perm" in out and out["flags"].shape == (8, 2) and out["flags"].dtype == torch.float32


def test_same_seed_same_sample_and_aliases():
    assert RandVolumeJigsawD is RandVolumeJigsawd and RandVolumeJigsawDict is RandVolumeJigsawd
    a = RandVolumeJigsawd(keys="image", num_permutations=30).set_random_state(9)(sample())
    b = RandVolumeJigsawd(keys="image", num_permutations=30).set_random_state(9)(sample())
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["jigsaw_label"], b["jigsaw_label"])


def test_missing_key():
    with pytest.raises(KeyError):
        RandVolumeJigsawd(keys="absent")(sample())
    out = RandVolumeJigsawd(keys=("image", "absent"), allow_missing_keys=True, gap=2, jitter=1)(sample())
    assert out["image"].shape[0] == 8
