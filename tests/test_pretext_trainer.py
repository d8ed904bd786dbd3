import os

import torch
from ignite.engine import Events
from monai.data import DataLoader, Dataset
from monai.handlers import LrScheduleHandler
from monai.networks.nets import UNet

from monai_ssl import PretextCheckpointLoader, PretextCheckpointSaver, PretextModel, PretextTrainer
from monai_ssl.checkpoint import load_checkpoint
from tests.helpers import SMALL_TASKS, UNET_ARGS, phantom_samples, small_unet


def make_trainer(save_dir, max_epochs, resume=False):
    model = PretextModel(small_unet(), SMALL_TASKS)
    loader = DataLoader(Dataset(phantom_samples(4), transform=model.transform()), batch_size=2)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    # the scheduler steps before the checkpoint is written, so a resumed run starts at the right rate
    handlers = [LrScheduleHandler(scheduler, print_lr=False),
                PretextCheckpointSaver(str(save_dir), model, optimizer, scheduler, save_interval=1, keep_last=2)]
    if resume:
        handlers.insert(0, PretextCheckpointLoader(str(save_dir), model, optimizer, scheduler))
    trainer = PretextTrainer("cpu", max_epochs, loader, model, optimizer, train_handlers=handlers)
    return trainer, model, optimizer


def test_training_writes_checkpoints_in_the_documented_format(tmp_path):
    trainer, model, _ = make_trainer(tmp_path, max_epochs=3)
    trainer.run()
    assert trainer.state.iteration == 6
    assert sorted(os.listdir(tmp_path)) == ["checkpoint_iter00000004.pt", "checkpoint_iter00000006.pt", "model.pt",
                                            "pretext_checkpoint.pt"]
    # model.pt: the network's plain state_dict (Model Zoo layout); the training state is pretext_checkpoint.pt
    weights = torch.load(tmp_path / "model.pt", weights_only=True)
    assert weights.keys() == model.network.state_dict().keys()
    checkpoint = load_checkpoint(str(tmp_path / "pretext_checkpoint.pt"))
    assert set(checkpoint) >= {"model", "heads", "config", "optimizer", "scheduler", "trainer"}
    assert checkpoint["trainer"] == {"epoch": 3, "iteration": 6}
    assert [t["name"] for t in checkpoint["config"]["tasks"]] == [t["name"] for t in SMALL_TASKS]
    # MONAI's own key names: the same architecture loads it strictly, without the pretext model
    fresh = UNet(**UNET_ARGS)
    fresh.load_state_dict(checkpoint["model"])
    assert all(torch.equal(v, model.network.state_dict()[k]) for k, v in fresh.state_dict().items())
    assert set(checkpoint["heads"]) == set(model.heads.state_dict())
    assert "task_losses" in trainer.state.output and "rotation" in trainer.state.output["task_accuracy"]


def test_resume_continues_the_iteration_count_and_optimizer_state(tmp_path):
    first, _, _ = make_trainer(tmp_path, max_epochs=2)
    first.run()
    saved = load_checkpoint(str(tmp_path / "checkpoint_iter00000004.pt"))

    resumed, model, optimizer = make_trainer(tmp_path, max_epochs=3, resume=True)
    seen = []
    resumed.add_event_handler(Events.ITERATION_STARTED, lambda engine: seen.append(engine.state.iteration))
    loaded_at_start = {}

    def capture(engine):
        loaded_at_start["heads"] = {k: v.clone() for k, v in model.heads.state_dict().items()}
        loaded_at_start["lr"] = optimizer.param_groups[0]["lr"]

    resumed.add_event_handler(Events.STARTED, capture)
    resumed.run()
    assert seen == [5, 6]  # iterations 1..4 are not trained again
    assert all(torch.equal(v, saved["heads"][k]) for k, v in loaded_at_start["heads"].items())
    assert loaded_at_start["lr"] == saved["optimizer"]["param_groups"][0]["lr"] == 1e-3 * 0.25
    adam_steps = {int(s["step"]) for s in optimizer.state_dict()["state"].values()}
    assert adam_steps == {6}


def test_resuming_a_finished_run_trains_nothing(tmp_path):
    make_trainer(tmp_path, max_epochs=2)[0].run()
    again, _, _ = make_trainer(tmp_path, max_epochs=2, resume=True)
    iterations = []
    again.add_event_handler(Events.ITERATION_STARTED, lambda engine: iterations.append(engine.state.iteration))
    again.run()
    assert iterations == []
