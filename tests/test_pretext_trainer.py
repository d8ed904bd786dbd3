import os

import torch
from ignite.engine import Events
from monai.data import DataLoader, Dataset
from monai.handlers import CheckpointLoader, LrScheduleHandler
from monai.networks.nets import UNet

from monai_ssl import AtomicCheckpointSaver, PretextModel, PretextTrainer, pretext_save_dict
from monai_ssl.checkpoint import load_checkpoint, resumable_objects, resume_checkpoint
from tests.helpers import SMALL_TASKS, UNET_ARGS, phantom_samples, small_unet


def attach_checkpoints(trainer, save_dir, save_dict, resume, **saver_args):
    """The pretraining bundle's checkpoint handlers: MONAI's loader, the training state and model.pt savers."""
    if resume and (path := resume_checkpoint(str(save_dir))):
        CheckpointLoader(path, resumable_objects(save_dict, path)).attach(trainer)
    AtomicCheckpointSaver(str(save_dir), save_dict, save_final=True, final_filename="pretext_checkpoint.pt",
                          **saver_args).attach(trainer)
    AtomicCheckpointSaver(str(save_dir), {"model": save_dict["model"]}, save_final=True,
                          final_filename="model.pt").attach(trainer)


def make_trainer(save_dir, max_epochs, resume=False):
    model = PretextModel(small_unet(), SMALL_TASKS)
    loader = DataLoader(Dataset(phantom_samples(4), transform=model.transform()), batch_size=2)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    # the scheduler steps before the checkpoint is written, so a resumed run starts at the right rate
    trainer = PretextTrainer("cpu", max_epochs, loader, model, optimizer,
                             train_handlers=[LrScheduleHandler(scheduler, print_lr=False)])
    attach_checkpoints(trainer, save_dir, pretext_save_dict(model, optimizer, trainer, scheduler), resume,
                       save_interval=1, n_saved=2)
    return trainer, model, optimizer


def test_training_writes_checkpoints_in_the_documented_format(tmp_path):
    trainer, model, _ = make_trainer(tmp_path, max_epochs=3)
    trainer.run()
    assert trainer.state.iteration == 6
    assert sorted(os.listdir(tmp_path)) == ["checkpoint_epoch=2.pt", "checkpoint_epoch=3.pt", "model.pt",
                                            "pretext_checkpoint.pt"]
    # model.pt: the network's plain state_dict (Model Zoo layout); the training state is pretext_checkpoint.pt
    weights = torch.load(tmp_path / "model.pt", weights_only=True)
    assert weights.keys() == model.network.state_dict().keys()
    checkpoint = load_checkpoint(str(tmp_path / "pretext_checkpoint.pt"))
    assert set(checkpoint) == {"model", "heads", "config", "optimizer", "scheduler", "trainer", "random_states"}
    assert checkpoint["trainer"] == {"epoch_length": 2, "iteration": 6, "max_epochs": 3}
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
    saved = load_checkpoint(str(tmp_path / "pretext_checkpoint.pt"))

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


def make_shuffled_trainer(save_dir, max_epochs, resume=False, **saver_args):
    """Four iterations per epoch over a shuffled MONAI DataLoader: random crops, labels and order."""
    from monai.utils import set_determinism

    set_determinism(seed=0)
    model = PretextModel(small_unet(), SMALL_TASKS)
    loader = DataLoader(Dataset(phantom_samples(8), transform=model.transform()), batch_size=2, shuffle=True)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    trainer = PretextTrainer("cpu", max_epochs, loader, model, optimizer)
    attach_checkpoints(trainer, save_dir, pretext_save_dict(model, optimizer, trainer), resume, **saver_args)
    labels = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED,
                              lambda engine: labels.append(engine.state.batch["rotation_label"].tolist()))
    return trainer, model, labels


def test_a_run_resumed_at_an_epoch_boundary_equals_the_uninterrupted_run(tmp_path):
    """The random streams continue: the same crops, labels and order as without the interruption, so the same
    weights, bit for bit."""
    whole, whole_model, whole_labels = make_shuffled_trainer(tmp_path / "whole", max_epochs=2)
    whole.run()
    first, _, first_labels = make_shuffled_trainer(tmp_path / "split", max_epochs=1)
    first.run()
    resumed, model, resumed_labels = make_shuffled_trainer(tmp_path / "split", max_epochs=2, resume=True)
    resumed.run()
    assert first_labels + resumed_labels == whole_labels
    assert resumed_labels != first_labels  # not a replay of the first epoch
    for key, value in whole_model.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key


def test_a_checkpoint_taken_mid_epoch_resumes_inside_that_epoch(tmp_path):
    """Saved at iteration 3 of 4 and interrupted: the resumed run trains the remaining 5 of the 8 iterations."""
    first, _, _ = make_shuffled_trainer(tmp_path, max_epochs=2, save_interval=3, epoch_level=False)
    first.add_event_handler(Events.ITERATION_COMPLETED(once=3), lambda engine: engine.terminate())
    first.run()
    assert sorted(os.listdir(tmp_path))[0] == "checkpoint_iteration=3.pt"
    os.remove(tmp_path / "pretext_checkpoint.pt")  # the interruption: only the periodic checkpoint is there
    resumed, _, labels = make_shuffled_trainer(tmp_path, max_epochs=2, resume=True, save_interval=3,
                                               epoch_level=False)
    iterations = []
    resumed.add_event_handler(Events.ITERATION_STARTED, lambda engine: iterations.append(engine.state.iteration))
    resumed.run()
    assert iterations == [4, 5, 6, 7, 8]
    assert (resumed.state.epoch, resumed.state.iteration) == (2, 8)
    assert load_checkpoint(str(tmp_path / "pretext_checkpoint.pt"))["trainer"]["iteration"] == 8


def test_after_a_distributed_resume_each_rank_draws_its_own_stream(monkeypatch):
    """Rank 0 alone saves the random states; rank 0 continues them, another rank branches off with its own seed,
    the same for the same checkpoint and rank."""
    from monai_ssl import engine as engine_module
    from monai_ssl.engine import RandomStates

    trainer, _, _ = make_shuffled_trainer("/nonexistent", max_epochs=1)
    states = RandomStates(trainer)
    saved = states.state_dict()
    draws = {}
    for rank in (0, 1, 1, 2):
        monkeypatch.setattr(engine_module.idist, "get_rank", lambda rank=rank: rank)
        states.load_state_dict(saved)
        draws.setdefault(rank, []).append((torch.rand(3).tolist(), [g.randint(1000) for g in states._generators()]))
    assert draws[1][0] == draws[1][1]  # deterministic per rank
    assert len({str(d[0]) for d in (draws[0][0], draws[1][0], draws[2][0])}) == 3
    assert len({str(d[1]) for d in (draws[0][0], draws[1][0], draws[2][0])}) == 3


def test_cuda_random_states_are_saved_and_restored(monkeypatch):
    """A resumed GPU run continues the CUDA generators too (dropout and other draws on the device)."""
    from monai_ssl.engine import RandomStates

    trainer, _, _ = make_shuffled_trainer("/nonexistent", max_epochs=1)
    device_states = [torch.tensor([1, 2], dtype=torch.uint8), torch.tensor([3, 4], dtype=torch.uint8)]
    restored = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: device_states)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: restored.__setitem__(device, state))
    saved = RandomStates(trainer).state_dict()
    assert saved["cuda"] == device_states
    RandomStates(trainer).load_state_dict(saved)
    assert restored == {0: device_states[0], 1: device_states[1]}
