"""MeanTeacher: the loss gains exactly the weighted consistency, the teacher is the exact moving average of the
student, the ramp-up follows its formula, the noise is seeded, and what cannot work is refused."""

import math

import pytest
import torch
from ignite.engine import Events
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys as Keys
from torch import nn

from monai_ssl import MeanTeacher


def tiny_network(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.InstanceNorm3d(4), nn.ReLU(), nn.Conv3d(4, 3, 1))


def labelled_batches(count: int = 4) -> list[dict]:
    generator = torch.Generator().manual_seed(1)
    return [{"image": torch.rand(2, 1, 8, 8, 8, generator=generator),
             "label": torch.randint(0, 3, (2, 1, 8, 8, 8), generator=generator)} for _ in range(count)]


def unlabelled_batches(count: int = 2) -> list[dict]:
    generator = torch.Generator().manual_seed(2)
    return [{"image": torch.rand(2, 1, 8, 8, 8, generator=generator)} for _ in range(count)]


def trainer_with(teacher: MeanTeacher | None, network: nn.Module, epochs: int = 1) -> SupervisedTrainer:
    loss = nn.CrossEntropyLoss()
    trainer = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=epochs, train_data_loader=labelled_batches(), network=network,
        optimizer=torch.optim.SGD(network.parameters(), lr=0.1), decollate=False,
        loss_function=lambda prediction, label: loss(prediction, label[:, 0].long()))
    if teacher is not None:
        teacher.attach(trainer)
    return trainer


def test_the_loss_gains_the_weighted_consistency_and_the_teacher_averages_the_student():
    network = tiny_network()
    handler = MeanTeacher(unlabelled_batches(), network, weight=2.0, rampup=0.0, ema_decay=0.9, noise_std=0.1)
    trainer = trainer_with(None, network)
    supervised, teachers = [], []
    # registered before the handler's, so it sees the supervised loss alone
    trainer.add_event_handler(IterationEvents.LOSS_COMPLETED,
                              lambda e: supervised.append(float(e.state.output[Keys.LOSS])))
    handler.attach(trainer)
    before = {}
    trainer.add_event_handler(IterationEvents.FORWARD_COMPLETED, lambda e: before.update(
        teacher=[p.clone() for p in handler.teacher.parameters()]))
    trainer.add_event_handler(IterationEvents.LOSS_COMPLETED, lambda e: teachers.append(
        (float(e.state.output[Keys.LOSS]), float(e.state.output["consistency"]))))

    def check_average(engine):
        decay = min(1 - 1 / (engine.state.iteration + 1), 0.9)
        for old, new, student in zip(before["teacher"], handler.teacher.parameters(), network.parameters()):
            assert torch.allclose(new, decay * old + (1 - decay) * student)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, check_average)
    initial = [p.clone() for p in network.parameters()]
    trainer.run()
    assert trainer.state.iteration == 4 and len(supervised) == len(teachers) == 4
    for alone, (total, consistency) in zip(supervised, teachers):
        assert consistency > 0 and total == pytest.approx(alone + 2.0 * consistency, rel=1e-6)
    assert not any(p.requires_grad for p in handler.teacher.parameters())
    # the teacher lags the student wherever the student moved; a conv bias before instance norm gets only
    # rounding noise for a gradient, which the average may round back to the student's value
    moved = [(t, s) for t, s, s0 in zip(handler.teacher.parameters(), network.parameters(), initial)
             if (s - s0).abs().max() > 1e-4]
    assert moved and not any(torch.equal(t, s) for t, s in moved)


def test_the_weight_ramps_up_as_exp_minus_five_one_minus_t_squared():
    network = tiny_network()
    handler = MeanTeacher(unlabelled_batches(), network, weight=0.5, rampup=0.5)
    trainer_with(handler, network, epochs=2).run()  # 8 iterations: a 4-iteration ramp
    assert handler.consistency_weight(0) == pytest.approx(0.5 * math.exp(-5))
    assert handler.consistency_weight(2) == pytest.approx(0.5 * math.exp(-5 * 0.25))
    assert handler.consistency_weight(4) == handler.consistency_weight(8) == 0.5


def test_runs_repeat_exactly_with_the_same_seed():
    results = []
    for _ in range(2):
        network = tiny_network()
        handler = MeanTeacher(unlabelled_batches(), network, seed=3)
        trainer_with(handler, network).run()
        results.append([p.clone() for p in handler.teacher.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*results))


def test_without_unlabelled_batches_the_run_says_what_to_give():
    network = tiny_network()
    with pytest.raises(ValueError, match="--unlabelled_datalist"):
        trainer_with(MeanTeacher([], network), network).run()


@pytest.mark.parametrize("kwargs, message", [({"weight": -1.0}, "weight"), ({"rampup": 1.5}, "rampup"),
                                             ({"ema_decay": 1.0}, "ema_decay"), ({"noise_std": -0.1}, "noise_std")])
def test_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MeanTeacher([], tiny_network(), **kwargs)


def test_distributed_data_parallel_is_refused_with_the_fix(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        network = nn.parallel.DistributedDataParallel(tiny_network())
        with pytest.raises(ValueError, match="without multi_gpu_train.json"):
            MeanTeacher(unlabelled_batches(), network).attach(trainer_with(None, network))
    finally:
        dist.destroy_process_group()
