import torch

from monai_ssl.transforms import (
    RandRestorationDegradation,
    RandRestorationDegradationd,
    RandRestorationDegradationD,
    RandRestorationDegradationDict,
)


def sample() -> dict:
    image = torch.rand(1, 32, 28, 24, generator=torch.Generator().manual_seed(0))
    return {"image": image, "other": image.clone(), "name": "kept"}


def test_the_target_is_the_untouched_input_and_keys_share_the_degradation():
    data = sample()
    original = data["image"].clone()
    transform = RandRestorationDegradationd(keys=("image", "other"), target_key=("image_target", "other_target"))
    transform.set_random_state(0)
    for _ in range(5):
        out = transform(data)
        assert torch.equal(out["image_target"], original) and torch.equal(out["other_target"], original)
        assert torch.equal(out["image"], out["other"])  # the same boxes, noise, permutations and curve
        assert out["name"] == "kept" and torch.equal(data["image"], original)
    assert not torch.equal(out["image"], original)


def test_matches_the_array_transform_with_the_same_seed():
    data = sample()
    out = RandRestorationDegradationd(keys="image").set_random_state(4)(data)
    array = RandRestorationDegradation().set_random_state(4)
    assert torch.equal(out["image"], array(data["image"]))
    assert torch.equal(out["restoration_target"], data["image"])


def test_aliases_and_one_target_per_key():
    assert RandRestorationDegradationD is RandRestorationDegradationd is RandRestorationDegradationDict
    import pytest

    with pytest.raises(ValueError, match="one target per key"):
        RandRestorationDegradationd(keys=("image", "other"))
