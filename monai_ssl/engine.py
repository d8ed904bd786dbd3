"""Training of pretext models through MONAI's ``SupervisedTrainer`` and Ignite handlers."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Hashable, Mapping
from typing import Any, TextIO

import torch
from ignite.contrib.handlers import ProgressBar
from ignite.engine import Engine, Events
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys as Keys

from monai_ssl.checkpoint import (
    CHECKPOINT_PATTERN,
    PRETRAINING_STATE_FILENAME,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from monai_ssl.version import __version__
from monai_ssl.pretext_model import PretextModel

__all__ = [
    "prepare_pretext_batch",
    "PretextTrainer",
    "PretextCheckpointSaver",
    "PretextCheckpointLoader",
    "PretextProgressBar",
]

logger = logging.getLogger(__name__)


def prepare_pretext_batch(
    batchdata: Mapping[Hashable, Any], device: str | torch.device | None = None, non_blocking: bool = False, **kwargs
) -> tuple[dict, dict]:
    """Move every tensor of a collated pretext batch to ``device``; the dict serves as inputs and targets."""
    batch = {
        k: v.to(device=device, non_blocking=non_blocking, **kwargs) if isinstance(v, torch.Tensor) else v
        for k, v in batchdata.items()
    }
    return batch, batch


class PretextTrainer(SupervisedTrainer):
    """MONAI ``SupervisedTrainer`` for a :py:class:`~monai_ssl.PretextModel`.

    Each iteration runs every task on the batch, sums the weighted losses and steps the optimizer, through
    ``SupervisedTrainer``'s own iteration. ``engine.state.output`` then also holds ``"task_losses"`` and
    ``"task_accuracy"`` (classification tasks) for the stats handlers.

    Args:
        device: device to train on.
        max_epochs: number of epochs.
        train_data_loader: loader of batches made by ``model.transform()``.
        model: the pretext model.
        optimizer: the optimizer of ``model.parameters()``.
        network: the module to call, if not ``model`` itself (e.g. ``DistributedDataParallel(model)``).
        kwargs: other ``SupervisedTrainer`` arguments (``epoch_length``, ``train_handlers``, ``amp``, ...).
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader,
        model: PretextModel,
        optimizer: torch.optim.Optimizer,
        network: torch.nn.Module | None = None,
        **kwargs,
    ) -> None:
        kwargs.setdefault("decollate", False)  # outputs are per-task dicts, not per-sample images
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            train_data_loader=train_data_loader,
            network=model if network is None else network,
            optimizer=optimizer,
            loss_function=model.compute_loss,
            prepare_batch=prepare_pretext_batch,
            **kwargs,
        )
        self.pretext_model = model
        self.add_event_handler(IterationEvents.LOSS_COMPLETED, self._record_task_metrics)

    def _record_task_metrics(self, engine: Engine) -> None:
        output = engine.state.output
        output["task_losses"] = dict(self.pretext_model.loss_function.last_losses)
        with torch.no_grad():
            output["task_accuracy"] = self.pretext_model.accuracies(output[Keys.PRED], output[Keys.LABEL])


def _checkpoint_state(model: PretextModel, optimizer, lr_scheduler, engine: Engine) -> dict:
    return {
        "model": model.network.state_dict(),
        "heads": model.heads.state_dict(),
        "config": model.config(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": lr_scheduler.state_dict() if lr_scheduler is not None else None,
        "trainer": {"epoch": engine.state.epoch, "iteration": engine.state.iteration},
        "monai_ssl_version": __version__,
    }


class PretextCheckpointSaver:
    """Ignite handler writing monai-ssl checkpoints (see :py:mod:`monai_ssl.checkpoint`), atomically.

    Periodic checkpoints ``checkpoint_iter<N>.pt`` go to ``save_dir`` every ``save_interval`` epochs (or every
    ``save_interval_iterations`` iterations); the last ``keep_last`` are kept. When training completes, two files
    are written the way Model Zoo bundles ship weights: ``save_dir/final_filename`` (``model.pt``), the network's
    plain ``state_dict`` (what ``network_def`` loads, with no ``key_in_ckpt``), and ``save_dir/state_filename``
    (``pretext_checkpoint.pt``), the full training state (heads, optimizer, scheduler, trainer counters) that
    :py:class:`PretextCheckpointLoader` resumes from.

    Args:
        save_dir: folder of the checkpoints.
        model: the pretext model.
        optimizer: its optimizer, saved for resuming.
        lr_scheduler: an optional scheduler, saved for resuming.
        save_interval: epochs between periodic checkpoints; 0 disables them.
        save_interval_iterations: iterations between periodic checkpoints, instead of epochs.
        keep_last: number of periodic checkpoints kept.
        final_filename: file name of the final network weights.
        state_filename: file name of the final training state.
    """

    def __init__(
        self,
        save_dir: str,
        model: PretextModel,
        optimizer: torch.optim.Optimizer | None = None,
        lr_scheduler=None,
        save_interval: int = 1,
        save_interval_iterations: int | None = None,
        keep_last: int = 2,
        final_filename: str = "model.pt",
        state_filename: str = PRETRAINING_STATE_FILENAME,
    ) -> None:
        if save_interval < 0 or (save_interval_iterations is not None and save_interval_iterations < 1):
            raise ValueError("save_interval must be >= 0 and save_interval_iterations >= 1 (or None).")
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}.")
        self.save_dir = save_dir
        self.model = model
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.save_interval = save_interval
        self.save_interval_iterations = save_interval_iterations
        self.keep_last = keep_last
        self.final_filename = final_filename
        self.state_filename = state_filename

    def attach(self, engine: Engine) -> None:
        if self.save_interval_iterations:
            engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.save_interval_iterations), self.save)
        elif self.save_interval:
            engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.save_interval), self.save)
        engine.add_event_handler(Events.COMPLETED, self.save_final)

    def save(self, engine: Engine) -> str:
        path = os.path.join(self.save_dir, CHECKPOINT_PATTERN.format(iteration=engine.state.iteration))
        save_checkpoint(_checkpoint_state(self.model, self.optimizer, self.lr_scheduler, engine), path)
        periodic = sorted(p for p in os.listdir(self.save_dir) if p.startswith("checkpoint_iter"))
        for old in periodic[: -self.keep_last]:
            os.remove(os.path.join(self.save_dir, old))
        logger.info("saved checkpoint %s", path)
        return path

    def save_final(self, engine: Engine) -> str:
        state = os.path.join(self.save_dir, self.state_filename)
        save_checkpoint(_checkpoint_state(self.model, self.optimizer, self.lr_scheduler, engine), state)
        path = os.path.join(self.save_dir, self.final_filename)
        save_checkpoint(self.model.network.state_dict(), path)
        logger.info("saved pretrained network %s and training state %s (epoch %d, iteration %d)", path, state,
                    engine.state.epoch, engine.state.iteration)
        return path


