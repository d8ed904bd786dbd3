import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Rotate90

from monai_ssl.transforms import RandSliceRotation

PLANES_3D = ((0, 1), (0, 2), (1, 2))


def cube(shape=(2, 12, 12, 12)) -> torch.Tensor:
    return torch.arange(int(np.prod(shape)), dtype=torch.float32).reshape(shape)


def every_label(rotation: RandSliceRotation, img, draws: int = 200):
    """Yield (label, output) for every label, drawn through the transform's own random state."""
    seen = {}
    rotation.set_random_state(0)
    for _ in range(draws):
        out = rotation(img)
        seen.setdefault(rotation.label, out)
    assert set(seen) == set(range(rotation.num_classes))
    return sorted(seen.items())


def test_label_encodes_plane_and_k_exactly():
    img = cube()
    rotation = RandSliceRotation(planes=PLANES_3D)
    assert rotation.num_classes == 10
    for label, out in every_label(rotation, img):
        if label == 0:
            assert torch.equal(out, img)
            continue
        p, k = divmod(label - 1, 3)
        k += 1
        a, b = PLANES_3D[p]
        assert rotation.decode(label) == ((a, b), k)
        assert torch.equal(out, torch.rot90(img, k, dims=(a + 1, b + 1)))
        # rotating back by the label restores the input
        assert torch.equal(torch.rot90(out, -k, dims=(a + 1, b + 1)), img)


def test_one_plane_gives_four_classes():
    rotation = RandSliceRotation()
    assert rotation.num_classes == 4
    assert [rotation.decode(label) for label in range(4)] == [(None, 0), ((0, 1), 1), ((0, 1), 2), ((0, 1), 3)]


def test_non_square_planes_are_centre_cropped_for_every_label():
    img = cube((1, 10, 12, 15))
    one_plane = RandSliceRotation(planes=((0, 1),))
    for label, out in every_label(one_plane, img):
        assert out.shape == (1, 10, 10, 15)
    unrotated = every_label(one_plane, img)[0][1]
    assert torch.equal(unrotated, img[:, :, 1:11, :])
    all_planes = RandSliceRotation(planes=PLANES_3D)
    assert all_planes.square_shape((10, 12, 15)) == (10, 10, 10)
    assert all(out.shape == (1, 10, 10, 10) for _, out in every_label(all_planes, img))
    # planes (0, 1) and (1, 2) link axis 0 to axis 2 through axis 1
    assert RandSliceRotation(planes=((0, 1), (1, 2))).square_shape((10, 12, 15)) == (10, 10, 10)
    assert RandSliceRotation(planes=((1, 2),)).square_shape((10, 12, 15)) == (10, 12, 12)


def test_non_square_error_mode():
    with pytest.raises(ValueError, match="not square"):
        RandSliceRotation(non_square="error")(cube((1, 10, 12, 15)))


def test_types_follow_the_input_and_metatensor_geometry_matches_monai():
    img = cube()
    for data in (img.numpy(), img):
        out = RandSliceRotation(planes=PLANES_3D).set_random_state(1)(data)
        assert type(out) is type(data)
    meta = MetaTensor(img.clone(), affine=torch.diag(torch.tensor([2.0, 3.0, 4.0, 1.0])))
    rotation = RandSliceRotation(planes=PLANES_3D).set_random_state(0)
    while True:
        out = rotation(meta)
        if rotation.label:
            break
    plane, k = rotation.decode(rotation.label)
    expected = Rotate90(k, plane)(meta)
    assert isinstance(out, MetaTensor)
    assert torch.equal(out.as_tensor(), expected.as_tensor())
    assert torch.allclose(out.affine, expected.affine)


def test_same_seed_same_sample():
    img = cube()
    a = RandSliceRotation(planes=PLANES_3D).set_random_state(4)
    b = RandSliceRotation(planes=PLANES_3D).set_random_state(4)
    for _ in range(5):
        assert torch.equal(a(img), b(img)) and a.label == b.label


@pytest.mark.parametrize(
    "kwargs",
    [{"planes": ()}, {"planes": ((0, 0),)}, {"planes": ((0, 1, 2),)}, {"planes": ((0, 1), (1, 0))},
     {"planes": ((-1, 0),)}, {"non_square": "pad"}],
)
def test_bad_arguments_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        RandSliceRotation(**kwargs)


def test_plane_beyond_the_image_is_an_error():
    with pytest.raises(ValueError, match="beyond"):
        RandSliceRotation(planes=((0, 3),))(cube())


def test_real_brats_volume_rotates_back(brats_flair):
    rotation = RandSliceRotation(planes=PLANES_3D).set_random_state(2)
    for _ in range(4):
        out = rotation(brats_flair)
        square = rotation.square_shape(brats_flair.shape[1:])
        starts = [(s - q) // 2 for s, q in zip(brats_flair.shape[1:], square)]
        cropped = brats_flair[:, starts[0] : starts[0] + square[0], starts[1] : starts[1] + square[1],
                              starts[2] : starts[2] + square[2]]
        plane, k = rotation.decode(rotation.label)
        restored = out if plane is None else np.rot90(out, -k, axes=(plane[0] + 1, plane[1] + 1))
        np.testing.assert_array_equal(restored, cropped)
