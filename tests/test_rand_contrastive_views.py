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


def test_view_to_source_maps_every_view_voxel_to_its_voxel_of_the_volume():
    volume = helpers.unique_volume((1, 30, 28, 26))
    transform = RandContrastiveViews(view_size=(12, 10, 8), **{**PLAIN, "flip_prob": 0.5}).set_random_state(2)
    flipped = set()
    for _ in range(6):
        views = transform(volume)
        maps = transform.view_to_source
        assert maps.shape == (2, 4, 4)
        for view, mapping in zip(views, maps):
            index = torch.stack(torch.meshgrid(*(torch.arange(n) for n in (12, 10, 8)), indexing="ij"), -1)
            source = (index.float() @ mapping[:3, :3].T + mapping[:3, 3]).long()
            assert torch.equal(view[0], volume[0][source[..., 0], source[..., 1], source[..., 2]])
            flipped.update(float(d) for d in torch.diagonal(mapping[:3, :3]))
    assert flipped == {-1.0, 1.0}  # both directions were exercised


def test_partitions_centre_both_views_in_one_band():
    size, view, partitions = 60, 10, 3
    transform = RandContrastiveViews(view_size=view, partitions=partitions, partition_axis=1,
                                     **PLAIN).set_random_state(0)
    bands = set()
    for _ in range(30):
        transform(torch.rand(1, 20, size, 20))
        band = transform.partition
        bands.add(band)
        for mapping in transform.view_to_source:
            centre = float(mapping[1, 3]) + (view - 1) / 2
            assert band * size / partitions - 0.5 <= centre <= (band + 1) * size / partitions + 0.5
    assert bands == {0, 1, 2}
    plain = RandContrastiveViews(view_size=view, **PLAIN)
    plain(torch.rand(1, 20, 20, 20))
    assert plain.partition == -1


def test_partition_and_repeat_arguments_are_checked():
    with pytest.raises(ValueError, match="partitions must be an int >= 0"):
        RandContrastiveViews(partitions=-1)
    with pytest.raises(ValueError, match="partition_axis must be a spatial axis"):
        RandContrastiveViews(partition_axis=3)
    transform = RandContrastiveViews(view_size=8)
    transform(torch.rand(1, 16, 16, 16))
    with pytest.raises(ValueError, match="repeats views drawn for a volume of \\[16, 16, 16\\]"):
        transform(torch.rand(1, 20, 16, 16), randomize=False)
    with pytest.raises(RuntimeError, match="has not drawn views yet"):
        RandContrastiveViews().view_to_source