class PretextCheckpointLoader:
    """Ignite handler resuming a pretext run when the engine starts.

    It restores the network, heads, optimizer and scheduler, and the engine's epoch and iteration, from
    ``load_path``: a checkpoint file, or a folder, whose latest ``checkpoint_iter<N>.pt`` is used, else its final
    training state ``pretext_checkpoint.pt``. Training then continues the iteration count; nothing is retrained
    from zero. A folder with neither, or one that does not exist yet (a first run with ``resume`` on), starts
    afresh (logged); a missing checkpoint *file* is an error.

    Args:
        load_path: checkpoint file or folder.
        model: the pretext model.
        optimizer: its optimizer.
        lr_scheduler: an optional scheduler.
    """

    def __init__(self, load_path: str, model: PretextModel, optimizer=None, lr_scheduler=None) -> None:
        self.load_path = load_path
        self.model = model
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        as_folder = os.path.isdir(self.load_path) or not os.path.splitext(self.load_path)[1]
        path = self.load_path
        if as_folder:
            final_state = os.path.join(self.load_path, PRETRAINING_STATE_FILENAME)
            path = latest_checkpoint(self.load_path) or (final_state if os.path.isfile(final_state) else None)
        if path is None:
            logger.info("no checkpoint in %s: starting from scratch", self.load_path)
            return
        checkpoint = load_checkpoint(path)
        self.model.network.load_state_dict(checkpoint["model"])
        self.model.heads.load_state_dict(checkpoint["heads"])
        if self.optimizer is not None and checkpoint.get("optimizer") is not None:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
        if self.lr_scheduler is not None and checkpoint.get("scheduler") is not None:
            self.lr_scheduler.load_state_dict(checkpoint["scheduler"])
        engine.state.epoch = int(checkpoint["trainer"]["epoch"])
        engine.state.iteration = int(checkpoint["trainer"]["iteration"])
        logger.info("resumed from %s at epoch %d, iteration %d", path, engine.state.epoch, engine.state.iteration)
        if engine.state.epoch >= engine.state.max_epochs:
            logger.info("the checkpoint already reached max_epochs=%d: nothing to train", engine.state.max_epochs)
            engine.terminate()


class PretextProgressBar:
    """A console progress bar (tqdm, through Ignite) showing the total loss and each task's loss.

    It is drawn only when standard error is a terminal: redirected to a log file, a bar would fill it with
    carriage-return updates, and the ``StatsHandler`` lines already log the losses.

    Args:
        persist: keep each epoch's bar on screen after it completes.
        stream: the stream the bar is drawn on.
    """

    def __init__(self, persist: bool = True, stream: TextIO | None = None) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.bar = ProgressBar(persist=persist, file=self.stream)

    def attach(self, engine: Engine) -> None:
        if not self.stream.isatty():
            logger.debug("progress bar off: %s is not a terminal", getattr(self.stream, "name", self.stream))
            return
        self.bar.attach(engine, output_transform=self._losses)

    @staticmethod
    def _losses(output: Mapping[str, Any]) -> dict[str, float]:
        return {"loss": float(output[Keys.LOSS]), **output.get("task_losses", {})}
