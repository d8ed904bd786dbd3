"""RandVolumeMasking: exactly the drawn cubes are filled, everything else is untouched, and the draw is seeded."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_ssl.transforms import RandVolumeMasking


def volume(shape=(2, 10, 8, 8)) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(0)) + 0.5  # never equal to the fill


def test_the_drawn_cubes_and_only_they_are_filled_in_every_channel():
    image = volume()
    masking = RandVolumeMasking(mask_ratio=0.6, cube_size=4, fill_value=0.0).set_random_state(0)
    out = masking(image)
    assert masking.cube_mask.shape == (3, 2, 2)  # 10 voxels along axis 0: two whole cubes and one of 2
    assert masking.cube_mask.sum() == round(0.6 * 12)
    mask = masking.mask(image.shape[1:])
    assert mask.shape == (1, 10, 8, 8) and mask.dtype == bool
    for index in np.ndindex(3, 2, 2):
        cube = tuple(slice(4 * i, 4 * i + 4) for i in index)
        assert mask[(0, *cube)].all() == masking.cube_mask[index] == mask[(0, *cube)].any()
    assert torch.all(out[:, torch.from_numpy(mask[0])] == 0.0)
    assert torch.equal(out[:, torch.from_numpy(~mask[0])], image[:, torch.from_numpy(~mask[0])])


def test_the_count_stays_between_one_and_all_but_one():
    small = RandVolumeMasking(mask_ratio=0.01, cube_size=4).set_random_state(0)
    small(volume((1, 8, 8, 8)))
    assert small.cube_mask.sum() == 1
    large = RandVolumeMasking(mask_ratio=0.99, cube_size=4).set_random_state(0)
    large(volume((1, 8, 8, 8)))
    assert large.cube_mask.sum() == 7


def test_seeded_draws_repeat_and_randomize_false_reuses_the_last():
    image = volume()
    first = RandVolumeMasking(cube_size=2).set_random_state(3)
    second = RandVolumeMasking(cube_size=2).set_random_state(3)
    outputs = [first(image) for _ in range(3)]
    assert all(torch.equal(a, second(image)) for a in outputs)
    assert not torch.equal(outputs[0], outputs[1])
    assert torch.equal(first(image, randomize=False), outputs[-1])


def test_keeps_the_input_type_and_metadata():
    image = volume()
    array = RandVolumeMasking(cube_size=4).set_random_state(0)(image.numpy())
    assert isinstance(array, np.ndarray) and array.dtype == np.float32
    meta = MetaTensor(image, affine=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
    out = RandVolumeMasking(cube_size=4).set_random_state(0)(meta)
    assert isinstance(out, MetaTensor) and torch.equal(out.affine, meta.affine)
    assert torch.equal(out.as_tensor(), RandVolumeMasking(cube_size=4).set_random_state(0)(image))
    assert torch.equal(meta.as_tensor(), image)  # the caller's volume is left alone


@pytest.mark.parametrize("kwargs, message", [({"mask_ratio": 0.0}, "mask_ratio"), ({"mask_ratio": 1.0}, "mask_ratio"),
                                             ({"cube_size": 0}, "cube_size"), ({"cube_size": (4, 4)}, "cube_size")])
def test_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RandVolumeMasking(**kwargs)


def test_volumes_it_cannot_mask_are_refused_with_the_fix():
    masking = RandVolumeMasking(cube_size=8)
    with pytest.raises(RuntimeError, match="call the transform"):
        masking.mask((8, 8, 8))
    with pytest.raises(ValueError, match="use a smaller cube_size"):
        masking(volume((1, 8, 8, 8)))
    with pytest.raises(ValueError, match="3D volume"):
        masking(volume((1, 16, 16)))
    masking(volume((1, 16, 16, 16)))
    with pytest.raises(ValueError, match="randomize=True"):
        masking(volume((1, 32, 16, 16)), randomize=False)
