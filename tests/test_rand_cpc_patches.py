import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_ssl.transforms import RandCPCPatches, RandCPCPatchesd, RandCPCPatchesD, RandCPCPatchesDict
from tests import helpers


def test_cubes_are_the_crops_at_their_starts_in_grid_order():
    volume = helpers.unique_volume((1, 40, 36, 32))
    transform = RandCPCPatches(patch_size=(10, 12, 8), grid=(3, 4, 2), jitter=2).set_random_state(0)
    cubes = transform(volume)
    starts = transform.patch_starts
    assert cubes.shape == (24, 1, 10, 12, 8)
    for index, start in enumerate(starts):
        assert torch.equal(cubes[index], helpers.crop(volume, start, (10, 12, 8)))
    assert np.all(starts >= 0) and np.all(starts + (10, 12, 8) <= (40, 36, 32))
    rows = starts[:, 0].reshape(3, 4, 2)
    assert np.all(np.diff(rows.mean(axis=(1, 2))) > 0)  # C order: the first axis is the slowest


def test_a_target_cube_is_never_in_its_own_context():
    transform = RandCPCPatches(grid=(4, 3, 3), context_rows=3)
    context, target = set(transform.context_indices()), set(transform.target_indices())
    assert not context & target and context | target == set(range(36))
    assert len(target) == 9  # the last row of 3 x 3 cubes


def test_jitter_is_bounded_and_a_seed_fixes_the_cubes():
    volume = helpers.unique_volume((1, 48, 48, 48))
    still = RandCPCPatches(patch_size=12, grid=4, jitter=0)
    still(volume)
    base = still.patch_starts
    moved = RandCPCPatches(patch_size=12, grid=4, jitter=2).set_random_state(1)
    first = moved(volume)
    assert np.abs(moved.patch_starts - base).max() <= 2 and not np.array_equal(moved.patch_starts, base)
    again = RandCPCPatches(patch_size=12, grid=4, jitter=2).set_random_state(1)
    assert torch.equal(again(volume), first) and torch.equal(moved(volume, randomize=False), first)


def test_metatensor_cubes_carry_their_own_affine():
    from tests.test_rand_volume_jigsaw import assert_each_patch_affine_locates_its_voxels

    affine = torch.diag(torch.tensor([1.5, 2.0, 3.0, 1.0]))
    volume = MetaTensor(helpers.unique_volume((1, 32, 32, 32)), affine=affine, meta={"filename_or_obj": "volume.nii.gz"})
    cubes = RandCPCPatches(patch_size=8, grid=(2, 2, 2)).set_random_state(2)(volume)
    assert cubes.affine.shape == (8, 4, 4)
    assert_each_patch_affine_locates_its_voxels(cubes, volume)


def test_dictionary_keys_share_the_cubes():
    image = torch.rand(1, 32, 32, 32, generator=torch.Generator().manual_seed(0))
    out = RandCPCPatchesd(keys=("image", "copy"), patch_size=8).set_random_state(3)({"image": image, "copy": image})
    assert torch.equal(out["image"], out["copy"]) and out["image"].shape == (64, 1, 8, 8, 8)
    assert RandCPCPatchesD is RandCPCPatchesd is RandCPCPatchesDict


@pytest.mark.parametrize(
    "kwargs, match",
    [({"grid": (1, 4, 4)}, "at least 2 rows"), ({"context_rows": 4}, "context_rows must be between 1 and 3"),
     ({"jitter": -1}, "jitter must be an int >= 0"), ({"patch_size": 0}, "patch_size must be a positive int")],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RandCPCPatches(**kwargs)


def test_cubes_larger_than_the_volume_name_the_fix():
    with pytest.raises(ValueError, match="smaller patch_size or a larger roi_size"):
        RandCPCPatches(patch_size=40)(torch.rand(1, 32, 32, 32))
