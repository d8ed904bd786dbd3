import logging

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_ssl.transforms import RandRelativePatchPosition, RandRelativePatchPositiond, neighbour_offsets
from tests import helpers
from tests.helpers import crop


def unique_volume(shape=(1, 40, 40, 40)) -> torch.Tensor:
    return helpers.unique_volume(shape)


def test_without_jitter_the_neighbour_starts_at_centre_plus_offset_times_step():
    img = unique_volume()
    rpp = RandRelativePatchPosition(patch_size=(8, 10, 6), gap=3, jitter=0).set_random_state(0)
    for _ in range(30):
        out = rpp(img)
        expected = rpp.centre_start + rpp.offsets[rpp.label] * (np.array([8, 10, 6]) + 3)
        np.testing.assert_array_equal(rpp.neighbour_start, expected)
        assert out.shape == (2, 1, 8, 10, 6)
        assert torch.equal(out[0], crop(img, rpp.centre_start, (8, 10, 6)))
        assert torch.equal(out[1], crop(img, expected, (8, 10, 6)))


def test_jitter_is_bounded_and_every_neighbour_fits_whatever_the_label():
    img = unique_volume()
    rpp = RandRelativePatchPosition(patch_size=8, gap=2, jitter=2, fit_all_neighbours=True).set_random_state(1)
    low, high = rpp.valid_centre_range(img.shape[1:])
    np.testing.assert_array_equal(low, [12, 12, 12])
    np.testing.assert_array_equal(high, [20, 20, 20])  # 40 - 2 * 8 - gap - jitter
    labels = set()
    for _ in range(300):
        out = rpp(img)
        labels.add(rpp.label)
        shift = rpp.neighbour_start - (rpp.centre_start + rpp.offsets[rpp.label] * 10)
        assert np.all(np.abs(shift) <= 2)
        assert np.all(rpp.centre_start >= low) and np.all(rpp.centre_start <= high)
        assert torch.equal(out[1], crop(img, rpp.neighbour_start, (8, 8, 8)))
    assert labels == set(range(26))


def test_fit_drawn_neighbour_places_larger_patches_where_that_neighbour_fits():
    # 40 voxels hold two 16-voxel patches side by side (2 * 16 + gap 2 + jitter 2 = 36), not a 3x3x3 block
    img = unique_volume()
    with pytest.raises(ValueError, match=r"at least \(56, 56, 56\)"):
        RandRelativePatchPosition(patch_size=16, gap=2, jitter=2, fit_all_neighbours=True).valid_centre_range(
            img.shape[1:])
    rpp = RandRelativePatchPosition(patch_size=16, gap=2, jitter=2).set_random_state(0)  # the default, as the task's
    assert rpp.fit_all_neighbours is False and RandRelativePatchPositiond("image").patches.fit_all_neighbours is False
    np.testing.assert_array_equal(rpp.valid_centre_range(img.shape[1:], label=0)[0], [20, 20, 20])  # (-1,-1,-1)
    np.testing.assert_array_equal(rpp.valid_centre_range(img.shape[1:], label=0)[1], [24, 24, 24])
    np.testing.assert_array_equal(rpp.valid_centre_range(img.shape[1:], label=25)[1], [4, 4, 4])  # (1, 1, 1)
    centres = {k: set() for k in range(26)}
    for _ in range(600):
        out = rpp(img)
        low, high = rpp.valid_centre_range(img.shape[1:], rpp.label)
        assert np.all(rpp.centre_start >= low) and np.all(rpp.centre_start <= high)
        assert np.all(rpp.neighbour_start >= 0) and np.all(rpp.neighbour_start + 16 <= 40)
        shift = rpp.neighbour_start - (rpp.centre_start + rpp.offsets[rpp.label] * 18)
        assert np.all(np.abs(shift) <= 2)
        assert torch.equal(out[0], crop(img, rpp.centre_start, (16, 16, 16)))
        assert torch.equal(out[1], crop(img, rpp.neighbour_start, (16, 16, 16)))
        centres[rpp.label].add(tuple(rpp.centre_start))
    assert all(centres.values())  # every label was drawn
    with pytest.raises(ValueError, match=r"at least \(38, 38, 38\)"):
        RandRelativePatchPosition(patch_size=17, gap=2, jitter=2, fit_all_neighbours=False)(img[:, :37, :37, :37])


@pytest.mark.parametrize("neighbours", [26, 8, 6])
def test_offsets(neighbours):
    offsets = neighbour_offsets(neighbours)
    assert offsets.shape == (neighbours, 3)
    assert not np.any(np.all(offsets == 0, axis=1))
    assert np.all(np.abs(offsets) <= 1)
    assert len({tuple(o) for o in offsets}) == neighbours
    if neighbours == 8:
        assert np.all(offsets[:, 2] == 0)
    if neighbours == 6:
        assert np.all(np.abs(offsets).sum(1) == 1)
    np.testing.assert_array_equal(RandRelativePatchPosition(neighbours=neighbours).offsets, offsets)


