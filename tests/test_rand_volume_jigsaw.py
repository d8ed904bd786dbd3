import math

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_ssl.transforms import RandVolumeJigsaw, max_hamming_permutations
from tests import helpers
from tests.helpers import crop


def unique_volume(shape=(1, 40, 36, 32)) -> torch.Tensor:
    return helpers.unique_volume(shape)


def test_output_i_is_cube_permutations_label_i_and_undoing_restores_cubes():
    img = unique_volume()
    jigsaw = RandVolumeJigsaw(grid=(2, 2, 2), num_permutations=24, gap=2, jitter=1).set_random_state(3)
    for _ in range(5):
        out = jigsaw(img)
        size = jigsaw.cube_size(img.shape[1:])
        cubes = [crop(img, s, size) for s in jigsaw.cube_starts]
        permutation = jigsaw.permutations[jigsaw.label]
        assert out.shape == (8, 1, *size)
        for i in range(8):
            assert torch.equal(out[i], cubes[permutation[i]])
        restored = torch.empty_like(out)
        restored[torch.tensor(permutation)] = out
        assert torch.equal(restored, torch.stack(cubes))


def test_cells_are_numbered_in_c_order_and_cubes_keep_the_gap():
    img = unique_volume((1, 48, 48, 48))
    no_jitter = RandVolumeJigsaw(grid=(2, 3, 4), num_permutations=10, gap=4, jitter=0)
    no_jitter(img)
    cell = np.array([24, 16, 12])
    expected = np.array([np.array(idx) * cell + 2 for idx in np.ndindex(2, 3, 4)])
    np.testing.assert_array_equal(no_jitter.cube_starts, expected)
    assert no_jitter.cube_size(img.shape[1:]) == (20, 12, 8)

    jittered = RandVolumeJigsaw(grid=(2, 3, 4), num_permutations=10, gap=4, jitter=2).set_random_state(0)
    size = np.array(jittered.cube_size(img.shape[1:]))
    for _ in range(20):
        jittered(img)
        starts = jittered.cube_starts.reshape(2, 3, 4, 3)
        for axis in range(3):
            nxt = np.take(starts, range(1, starts.shape[axis]), axis=axis)[..., axis]
            prev = np.take(starts, range(0, starts.shape[axis] - 1), axis=axis)[..., axis]
            assert np.all(nxt - (prev + size[axis]) >= 4)
        assert np.all(jittered.cube_starts >= 0) and np.all(jittered.cube_starts + size <= 48)


def test_uncovered_border_is_split_evenly():
    jigsaw = RandVolumeJigsaw(grid=(2, 2, 2), num_permutations=2, gap=0, jitter=0)
    jigsaw(unique_volume((1, 11, 10, 13)))
    np.testing.assert_array_equal(jigsaw.cube_starts[0], [0, 0, 0])
    np.testing.assert_array_equal(jigsaw.cube_starts[-1], [5, 5, 6])


@pytest.mark.parametrize("flip_axes, flipped_dims", [((0,), (2, 3)), ((2,), (1, 2)), ((0, 1), (1, 2))])
def test_rubik_flips_rotate_cubes_by_180_degrees(flip_axes, flipped_dims):
    img = unique_volume()
    jigsaw = RandVolumeJigsaw(num_permutations=5, gap=2, jitter=0, flip_axes=flip_axes, flip_prob=1.0)
    out = jigsaw(img)
    size = jigsaw.cube_size(img.shape[1:])
    assert jigsaw.flips.shape == (8, len(flip_axes)) and jigsaw.flips.all()
    for i, cube_number in enumerate(jigsaw.permutations[jigsaw.label]):
        assert torch.equal(out[i], torch.flip(crop(img, jigsaw.cube_starts[cube_number], size), flipped_dims))


def test_flip_flags_follow_output_positions():
    img = unique_volume()
    jigsaw = RandVolumeJigsaw(num_permutations=5, gap=2, jitter=0, flip_axes=(2,), flip_prob=0.5).set_random_state(1)
    out = jigsaw(img)
    size = jigsaw.cube_size(img.shape[1:])
    flags = jigsaw.flips[:, 0]
    assert 0 < flags.sum() < 8
    for i, cube_number in enumerate(jigsaw.permutations[jigsaw.label]):
        cube = crop(img, jigsaw.cube_starts[cube_number], size)
        assert torch.equal(out[i], torch.flip(cube, (1, 2)) if flags[i] else cube)


def test_permutation_set_is_max_hamming_deterministic_and_starts_with_identity():
    perms = max_hamming_permutations(8, 100, seed=0)
    assert perms.shape == (100, 8) and perms.dtype == np.int64
    np.testing.assert_array_equal(perms[0], np.arange(8))
    assert len({tuple(p) for p in perms}) == 100
    assert all(sorted(p) == list(range(8)) for p in perms)
    np.testing.assert_array_equal(perms, max_hamming_permutations(8, 100, seed=0))
    distances = (perms[:, None] != perms[None]).sum(-1) + 99 * np.eye(100, dtype=int)
    random_set = np.stack([np.random.RandomState(s).permutation(8) for s in range(100)])
    random_distances = (random_set[:, None] != random_set[None]).sum(-1) + 99 * np.eye(100, dtype=int)
    assert distances.min() >= 5 > random_distances.min()
    assert not np.array_equal(perms, max_hamming_permutations(8, 100, seed=1))
    # every one of the 24 permutations of 4 items, when asked for all of them
    assert len({tuple(p) for p in max_hamming_permutations(4, 24)}) == math.factorial(4)


