import pytest
import torch
from ignite.engine import Events
from monai.engines import SupervisedTrainer

from monai_ssl import EncoderFreezeHandler, encoder_param_groups
from monai_ssl.networks import get_adapter
from tests.helpers import small_unet


def segmentation_trainer(network, epochs, handlers):
    generator = torch.Generator().manual_seed(0)
    data = [{"image": torch.rand(1, 16, 16, 16, generator=generator),
             "label": (torch.rand(1, 16, 16, 16, generator=generator) > 0.5).long()} for _ in range(2)]
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    return SupervisedTrainer("cpu", epochs, loader, network, torch.optim.Adam(network.parameters(), 1e-2),
                             torch.nn.CrossEntropyLoss(), train_handlers=handlers,
                             prepare_batch=lambda b, device, nb, **kw: (b["image"], b["label"][:, 0]))


def test_encoder_is_frozen_during_warm_up_then_trained():
    network = small_unet()
    adapter = get_adapter(network)
    snapshots = [{k: v.clone() for k, v in network.state_dict().items()}]
    trainer = segmentation_trainer(network, 3, [EncoderFreezeHandler(network, freeze_epochs=2)])
    trainer.add_event_handler(Events.EPOCH_COMPLETED,
                              lambda e: snapshots.append({k: v.clone() for k, v in network.state_dict().items()}))
    trainer.run()

    def changed(a, b, encoder):
        return any(not torch.equal(a[k], b[k]) for k in a if adapter.is_encoder_key(k) == encoder)

    for epoch in (1, 2):
        assert not changed(snapshots[epoch - 1], snapshots[epoch], encoder=True)
        assert changed(snapshots[epoch - 1], snapshots[epoch], encoder=False)
    assert changed(snapshots[2], snapshots[3], encoder=True)
    assert all(p.requires_grad for p in network.parameters())


def test_freeze_epochs_validation_and_zero():
    with pytest.raises(ValueError):
        EncoderFreezeHandler(small_unet(), -1)
    network = small_unet()
    before = {k: v.clone() for k, v in network.state_dict().items()}
    segmentation_trainer(network, 1, [EncoderFreezeHandler(network, 0)]).run()
    adapter = get_adapter(network)
    assert any(not torch.equal(v, before[k]) for k, v in network.state_dict().items() if adapter.is_encoder_key(k))


def test_encoder_param_groups_split_learning_rates():
    network = small_unet()
    groups = encoder_param_groups(network, lr=1e-3, encoder_lr=1e-4)
    assert [g["lr"] for g in groups] == [1e-4, 1e-3]
    adapter = get_adapter(network)
    named = dict(network.named_parameters())
    # each parameter in the group of its side of the encoder boundary, exactly once
    assert [id(p) for p in groups[0]["params"]] == [id(p) for k, p in named.items() if adapter.is_encoder_key(k)]
    assert [id(p) for p in groups[1]["params"]] == [id(p) for k, p in named.items() if not adapter.is_encoder_key(k)]
    optimizer = torch.optim.Adam(groups)
    assert [group["lr"] for group in optimizer.param_groups] == [1e-4, 1e-3]
