import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_ssl.transforms import RandContrastiveViews
from tests import helpers

PLAIN = {"flip_prob": 0.0, "intensity_prob": 0.0, "noise_prob": 0.0, "blur_prob": 0.0}


def locate(view: torch.Tensor, volume: torch.Tensor) -> tuple[int, ...]:
    """Where a crop of a volume of distinct values starts, found by its first voxel."""
    return tuple(int(i) for i in torch.nonzero(volume[0] == view[0, 0, 0, 0])[0])


def test_both_views_are_crops_of_the_same_volume():
    volume = helpers.unique_volume((1, 40, 36, 32))
    transform = RandContrastiveViews(view_size=(16, 20, 12), **PLAIN).set_random_state(0)
    starts = set()
    for _ in range(5):
        views = transform(volume)
        assert views.shape == (2, 1, 16, 20, 12)
        for view in views:
            start = locate(view, volume)
            assert torch.equal(view, helpers.crop(volume, start, (16, 20, 12)))
            starts.add(start)
    assert len(starts) > 5  # independent crops


def test_augmentations_change_the_views_and_a_seed_fixes_them():
    volume = torch.rand(1, 32, 32, 32, generator=torch.Generator().manual_seed(0))
    a = RandContrastiveViews(view_size=24).set_random_state(3)
    b = RandContrastiveViews(view_size=24).set_random_state(3)
    first = a(volume)
    assert torch.equal(first, b(volume)) and torch.equal(a(volume, randomize=False), first)
    assert not torch.equal(first[0], first[1])
    assert isinstance(a(volume.numpy(), randomize=False), np.ndarray)


def test_metatensor_views_carry_their_own_affine():
    from tests.test_rand_volume_jigsaw import assert_each_patch_affine_locates_its_voxels

    affine = torch.tensor([[2.0, 0.0, 0.0, -30.0], [0.0, 1.5, 0.0, 5.0], [0.0, 0.0, 1.0, 12.0], [0, 0, 0, 1]])
    volume = MetaTensor(helpers.unique_volume((1, 40, 36, 32)), affine=affine, meta={"filename_or_obj": "volume.nii.gz"})
    transform = RandContrastiveViews(view_size=16, **{**PLAIN, "flip_prob": 0.5}).set_random_state(1)
    for _ in range(3):
        views = transform(volume)
        assert views.is_batch and views.affine.shape == (2, 4, 4)
        assert_each_patch_affine_locates_its_voxels(views, volume)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"flip_prob": 2.0}, "flip_prob must be a probability"), ({"noise_std": -1.0}, "noise_std must be >= 0"),
     ({"view_size": 0}, "view_size must be a positive int")],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RandContrastiveViews(**kwargs)


def test_a_view_larger_than_the_volume_names_the_fix():
    with pytest.raises(ValueError, match="smaller view_size or a larger roi_size"):
        RandContrastiveViews(view_size=48)(torch.rand(1, 32, 32, 32))
