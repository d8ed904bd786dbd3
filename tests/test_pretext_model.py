import pytest
import torch

from monai_ssl import PretextModel
from monai_ssl.networks import get_adapter
from tests.helpers import SMALL_TASKS, parameters_with_gradient, pretext_batch, small_basic_unet, small_unet


@pytest.mark.parametrize("tasks", [[t] for t in SMALL_TASKS] + [SMALL_TASKS], ids=lambda t: "+".join(x["name"] for x in t))
def test_forward_backward_on_cpu(tasks):
    model = PretextModel(small_unet(), tasks)
    batch = pretext_batch(model)
    predictions = model(batch)
    assert set(predictions) == {t["name"] for t in tasks}
    loss = model.compute_loss(predictions, batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.heads.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in get_adapter(model.network).encoder_parameters())


def test_prediction_shapes():
    model = PretextModel(small_unet(), SMALL_TASKS)
    predictions = model(pretext_batch(model))
    assert predictions["jigsaw"].shape == (2, 10)
    assert predictions["rotation"].shape == (2, 10)
    assert predictions["relative_position"].shape == (2, 26)
    assert predictions["colorization"].shape == (2, 1, 32, 32, 32)


def test_colorization_bins_predict_a_class_per_voxel_and_channel():
    model = PretextModel(small_unet(), [{"name": "colorization", "args": {"bins": 8}}])
    batch = pretext_batch(model)
    prediction = model(batch)["colorization"]
    assert prediction.shape == (2, 8, 1, 32, 32, 32)
    assert batch["colorization_target"].dtype == torch.long
    assert torch.isfinite(model.compute_loss({"colorization": prediction}, batch))


def test_classification_tasks_train_the_encoder_only_and_colorization_the_decoder_too():
    for tasks, decoder_trained in (([{"name": "rotation"}], False), ([{"name": "colorization"}], True)):
        model = PretextModel(small_unet(), tasks)
        batch = pretext_batch(model)
        model.compute_loss(model(batch), batch).backward()
        decoder_grads = [p.grad for p in get_adapter(model.network).decoder_parameters()]
        assert all(g is not None for g in decoder_grads) == decoder_trained
        assert any(g is not None for g in decoder_grads) == decoder_trained


def test_the_network_itself_is_trained_not_a_copy():
    network = small_unet()
    model = PretextModel(network, [{"name": "rotation"}])
    assert model.network is network
    before = {k: v.clone() for k, v in network.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    batch = pretext_batch(model)
    model.compute_loss(model(batch), batch).backward()
    optimizer.step()
    changed = [k for k, v in network.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and all(get_adapter(network).is_encoder_key(k) for k in changed)
    assert set(model.state_dict()) == {f"network.{k}" for k in network.state_dict()} | {
        f"heads.{k}" for k in model.heads.state_dict()}


def test_loss_weights_scale_each_task():
    model = PretextModel(small_unet(), SMALL_TASKS[:2], loss_weights={"jigsaw": 0.0, "rotation": 2.0})
    batch = pretext_batch(model)
    total = model.compute_loss(model(batch), batch)
    assert float(total) == pytest.approx(2.0 * model.loss_function.last_losses["rotation"], rel=1e-5)


def test_basic_unet():
    """Another MONAI network through its adapter: rotation trains the encoder only, colorization the whole network."""
    network = small_basic_unet()
    adapter = get_adapter(network)
    for tasks, trains_decoder in (([{"name": "rotation"}], False), ([{"name": "colorization"}], True)):
        model = PretextModel(network, tasks)
        model.zero_grad(set_to_none=True)
        batch = pretext_batch(model, size=48)  # four 2x levels: 48 keeps 3 voxels at the bottom
        predictions = model(batch)
        loss = model.compute_loss(predictions, batch)
        assert torch.isfinite(loss)
        loss.backward()
        with_grad = parameters_with_gradient(network)
        encoder = {k for k, _ in network.named_parameters() if adapter.is_encoder_key(k)}
        assert encoder <= with_grad
        assert bool(with_grad - encoder) == trains_decoder
    rotation = PretextModel(network, [{"name": "rotation"}])
    assert rotation(pretext_batch(rotation, size=48))["rotation"].shape == (2, rotation.tasks["rotation"].num_classes)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"tasks": []}, "at least one"), ({"tasks": ["rotation", "rotation"]}, "once"),
     ({"tasks": ["rotation"], "loss_weights": {"jigsaw": 1.0}}, "not trained"),
     ({"tasks": ["rotation"], "loss_weights": {"rotation": -1.0}}, ">= 0"),
     ({"tasks": ["cutout"]}, "unknown pretext task"), ({"tasks": [3]}, "a task is")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PretextModel(small_unet(), **kwargs)


def test_config_records_network_and_tasks():
    config = PretextModel(small_unet(), SMALL_TASKS).config()
    assert config["network"]["class"] == "monai.networks.nets.unet.UNet"
    assert config["network"]["args"]["channels"] == [8, 16, 32]
    assert [t["name"] for t in config["tasks"]] == ["jigsaw", "rotation", "colorization", "relative_position"]
    assert config["tasks"][0]["args"]["num_permutations"] == 10