def test_large_grids_sample_candidates():
    perms = max_hamming_permutations(27, 30, seed=0)
    assert perms.shape == (30, 27)
    distances = (perms[:, None] != perms[None]).sum(-1) + 99 * np.eye(30, dtype=int)
    assert distances.min() >= 24


def test_numpy_tensor_and_metatensor_give_the_same_cubes_and_types():
    img = unique_volume()
    meta = MetaTensor(img.clone(), meta={"filename_or_obj": "volume.nii.gz"})
    outputs = []
    for data in (img.numpy(), img, meta):
        out = RandVolumeJigsaw(num_permutations=10, gap=2, jitter=1).set_random_state(7)(data)
        outputs.append(torch.as_tensor(np.asarray(out)))
        assert type(out) is type(data)
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[1], outputs[2])


def assert_each_patch_affine_locates_its_voxels(out, volume):
    """For every patch ``out[i]``, its own affine maps each of its voxels to the world point of the volume voxel
    holding the same (unique) value: the patch geometry is the patch's, flips included."""
    inverse = torch.linalg.inv(volume.affine.to(torch.float64))
    for i in range(out.shape[0]):
        patch = out[i]
        assert isinstance(patch, MetaTensor) and patch.affine.shape == (4, 4)
        assert patch.meta["filename_or_obj"] == "volume.nii.gz"
        grid = torch.stack(torch.meshgrid(*[torch.arange(n) for n in patch.shape[1:]], indexing="ij"), -1).reshape(-1, 3)
        world = grid.to(torch.float64) @ patch.affine[:3, :3].T + patch.affine[:3, 3]
        source = (world @ inverse[:3, :3].T + inverse[:3, 3]).round().long()
        expected = volume.as_tensor()[0][source[:, 0], source[:, 1], source[:, 2]]
        assert torch.equal(patch.as_tensor()[0][grid[:, 0], grid[:, 1], grid[:, 2]], expected)


def test_each_cube_carries_its_own_affine():
    affine = torch.tensor([[0.0, -2.0, 0.0, 10.0], [1.5, 0.0, 0.0, -4.0], [0.0, 0.0, 3.0, 7.0], [0, 0, 0, 1]])
    volume = MetaTensor(unique_volume(), affine=affine, meta={"filename_or_obj": "volume.nii.gz"})
    jigsaw = RandVolumeJigsaw(num_permutations=10, gap=2, jitter=1, flip_axes=(0, 2), flip_prob=0.5)
    for seed in range(3):
        out = jigsaw.set_random_state(seed)(volume)
        assert out.is_batch and out.affine.shape == (8, 4, 4)
        assert_each_patch_affine_locates_its_voxels(out, volume)
    assert jigsaw.flips.any()  # the flips were exercised


def test_same_seed_same_sample():
    img = unique_volume()
    a = RandVolumeJigsaw(num_permutations=50, flip_axes=(0,)).set_random_state(11)
    b = RandVolumeJigsaw(num_permutations=50, flip_axes=(0,)).set_random_state(11)
    for _ in range(3):
        assert torch.equal(a(img), b(img)) and a.label == b.label
        np.testing.assert_array_equal(a.flips, b.flips)


def test_randomize_false_reuses_the_last_draw():
    img = unique_volume()
    jigsaw = RandVolumeJigsaw(num_permutations=50).set_random_state(0)
    first = jigsaw(img)
    assert torch.equal(jigsaw(img, randomize=False), first)


def test_labels_cover_the_permutation_set():
    jigsaw = RandVolumeJigsaw(num_permutations=10).set_random_state(0)
    labels = set()
    for _ in range(200):
        jigsaw.randomize()
        labels.add(jigsaw.label)
    assert labels == set(range(10))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"grid": (0, 2, 2)},
        {"num_permutations": 1},
        {"num_permutations": 40321},
        {"gap": -1},
        {"jitter": 1.5},
        {"flip_axes": (0, 1, 2)},
        {"flip_axes": (0, 0)},
        {"flip_axes": (3,)},
        {"flip_prob": 1.5},
    ],
)
def test_bad_arguments_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        RandVolumeJigsaw(**kwargs)


def test_grid_dimensions_must_match_the_image():
    with pytest.raises(ValueError, match="spatial dimensions"):
        RandVolumeJigsaw(grid=(2, 2), num_permutations=2)(unique_volume())
    out = RandVolumeJigsaw(grid=(2, 2), num_permutations=2, gap=0, jitter=0)(unique_volume((1, 8, 6)))
    assert out.shape == (4, 1, 4, 3)


def test_too_small_volume_says_how_large_it_must_be():
    with pytest.raises(ValueError, match=r"at least \(18, 18, 18\)"):
        RandVolumeJigsaw(gap=4, jitter=2)(unique_volume((1, 16, 32, 32)))


def test_label_before_any_call_is_an_error():
    with pytest.raises(RuntimeError):
        _ = RandVolumeJigsaw().label


def test_real_brats_volume(brats_flair):
    jigsaw = RandVolumeJigsaw(grid=(2, 2, 2), num_permutations=100, gap=4, jitter=2).set_random_state(0)
    out = jigsaw(brats_flair)
    size = jigsaw.cube_size(brats_flair.shape[1:])
    assert isinstance(out, np.ndarray) and out.shape == (8, 1, *size)
    for i, cube_number in enumerate(jigsaw.permutations[jigsaw.label]):
        np.testing.assert_array_equal(out[i], crop(brats_flair, jigsaw.cube_starts[cube_number], size))
