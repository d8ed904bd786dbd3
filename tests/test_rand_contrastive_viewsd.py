import torch

from monai_ssl.transforms import (
    RandContrastiveViews,
    RandContrastiveViewsd,
    RandContrastiveViewsD,
    RandContrastiveViewsDict,
)


def test_every_key_gets_the_same_two_views_as_the_array_transform():
    image = torch.rand(1, 32, 32, 32, generator=torch.Generator().manual_seed(0))
    out = RandContrastiveViewsd(keys=("image", "copy"), view_size=20).set_random_state(5)(
        {"image": image, "copy": image.clone(), "other": 1})
    assert torch.equal(out["image"], out["copy"]) and out["other"] == 1
    array = RandContrastiveViews(view_size=20).set_random_state(5)
    assert torch.equal(out["image"], array(image))
    assert RandContrastiveViewsD is RandContrastiveViewsd is RandContrastiveViewsDict
