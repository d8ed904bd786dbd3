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


def test_geometry_and_band_are_written_for_the_local_and_domain_losses():
    image = torch.rand(1, 32, 32, 32, generator=torch.Generator().manual_seed(0))
    transform = RandContrastiveViewsd(keys="image", view_size=16, partitions=4, geometry_key="geometry",
                                      partition_key="band").set_random_state(1)
    out = transform({"image": image})
    assert out["geometry"].shape == (2, 4, 4) and torch.equal(out["geometry"], transform.views.view_to_source)
    assert out["band"].dtype == torch.long and int(out["band"]) == transform.views.partition
    assert "geometry" not in RandContrastiveViewsd(keys="image", view_size=16)({"image": image})
