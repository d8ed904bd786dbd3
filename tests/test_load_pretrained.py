import logging

import pytest
import torch

from monai_ssl import PretextModel, load_pretrained, save_checkpoint
from monai_ssl.transfer import adapt_input_channels
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


def test_single_channel_encoder_seeds_a_two_channel_network(pretrained_path, caplog):
    source = torch.load(pretrained_path, weights_only=True)["model"]
    network = small_unet(seed=2, in_channels=2)
    with caplog.at_level(logging.INFO):
        report = load_pretrained(network, pretrained_path)
    first = "model.0.conv.unit0.conv.weight"
    assert set(report.adapted) == {first, "model.0.residual.weight"}
    assert report.adapted[first] == "input channels adapted: (8, 1, 3, 3, 3) in the checkpoint, (8, 2, 3, 3, 3) here"
    weight = network.state_dict()[first]
    torch.testing.assert_close(weight, source[first].expand(-1, 2, -1, -1, -1) / 2, rtol=0, atol=0)
    # the first layer answers FLAIR = T1c = x exactly as the pretrained layer answered x
    x = torch.randn(1, 1, 8, 8, 8)
    torch.testing.assert_close(torch.nn.functional.conv3d(x.expand(-1, 2, -1, -1, -1), weight),
                               torch.nn.functional.conv3d(x, source[first]))
    assert "2 of them with input channels adapted" in report.summary() and "adapted the input layer" in caplog.text
    assert all(adapter_key in report.copied for adapter_key in report.adapted)


def test_without_adaptation_a_channel_mismatch_is_a_named_warning(pretrained_path, caplog):
    network = small_unet(seed=2, in_channels=2)
    initial = network.state_dict()["model.0.conv.unit0.conv.weight"].clone()
    with caplog.at_level(logging.WARNING):
        report = load_pretrained(network, pretrained_path, adapt_channels=False)
    assert not report.adapted
    assert report.skipped["model.0.conv.unit0.conv.weight"].startswith("shape mismatch")
    assert torch.equal(network.state_dict()["model.0.conv.unit0.conv.weight"], initial)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and "model.0.conv.unit0.conv.weight" in warnings[0].getMessage()


def test_adapt_input_channels_rule():
    weight = torch.arange(2 * 3 * 1, dtype=torch.float32).reshape(2, 3, 1)
    adapted = adapt_input_channels(weight, 2)
    torch.testing.assert_close(adapted, weight.sum(1, keepdim=True).expand(-1, 2, -1) / 2)
    with pytest.raises(ValueError, match="convolution weight"):
        adapt_input_channels(torch.ones(2, 3), 2)


def test_the_transfer_follows_the_pretraining_tasks_when_not_given(tmp_path, caplog):
    """encoder_only=None: the whole network after tasks that all train the decoder (restoration, colorization),
    the encoder after any other mix, and the encoder when the tasks cannot be known."""
    import logging

    from monai_ssl import PretextModel
    from monai_ssl.checkpoint import save_checkpoint
    from monai_ssl.networks import get_adapter
    from monai_ssl.transfer import whole_network_transfer

    def checkpoint_of(tasks):
        model = PretextModel(small_unet(seed=1), tasks)
        return {"model": model.network.state_dict(), "config": model.config()}

    assert whole_network_transfer(checkpoint_of(["restoration", "colorization"]))
    assert not whole_network_transfer(checkpoint_of(["restoration", "rotation"]))
    plain = checkpoint_of(["restoration"])
    with caplog.at_level(logging.INFO):
        assert not whole_network_transfer({"model": plain["model"]})  # a plain state_dict alone
    assert "the pretraining tasks are unknown" in caplog.text
    # a plain model.pt with its training state beside it, as the pretraining bundle writes them
    save_checkpoint(plain["model"], str(tmp_path / "model.pt"))
    save_checkpoint(plain, str(tmp_path / "pretext_checkpoint.pt"))
    network = small_unet(seed=2)
    report = load_pretrained(network, str(tmp_path / "model.pt"), encoder_only=None)
    adapter = get_adapter(network)
    assert any(not adapter.is_encoder_key(k) for k in report.copied)  # the decoder came too
