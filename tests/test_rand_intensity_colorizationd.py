import pytest
import torch

from monai_ssl.transforms import (
    RandIntensityColorization,
    RandIntensityColorizationd,
    RandIntensityColorizationD,
    RandIntensityColorizationDict,
)


def test_target_is_the_original_image_and_keys_share_the_curve():
    image = torch.rand(1, 10, 10, 10)
    d = RandIntensityColorizationd(keys=("a", "b"), target_key=("a_target", "b_target")).set_random_state(0)
    out = d({"a": image, "b": image.clone()})
    assert torch.equal(out["a_target"], image) and torch.equal(out["b_target"], image)
    assert torch.equal(out["a"], out["b"]) and not torch.equal(out["a"], image)


def test_matches_the_array_transform_and_aliases():
    assert RandIntensityColorizationD is RandIntensityColorizationd
    assert RandIntensityColorizationDict is RandIntensityColorizationd
    image = torch.rand(2, 8, 8, 8)
    d = RandIntensityColorizationd(keys="image", mode="channels").set_random_state(2)
    a = RandIntensityColorization(mode="channels").set_random_state(2)
    out = d({"image": image})
    assert torch.equal(out["image"], a(image)) and torch.equal(out["colorization_target"], image)


def test_bins_target():
    image = torch.rand(1, 8, 8, 8)
    d = RandIntensityColorizationd(keys="image", bins=16)
    out = d({"image": image})
    assert out["colorization_target"].dtype == torch.long and int(out["colorization_target"].max()) == 15
    assert d.num_classes == 16


def test_one_target_key_per_key():
    with pytest.raises(ValueError, match="one target per key"):
        RandIntensityColorizationd(keys=("a", "b"), target_key="t")