def test_foreground_threshold_centres_the_centre_patch_on_foreground():
    img = torch.zeros(1, 48, 48, 48)
    img[0, 20:23, 25:27, 18:21] = 1.0
    rpp = RandRelativePatchPosition(patch_size=8, gap=2, jitter=1, foreground_threshold=0.5).set_random_state(0)
    for _ in range(20):
        rpp(img)
        centre_voxel = rpp.centre_start + 4
        assert img[0, centre_voxel[0], centre_voxel[1], centre_voxel[2]] == 1.0


def test_mask_places_the_centre_patch():
    img = torch.rand(1, 48, 48, 48)
    mask = torch.zeros(1, 48, 48, 48)
    mask[0, 28, 17, 30] = 1
    rpp = RandRelativePatchPosition(patch_size=8, gap=2, jitter=1).set_random_state(0)
    rpp(img, mask=mask)
    np.testing.assert_array_equal(rpp.centre_start, [24, 13, 26])


def test_no_usable_foreground_logs_a_warning_and_samples_uniformly(caplog):
    rpp = RandRelativePatchPosition(patch_size=8, foreground_threshold=10.0).set_random_state(0)
    with caplog.at_level(logging.WARNING):
        out = rpp(torch.zeros(1, 40, 40, 40))
    assert out.shape == (2, 1, 8, 8, 8)
    assert "no foreground voxel" in caplog.text


def test_types_follow_the_input():
    img = unique_volume()
    outs = []
    for data in (img.numpy(), img, MetaTensor(img.clone(), meta={"filename_or_obj": "x.nii"})):
        out = RandRelativePatchPosition(patch_size=8).set_random_state(2)(data)
        assert type(out) is type(data)
        outs.append(torch.as_tensor(np.asarray(out)))
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[1], outs[2])


def test_same_seed_same_sample_and_randomize_false():
    img = unique_volume()
    a = RandRelativePatchPosition(patch_size=8).set_random_state(3)
    b = RandRelativePatchPosition(patch_size=8).set_random_state(3)
    for _ in range(5):
        assert torch.equal(a(img), b(img)) and a.label == b.label
    assert torch.equal(a(img, randomize=False), b(img, randomize=False))


@pytest.mark.parametrize(
    "kwargs", [{"patch_size": 0}, {"patch_size": (8, 8)}, {"gap": -1}, {"jitter": -2}, {"neighbours": 4}]
)
def test_bad_arguments_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        RandRelativePatchPosition(**kwargs)


def test_too_small_volume_and_wrong_mask_shape():
    with pytest.raises(ValueError, match=r"at least \(108, 108, 108\)"):
        RandRelativePatchPosition(fit_all_neighbours=True)(torch.zeros(1, 64, 64, 64))
    with pytest.raises(ValueError, match=r"at least \(70, 70, 70\)"):
        RandRelativePatchPosition()(torch.zeros(1, 64, 64, 64))
    with pytest.raises(ValueError, match="mask"):
        RandRelativePatchPosition(patch_size=8)(torch.zeros(1, 40, 40, 40), mask=torch.zeros(1, 40, 40, 39))


def test_real_brats_volume_with_foreground(brats_flair):
    rpp = RandRelativePatchPosition(patch_size=24, foreground_threshold=0.0).set_random_state(0)
    for _ in range(5):
        out = rpp(brats_flair)
        centre = rpp.centre_start + 12
        assert (brats_flair[:, centre[0], centre[1], centre[2]] > 0).any()
        np.testing.assert_array_equal(out[1], crop(brats_flair, rpp.neighbour_start, (24, 24, 24)))


def test_each_patch_carries_its_own_affine():
    from tests.test_rand_volume_jigsaw import assert_each_patch_affine_locates_its_voxels

    affine = torch.tensor([[2.0, 0.0, 0.0, -30.0], [0.0, 0.0, 1.0, 5.0], [0.0, -1.0, 0.0, 12.0], [0, 0, 0, 1]])
    volume = MetaTensor(helpers.unique_volume((1, 40, 40, 40)), affine=affine, meta={"filename_or_obj": "volume.nii.gz"})
    transform = RandRelativePatchPosition(patch_size=8, gap=1, jitter=1)
    for seed in range(3):
        out = transform.set_random_state(seed)(volume)
        assert out.affine.shape == (2, 4, 4)
        assert_each_patch_affine_locates_its_voxels(out, volume)
