import logging

import pytest
import torch

from monai_ssl import PretextModel, load_pretrained, save_checkpoint
from monai_ssl.networks import get_adapter
from tests.helpers import SMALL_TASKS, small_basic_unet, small_unet


@pytest.fixture()
def pretrained_path(tmp_path):
    model = PretextModel(small_unet(seed=1), SMALL_TASKS)
    path = str(tmp_path / "model.pt")
    save_checkpoint({"model": model.network.state_dict(), "heads": model.heads.state_dict(),
                     "config": model.config()}, path)
    return path


def test_encoder_is_bit_identical_and_decoder_untouched(pretrained_path, caplog):
    source = torch.load(pretrained_path, weights_only=True)["model"]
    network = small_unet(seed=2)
    initial = {k: v.clone() for k, v in network.state_dict().items()}
    adapter = get_adapter(network)
    with caplog.at_level(logging.INFO):
        report = load_pretrained(network, pretrained_path)
    for key, value in network.state_dict().items():
        if adapter.is_encoder_key(key):
            assert torch.equal(value, source[key]) and key in report.copied
        else:
            assert torch.equal(value, initial[key]) and report.skipped[key].startswith("decoder")
    assert "load_pretrained: loaded" in caplog.text and report.summary() in caplog.text
    assert report.reasons() == {"decoder, excluded by encoder_only": len(report.skipped)}


def test_whole_network_with_a_different_final_layer(pretrained_path):
    network = small_unet(seed=2, out_channels=4)
    report = load_pretrained(network, pretrained_path, encoder_only=False)
    mismatched = {k: r for k, r in report.skipped.items() if r.startswith("shape mismatch")}
    assert mismatched and all(k.startswith("model.2.") for k in mismatched)
    assert mismatched["model.2.1.conv.unit0.conv.weight"] == (
        "shape mismatch: (2, 2, 3, 3, 3) in the checkpoint, (4, 4, 3, 3, 3) here")
    source = torch.load(pretrained_path, weights_only=True)["model"]
    assert all(torch.equal(network.state_dict()[k], source[k]) for k in report.copied)
    assert len(report.copied) + len(mismatched) == len(source)


def test_another_architecture_raises_a_clear_error(tmp_path):
    path = str(tmp_path / "basic.pt")
    save_checkpoint({"model": small_basic_unet().state_dict(),
                     "config": {"network": {"class": "monai.networks.nets.basic_unet.BasicUNet"}}}, path)
    with pytest.raises(ValueError, match="does not fit this UNet: only 0 of .* saved from .*BasicUNet"):
        load_pretrained(small_unet(), path)


def test_plain_state_dict_and_extra_keys(pretrained_path):
    state = small_unet(seed=3).state_dict()
    state["extra.weight"] = torch.ones(1)
    report = load_pretrained(small_unet(), state, encoder_only=False)
    assert report.skipped == {"extra.weight": "missing in the network"}
    assert not report.not_in_checkpoint
