"""RandVolumeMaskingd: one draw for every key, the originals kept as targets, the mask written beside them."""

import numpy as np
import pytest
import torch

from monai_ssl.transforms import RandVolumeMasking, RandVolumeMaskingd, RandVolumeMaskingD, RandVolumeMaskingDict


def sample() -> dict:
    image = torch.rand(1, 16, 12, 8, generator=torch.Generator().manual_seed(0)) + 0.5
    return {"image": image, "other": image.clone(), "name": "kept"}


def test_targets_are_the_originals_and_keys_share_the_cubes():
    data = sample()
    original = data["image"].clone()
    transform = RandVolumeMaskingd(keys=("image", "other"), target_key=("image_target", "other_target"),
                                   mask_key="mask", cube_size=4)
    transform.set_random_state(0)
    for _ in range(3):
        out = transform(data)
        assert torch.equal(out["image_target"], original) and torch.equal(out["other_target"], original)
        assert torch.equal(out["image"], out["other"])
        mask = out["mask"]
        assert mask.shape == (1, 16, 12, 8) and mask.dtype == torch.float32 and set(mask.unique().tolist()) == {0, 1}
        assert torch.equal(out["image"], torch.where(mask.bool(), 0.0, original))
        assert out["name"] == "kept" and torch.equal(data["image"], original)


def test_matches_the_array_transform_with_the_same_seed():
    data = sample()
    out = RandVolumeMaskingd(keys="image", cube_size=4).set_random_state(5)(data)
    array = RandVolumeMasking(cube_size=4).set_random_state(5)
    assert torch.equal(out["image"], array(data["image"]))
    assert np.array_equal(out["masked_volume_mask"].numpy().astype(bool), array.mask(data["image"].shape[1:]))
    assert torch.equal(out["masked_volume_target"], data["image"])


def test_numpy_inputs_give_numpy_masks():
    out = RandVolumeMaskingd(keys="image", cube_size=4).set_random_state(0)({"image": sample()["image"].numpy()})
    assert isinstance(out["masked_volume_mask"], np.ndarray) and out["masked_volume_mask"].dtype == np.float32


def test_aliases_one_target_per_key_and_one_grid():
    assert RandVolumeMaskingD is RandVolumeMaskingd is RandVolumeMaskingDict
    with pytest.raises(ValueError, match="one target per key"):
        RandVolumeMaskingd(keys=("image", "other"))
    data = dict(sample(), other=torch.rand(1, 8, 8, 8))
    with pytest.raises(ValueError, match="must share a spatial shape"):
        RandVolumeMaskingd(keys=("image", "other"), target_key=("a", "b"), cube_size=4)(data)
    assert RandVolumeMaskingd(keys="missing", allow_missing_keys=True)({"x": 1}) == {"x": 1}
