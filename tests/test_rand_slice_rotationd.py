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


def test_compose_inverse_restores_the_geometry_and_leaves_no_record():
    """MetaTensor inputs: one record per call, which Compose.inverse undoes (rotation back, crop padded with zeros);
    no stale Rotate90 or crop record is left behind to confuse a later inverse."""
    from monai.data import MetaTensor
    from monai.transforms import Compose

    affine = torch.diag(torch.tensor([2.0, 3.0, 4.0, 1.0]))
    affine[:3, 3] = torch.tensor([-5.0, 7.0, 11.0])
    image = MetaTensor(torch.arange(20 * 16 * 12, dtype=torch.float32).reshape(1, 20, 16, 12), affine=affine)
    labels = set()
    for seed in range(200):
        if labels == set(range(10)):
            break
        pipeline = Compose([RandSliceRotationd(keys="image", planes=((0, 1), (0, 2), (1, 2)))])
        pipeline.set_random_state(seed)
        out = pipeline({"image": image.clone()})
        labels.add(int(out["rotation_label"]))
        assert [op["class"] for op in out["image"].applied_operations] == ["RandSliceRotation"]
        restored = pipeline.inverse(out)["image"]
        assert restored.applied_operations == []
        assert restored.shape == image.shape
        torch.testing.assert_close(restored.affine, image.affine)
        inside = (slice(None), slice(4, 16), slice(2, 14), slice(0, 12))  # the 12^3 centre crop, rotated back
        assert torch.equal(restored[inside], image[inside])
        assert float(restored.sum()) == float(image[inside].sum())  # the cropped border comes back as zeros
    assert labels == set(range(10))  # no rotation (crop only) and every rotation
