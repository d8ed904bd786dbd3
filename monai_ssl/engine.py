"""Training of pretext models through MONAI's ``SupervisedTrainer`` and Ignite handlers."""

from __future__ import annotations

import logging
import os
import random
import sys
from collections.abc import Hashable, Mapping
from typing import Any, TextIO

import numpy as np
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
    "random_states",
    "restore_random_states",
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


def _random_generators(root: Any) -> list[np.random.RandomState]:
    """Every numpy ``RandomState`` reachable from ``root`` (a dataset and its transforms), in a stable order: the
    per-instance ``self.R`` of each MONAI ``Randomizable``, where every random draw of a transform comes from."""
    found: list[np.random.RandomState] = []
    seen: set[int] = set()

    def visit(obj: Any) -> None:
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, bool, torch.Tensor, np.ndarray)) or obj is None:
            return
        seen.add(id(obj))
        if isinstance(obj, np.random.RandomState):
            found.append(obj)
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                visit(item)
        elif isinstance(obj, dict):
            for item in obj.values():
                visit(item)
        elif hasattr(obj, "__dict__"):
            for item in vars(obj).values():
                visit(item)

    visit(root)
    return found


def _numpy_state(generator: np.random.RandomState) -> dict:
    name, keys, position, has_gauss, cached_gaussian = generator.get_state()
    # tensors and plain numbers only, so that the checkpoint loads with weights_only=True
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position), "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian)}


def _set_numpy_state(generator: np.random.RandomState, state: Mapping) -> None:
    generator.set_state(("MT19937", state["keys"].numpy().astype(np.uint32), state["position"], state["has_gauss"],
                         state["cached_gaussian"]))


def random_states(engine: Engine) -> dict:
    """The random streams a training run draws from: torch's, numpy's and Python's global generators (the data
    loader's shuffling and its workers' seeds come from torch's) and each transform's own generator."""
    version, python_state, gauss = random.getstate()
    dataset = getattr(getattr(engine, "data_loader", None), "dataset", None)
    return {
        "torch": torch.get_rng_state(),
        "numpy": _numpy_state(np.random.mtrand._rand),
        "python": {"version": version, "state": torch.tensor(python_state, dtype=torch.int64), "gauss": gauss},
        "transforms": [_numpy_state(g) for g in _random_generators(dataset)],
    }


def restore_random_states(engine: Engine, states: Mapping) -> None:
    """Continue the random streams saved by :func:`random_states`, so that a resumed run does not replay them."""
    torch.set_rng_state(states["torch"])
    _set_numpy_state(np.random.mtrand._rand, states["numpy"])
    python = states["python"]
    random.setstate((python["version"], tuple(int(v) for v in python["state"]), python["gauss"]))
    generators = _random_generators(getattr(getattr(engine, "data_loader", None), "dataset", None))
    if len(generators) != len(states["transforms"]):
        logger.warning("the checkpoint holds %d transform random states, this pipeline has %d: the transforms' "
                       "random streams start afresh", len(states["transforms"]), len(generators))
        return
    for generator, state in zip(generators, states["transforms"]):
        _set_numpy_state(generator, state)


def _checkpoint_state(model: PretextModel, optimizer, lr_scheduler, engine: Engine) -> dict:
    return {
        "model": model.network.state_dict(),
        "heads": model.heads.state_dict(),
        "config": model.config(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": lr_scheduler.state_dict() if lr_scheduler is not None else None,
        "trainer": {"epoch": engine.state.epoch, "iteration": engine.state.iteration,
                    "epoch_length": engine.state.epoch_length},
        "random_states": random_states(engine),
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
    training state ``pretext_checkpoint.pt``. Training then continues the iteration count, from inside an epoch
    for a checkpoint taken mid-epoch, so that the iterations trained over all runs equal the budget; nothing is
    retrained. The random streams (torch, numpy, Python and every transform's generator) continue where the
    checkpoint left them instead of replaying the first epoch's: resumed at an epoch boundary, a run matches the
    uninterrupted one. A folder with neither, or one that does not exist yet (a first run with ``resume`` on),
    starts afresh (logged); a missing checkpoint *file* is an error.

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
        iteration = int(checkpoint["trainer"]["iteration"])
        # the completed epochs: a checkpoint taken mid-epoch resumes inside that epoch (Ignite counts the
        # iterations left in it from iteration % epoch_length), so the run trains exactly its budget
        engine.state.iteration = iteration
        engine.state.epoch = iteration // engine.state.epoch_length
        if checkpoint.get("random_states") is not None:
            restore_random_states(engine, checkpoint["random_states"])
        else:
            logger.warning("%s holds no random states (an exported continuation): the random streams start afresh",
                           path)
        logger.info("resumed from %s at epoch %d, iteration %d", path, engine.state.epoch, engine.state.iteration)
        if iteration >= engine.state.max_epochs * engine.state.epoch_length:
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
