import pytest
import torch
from monai.networks.nets import UNet

from monai_ssl.bundle import place_network
from monai_ssl.networks.heads import ClassificationHead


@pytest.mark.parametrize("spatial_dims, layout", [(3, torch.channels_last_3d), (2, torch.channels_last)])
def test_channels_last_stores_convolution_kernels_channels_last_and_leaves_the_rest(spatial_dims, layout):
    torch.manual_seed(0)
    network = torch.nn.Sequential(
        UNet(spatial_dims, 2, 3, (4, 8, 16), (2, 2), num_res_units=1), torch.nn.Flatten(), torch.nn.LazyLinear(2)
    )
    network(torch.rand(1, 2, *([16] * spatial_dims)))  # materialise the lazy layer
    parameters = dict(network.named_parameters())
    placed = place_network(network, "cpu", channels_last=True)
    assert placed is network
    for name, parameter in network.named_parameters():
        assert parameter is parameters[name]  # the optimizer's references stay valid
        if parameter.dim() == spatial_dims + 2:  # a convolution kernel
            assert parameter.is_contiguous(memory_format=layout), name
            if parameter.shape[1] > 1 and max(parameter.shape[2:]) > 1:  # else both layouts are the same strides
                assert not parameter.is_contiguous(), name
        else:
            assert parameter.is_contiguous(), name


def test_channels_last_gives_the_same_network_outputs_and_gradients():
    torch.manual_seed(0)
    reference = UNet(3, 1, 4, (8, 16, 32), (2, 2), num_res_units=2)
    placed = UNet(3, 1, 4, (8, 16, 32), (2, 2), num_res_units=2)
    placed.load_state_dict(reference.state_dict())
    place_network(placed, "cpu", channels_last=True)
    x = torch.rand(2, 1, 24, 24, 24)
    out_reference, out_placed = reference(x), placed(x)
    assert out_placed.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(out_placed, out_reference, rtol=1e-4, atol=1e-5)
    out_reference.square().mean().backward()
    out_placed.square().mean().backward()
    for (name, a), (_, b) in zip(reference.named_parameters(), placed.named_parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-6, msg=name)


def test_without_channels_last_the_network_is_only_moved():
    network = ClassificationHead(8, 3)
    before = {k: v.clone() for k, v in network.state_dict().items()}
    assert place_network(network, torch.device("cpu"), channels_last=False) is network
    for key, value in network.state_dict().items():
        assert torch.equal(value, before[key]) and value.is_contiguous()
