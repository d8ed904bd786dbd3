import numpy as np
import torch

from monai_ssl.transforms import (
    RandRelativePatchPosition,
    RandRelativePatchPositiond,
    RandRelativePatchPositionD,
    RandRelativePatchPositionDict,
)


def test_keys_share_positions_mask_key_places_them_and_label_is_written():
    image = torch.arange(48**3, dtype=torch.float32).reshape(1, 48, 48, 48)
    mask = torch.zeros(1, 48, 48, 48)
    mask[0, 24, 24, 24] = 1
    rpp = RandRelativePatchPositiond(keys=("image", "copy"), patch_size=8, gap=2, jitter=1, neighbours=6,
                                     mask_key="mask").set_random_state(0)
    out = rpp({"image": image, "copy": image * 3, "mask": mask})
    assert torch.equal(out["copy"], out["image"] * 3)
    assert out["mask"] is mask  # the mask is used, not cut
    label = out["rpp_label"]
    assert label.dtype == torch.long and label.ndim == 0 and 0 <= int(label) < 6
    np.testing.assert_array_equal(rpp.patches.centre_start, [20, 20, 20])
    assert rpp.num_classes == 6 and rpp.offsets.shape == (6, 3)


def test_same_seed_as_the_array_transform_and_aliases():
    assert RandRelativePatchPositionD is RandRelativePatchPositiond
    assert RandRelativePatchPositionDict is RandRelativePatchPositiond
    image = torch.rand(1, 40, 40, 40)
    d = RandRelativePatchPositiond(keys="image", label_key="pos", patch_size=8).set_random_state(5)
    a = RandRelativePatchPosition(patch_size=8).set_random_state(5)
    for _ in range(5):
        out = d({"image": image})
        assert torch.equal(out["image"], a(image)) and int(out["pos"]) == a.label
