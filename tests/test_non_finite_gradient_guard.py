import logging

import pytest
import torch
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents

from monai_ssl.engine import NonFiniteGradientGuard


def make_trainer(batches, max_consecutive=20):
    torch.manual_seed(0)
    network = torch.nn.Linear(3, 1)
    trainer = SupervisedTrainer(
        device="cpu", max_epochs=1, train_data_loader=batches, network=network,
        optimizer=torch.optim.AdamW(network.parameters(), lr=0.1), loss_function=torch.nn.MSELoss(),
        prepare_batch=lambda batch, device, non_blocking, **kwargs: (batch[0], batch[1]),
        train_handlers=[NonFiniteGradientGuard(max_consecutive)],
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


def test_bad_argument():
    with pytest.raises(ValueError, match="max_consecutive"):
        NonFiniteGradientGuard(0)
