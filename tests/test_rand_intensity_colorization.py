import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_ssl.transforms import RandIntensityColorization


def volume(channels=1, seed=0) -> torch.Tensor:
    return torch.rand(channels, 20, 18, 16, generator=torch.Generator().manual_seed(seed)) * 300 - 100


def test_remap_applies_the_drawn_curve_within_each_channel_range():
    img = volume(channels=2)
    colorization = RandIntensityColorization(mode="remap", lut_size=256).set_random_state(0)
    out = colorization(img)
    curve = torch.as_tensor(colorization.curve, dtype=torch.float32)
    for c in range(2):
        low, high = float(img[c].min()), float(img[c].max())
        index = torch.floor((img[c] - low) * (255 / (high - low)) + 0.5).long()
        assert torch.allclose(out[c], curve[index] * (high - low) + low, atol=1e-4)
        assert out[c].min() >= low - 1e-4 and out[c].max() <= high + 1e-4


@pytest.mark.parametrize("invert_prob, increasing", [(0.0, True), (1.0, False)])
def test_remap_is_monotonic_and_inverted_on_request(invert_prob, increasing):
    img = volume()
    colorization = RandIntensityColorization(invert_prob=invert_prob).set_random_state(0)
    for _ in range(10):
        out = colorization(img)
        order = torch.argsort(img.flatten())
        remapped = out.flatten()[order]
        steps = remapped[1:] - remapped[:-1]
        assert (steps >= -1e-5).all() if increasing else (steps <= 1e-5).all()
        assert not torch.allclose(out, img)
        curve = colorization.curve
        assert curve[0] == pytest.approx(0.0 if increasing else 1.0)
        assert curve[-1] == pytest.approx(1.0 if increasing else 0.0)


def test_constant_channel_is_left_unchanged():
    img = torch.stack([torch.full((6, 6, 6), 3.0), torch.rand(6, 6, 6)])
    out = RandIntensityColorization().set_random_state(0)(img)
    assert torch.equal(out[0], img[0])


def test_channels_mode_drops_a_random_proper_subset_to_zero():
    img = volume(channels=3) + 500  # no voxel is 0 before dropping
    colorization = RandIntensityColorization(mode="channels").set_random_state(0)
    subsets = set()
    for _ in range(100):
        out = colorization(img)
        kept = colorization.kept_channels(3)
        assert 0 < kept.sum() < 3
        subsets.add(tuple(kept))
        for c in range(3):
            assert torch.equal(out[c], img[c]) if kept[c] else bool((out[c] == 0).all())
    assert len(subsets) == 2**3 - 2


def test_channels_mode_needs_two_channels():
    with pytest.raises(ValueError, match="at least 2 channels"):
        RandIntensityColorization(mode="channels")(volume(channels=1))


def test_bins_target_is_the_intensity_bin_index():
    img = volume()
    colorization = RandIntensityColorization(bins=8)
    target = colorization.target(img)
    low, high = float(img.min()), float(img.max())
    expected = torch.clamp(torch.floor((img - low) / (high - low) * 8), 0, 7).long()
    assert target.dtype == torch.long and torch.equal(target, expected)
    assert int(target.min()) == 0 and int(target.max()) == 7
    fixed = RandIntensityColorization(bins=4, bin_range=(-100, 200)).target(img)
    assert torch.equal(fixed, torch.clamp(torch.floor((img + 100) / 75), 0, 3).long())
    assert RandIntensityColorization().target(img) is img


def test_types_follow_the_input():
    img = volume()
    outs = []
    for data in (img.numpy(), img, MetaTensor(img.clone(), meta={"filename_or_obj": "x.nii"})):
        out = RandIntensityColorization().set_random_state(1)(data)
        assert type(out) is type(data) and out.shape == img.shape
        outs.append(torch.as_tensor(np.asarray(out)))
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[1], outs[2])
    meta_out = RandIntensityColorization()(MetaTensor(img.clone(), meta={"filename_or_obj": "x.nii"}))
    assert meta_out.meta["filename_or_obj"] == "x.nii"


def test_same_seed_same_sample():
    img = volume()
    a = RandIntensityColorization().set_random_state(6)
    b = RandIntensityColorization().set_random_state(6)
    for _ in range(3):
        assert torch.equal(a(img), b(img))


@pytest.mark.parametrize(
    "kwargs",
    [{"mode": "swap"}, {"invert_prob": -0.1}, {"bins": 1}, {"bins": 2.5}, {"bins": 4, "bin_range": (3, 1)},
     {"bin_range": (0, 1)}, {"lut_size": 1}],
)
def test_bad_arguments_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        RandIntensityColorization(**kwargs)


def test_real_two_channel_mr(brats_two_channel):
    colorization = RandIntensityColorization(mode="channels").set_random_state(0)
    out = colorization(brats_two_channel)
    kept = colorization.kept_channels(2)
    assert kept.sum() == 1
    np.testing.assert_array_equal(out[kept], brats_two_channel[kept])
    assert (out[~kept] == 0).all()
