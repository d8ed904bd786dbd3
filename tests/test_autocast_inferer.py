import pytest
import torch
from monai.inferers import SimpleInferer, SlidingWindowInferer
from monai.networks.nets import UNet

from monai_ssl.inferers import AutocastInferer, cpu_has_native_bf16


class DictOutput(torch.nn.Module):
    """A pretext-model-like network: a dict of per-task outputs, one of them an integer tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 2, 3, padding=1)
        self.seen_dtypes: list[torch.dtype] = []

    def forward(self, x):
        y = self.conv(x)
        self.seen_dtypes.append(y.dtype)
        return {"image": y, "logits": [y.mean(dim=(2, 3, 4))], "index": torch.arange(3)}


def unet() -> UNet:
    torch.manual_seed(0)
    return UNet(3, 1, 3, (8, 16, 32), (2, 2), num_res_units=1)


def test_forward_runs_in_bf16_and_outputs_come_back_float32():
    network = DictOutput()
    outputs = AutocastInferer(device_type="cpu", dtype="bfloat16")(torch.rand(2, 1, 8, 8, 8), network)
    assert network.seen_dtypes == [torch.bfloat16]
    assert outputs["image"].dtype == torch.float32
    assert outputs["logits"][0].dtype == torch.float32 and isinstance(outputs["logits"], list)
    assert outputs["index"].dtype == torch.int64  # integer outputs are left alone


def test_outputs_match_float32_within_bf16_precision_and_gradients_reach_float32_parameters():
    network, x = unet(), torch.rand(2, 1, 16, 16, 16)
    reference = SimpleInferer()(x, network)
    outputs = AutocastInferer()(x, network)
    assert outputs.dtype == torch.float32
    assert not torch.equal(outputs, reference)  # it really ran in reduced precision
    error = (outputs - reference).abs()
    assert error.mean() < 0.02 * reference.abs().mean() and error.max() < 0.15  # bf16 keeps 8 bits of mantissa
    outputs.square().mean().backward()
    for name, parameter in network.named_parameters():
        assert parameter.dtype == torch.float32 and parameter.grad is not None, name
        assert parameter.grad.dtype == torch.float32 and torch.isfinite(parameter.grad).all(), name


def test_disabled_runs_the_wrapped_inferer_unchanged():
    network, x = unet(), torch.rand(1, 1, 20, 20, 20)
    window = SlidingWindowInferer(roi_size=(16, 16, 16), sw_batch_size=2, overlap=0.25)
    expected = window(x, network)
    wrapped = AutocastInferer(window, enabled=False)
    assert torch.equal(wrapped(x, network), expected)
    assert AutocastInferer(window)(x, network).shape == expected.shape


@pytest.mark.parametrize("kwargs, message", [
    ({"dtype": "float64"}, "dtype must be one of"),
    ({"dtype": torch.float32}, "dtype must be torch.bfloat16 or torch.float16"),
    ({"device_type": "abacus"}, "does not support device_type 'abacus'; use 'cpu' or 'cuda'"),
])
def test_invalid_arguments_name_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AutocastInferer(**kwargs)


@pytest.mark.parametrize("flags, expected", [
    ("fpu sse avx2 avx512f avx512bw avx512_bf16 avx512_vnni", True),
    ("fpu sse avx2 amx_bf16 amx_tile", True),
    ("fpu sse avx2 avx512f avx512bw", False),
])
def test_cpu_has_native_bf16_reads_the_cpu_flags(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    assert cpu_has_native_bf16(str(cpuinfo)) is expected


def test_cpu_has_native_bf16_is_false_without_cpuinfo(tmp_path):
    assert cpu_has_native_bf16(str(tmp_path / "missing")) is False
