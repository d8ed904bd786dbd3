import torch

from monai_ssl.transforms import RandSliceRotation, RandSliceRotationd, RandSliceRotationD, RandSliceRotationDict


def test_keys_share_the_rotation_and_the_label_is_written():
    image = torch.arange(2 * 8 * 8 * 8, dtype=torch.float32).reshape(2, 8, 8, 8)
    rotation = RandSliceRotationd(keys=("image", "label"), planes=((0, 1), (0, 2), (1, 2))).set_random_state(3)
    for _ in range(10):
        out = rotation({"image": image, "label": image[:1] > 100})
        label = out["rotation_label"]
        assert label.dtype == torch.long and label.ndim == 0
        assert torch.equal(out["label"], out["image"][:1] > 100)
        plane, k = rotation.rotation.decode(int(label))
        expected = image if plane is None else torch.rot90(image, k, dims=(plane[0] + 1, plane[1] + 1))
        assert torch.equal(out["image"], expected)


def test_same_seed_as_the_array_transform_and_aliases():
    assert RandSliceRotationD is RandSliceRotationd and RandSliceRotationDict is RandSliceRotationd
    image = torch.rand(1, 6, 6, 6)
    d = RandSliceRotationd(keys="image", label_key="k", planes=((0, 2),)).set_random_state(8)
    a = RandSliceRotation(planes=((0, 2),)).set_random_state(8)
    for _ in range(5):
        out = d({"image": image})
        assert torch.equal(out["image"], a(image)) and int(out["k"]) == a.label
    assert d.num_classes == 4
