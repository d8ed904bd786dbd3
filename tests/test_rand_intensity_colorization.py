import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_ssl.transforms import RandIntensityColorization


def volume(channels=1, seed=0) -> torch.Tensor:
    return torch.rand(channels, 20, 18, 16, generator=torch.Generator().manual_seed(seed)) * 300 - 100


@pytest.mark.parametrize("degree", [1, 2, 3, 5])
def test_remap_applies_the_drawn_curve_within_each_channel_range(degree):
    img = volume(channels=2)
    colorization = RandIntensityColorization(mode="remap", degree=degree).set_random_state(0)
    for _ in range(3):
        out = colorization(img)
        for c in range(2):
            low, high = float(img[c].min()), float(img[c].max())
            u = ((img[c].double() - low) / (high - low)).numpy()
            expected = low + (high - low) * colorization.curve_at(u)  # the Bernstein form, in float64
            np.testing.assert_allclose(out[c].numpy(), expected, atol=1e-4 * (high - low))
            rounding = 1e-6 * (high - low)  # float32 Horner evaluation: a few ulps
            assert out[c].min() >= low - rounding and out[c].max() <= high + rounding


def test_curve_is_the_bezier_of_its_control_values():
    colorization = RandIntensityColorization(degree=3, invert_prob=0.0).set_random_state(0)
    colorization.randomize()
    values = colorization.control_values
    assert values[0] == 0.0 and values[-1] == 1.0 and np.all(np.diff(values) >= 0)
    # de Casteljau at t: the Bezier curve with control points (i / 3, values[i]); x(t) = t for evenly spaced inputs
    t = 0.3
    points = list(values)
    while len(points) > 1:
        points = [(1 - t) * a + t * b for a, b in zip(points[:-1], points[1:])]
    assert colorization.curve_at(t) == pytest.approx(points[0])


@pytest.mark.parametrize("invert_prob, increasing", [(0.0, True), (1.0, False)])
def test_remap_is_monotonic_and_inverted_on_request(invert_prob, increasing):
    img = volume()
    colorization = RandIntensityColorization(invert_prob=invert_prob).set_random_state(0)
    for _ in range(10):
        out = colorization(img)
        order = torch.argsort(img.flatten())
        remapped = out.flatten()[order]
        steps = remapped[1:] - remapped[:-1]
        rounding = 1e-6 * float(img.max() - img.min())  # monotonic up to float32 rounding
        assert (steps >= -rounding).all() if increasing else (steps <= rounding).all()
        assert not torch.allclose(out, img)
        ends = colorization.curve_at(np.array([0.0, 1.0]))
        assert ends[0] == pytest.approx(0.0 if increasing else 1.0)
        assert ends[1] == pytest.approx(1.0 if increasing else 0.0)


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
     {"bin_range": (0, 1)}, {"degree": 0}, {"degree": 9}, {"degree": 2.5}],
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
