import logging

import pytest
import torch
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents

from monai_ssl.engine import NonFiniteGradientGuard


def make_trainer(batches, max_consecutive=20, **guard_args):
    torch.manual_seed(0)
    network = torch.nn.Linear(3, 1)
    trainer = SupervisedTrainer(
        device="cpu", max_epochs=1, train_data_loader=batches, network=network,
        optimizer=torch.optim.AdamW(network.parameters(), lr=0.1), loss_function=torch.nn.MSELoss(),
        prepare_batch=lambda batch, device, non_blocking, **kwargs: (batch[0], batch[1]),
        train_handlers=[NonFiniteGradientGuard(max_consecutive, **guard_args)],
    )
    weights = []
    trainer.add_event_handler(IterationEvents.MODEL_COMPLETED, lambda e: weights.append(network.weight.detach().clone()))
    return trainer, network, weights


def batch(finite=True):
    inputs = torch.ones(2, 3)
    if not finite:
        inputs[0, 0] = float("nan")
    return inputs, torch.zeros(2, 1)


def test_a_non_finite_iteration_leaves_the_weights_as_they_were_and_is_logged(caplog):
    trainer, network, weights = make_trainer([batch(), batch(), batch(False), batch()])
    with caplog.at_level(logging.WARNING, logger="monai_ssl.engine"):
        trainer.run()
    assert torch.equal(weights[2], weights[1])  # iteration 3 skipped its step
    assert not torch.equal(weights[3], weights[2])  # and training went on
    assert torch.isfinite(network.weight).all() and torch.isfinite(network.bias).all()
    assert trainer.state.skipped_steps == 1
    assert "iteration 3: non-finite gradients" in caplog.text and "1 skipped so far" in caplog.text


def test_finite_runs_are_untouched():
    guarded, _, guarded_weights = make_trainer([batch()] * 3)
    guarded.run()
    torch.manual_seed(0)
    network = torch.nn.Linear(3, 1)
    optimizer = torch.optim.AdamW(network.parameters(), lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(network(batch()[0]), batch()[1]).backward()
        optimizer.step()
    assert torch.equal(guarded_weights[-1], network.weight.detach())
    assert guarded.state.skipped_steps == 0


def test_too_many_in_a_row_stop_the_run_with_the_fix():
    trainer, network, _ = make_trainer([batch(False)] * 5, max_consecutive=3)
    with pytest.raises(RuntimeError, match="3 iterations in a row.*--bf16_autocast false"):
        trainer.run()
    assert trainer.state.iteration == 3
    assert torch.isfinite(network.weight).all()


def test_a_share_of_skipped_steps_stops_the_run_with_the_fix():
    """Scattered bad steps never make max_consecutive, but a run that skips one step in five must not end as a
    success (a reported run skipped 26 of 180 steps and exited 0)."""
    scattered = ([batch()] * 4 + [batch(False)]) * 10
    trainer, network, _ = make_trainer(scattered, max_skipped_fraction=0.05, min_skipped=3)
    with pytest.raises(RuntimeError, match=r"3 of 15 iterations had non-finite gradients, more than 5%.*bf16_autocast"):
        trainer.run()
    assert trainer.state.iteration == 15 and torch.isfinite(network.weight).all()
    rare = [batch()] * 20 + [batch(False)] + [batch()] * 20  # one bad batch in 41: skipped, the run goes on
    trainer, _, _ = make_trainer(rare, max_skipped_fraction=0.05, min_skipped=1)
    trainer.run()
    assert trainer.state.skipped_steps == 1 and trainer.state.iteration == 41


@pytest.mark.parametrize("args, message", [((0,), "max_consecutive"), ((20, 1.0), "max_skipped_fraction"),
                                           ((20, 0.02, 0), "min_skipped")])
def test_bad_argument(args, message):
    with pytest.raises(ValueError, match=message):
        NonFiniteGradientGuard(*args)
