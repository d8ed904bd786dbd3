"""Training of pretext models through MONAI's ``SupervisedTrainer`` and Ignite handlers."""

from __future__ import annotations

import logging
import random
import sys
from collections.abc import Hashable, Mapping
from typing import Any, TextIO

import numpy as np
import ignite.distributed as idist
import torch
from ignite.contrib.handlers import ProgressBar
from ignite.engine import Engine
from ignite.handlers import DiskSaver
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.handlers import CheckpointSaver
from monai.utils import CommonKeys as Keys

from monai_ssl.pretext_model import PretextModel
from monai_ssl.utils import atomic_path

__all__ = [
    "prepare_pretext_batch",
    "PretextTrainer",
    "PretextProgressBar",
    "NonFiniteGradientGuard",
    "AtomicCheckpointSaver",
    "RandomStates",
    "TrainingConfig",
    "pretext_save_dict",
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


class NonFiniteGradientGuard:
    """Skip the optimizer step of an iteration whose gradients are not finite, as CUDA's ``GradScaler`` does for
    float16, and stop the run with an error that names the fix when skipped steps are more than a small share of
    the run, or ``max_consecutive`` in a row.

    Why: one non-finite step turns every weight into NaN for the rest of a run that then goes on, silently,
    for hours; and a run that skips many steps learns from fewer batches than it reports. The cause found:
    PyTorch 2.13's bf16 CPU convolution returns non-finite weight gradients, intermittently, on 2-voxel feature
    maps, which :py:meth:`~monai_ssl.networks.EncoderAdapter.check_input_size` now refuses at set-up; the guard
    stays for what set-up cannot see (NaN in the data, a diverging learning rate). Runs with CUDA ``amp`` are
    left to their ``GradScaler``, which skips such steps itself. Each skip is logged with the iteration and the
    count so far; the count is ``engine.state.skipped_steps``. Under gradient accumulation, the gradients
    accumulated so far are dropped.

    Args:
        max_consecutive: skipped iterations in a row after which the run stops with a ``RuntimeError``.
        max_skipped_fraction: share of this run's iterations that may be skipped; the run stops with a
            ``RuntimeError`` once more are, counted from ``min_skipped`` skipped steps on (a rare bad batch early
            in a run is not a share).
        min_skipped: skipped steps before ``max_skipped_fraction`` applies.
    """

    def __init__(self, max_consecutive: int = 20, max_skipped_fraction: float = 0.02, min_skipped: int = 5) -> None:
        if max_consecutive < 1 or min_skipped < 1:
            raise ValueError(f"max_consecutive and min_skipped must be >= 1, got {max_consecutive} and {min_skipped}.")
        if not 0.0 <= max_skipped_fraction < 1.0:
            raise ValueError(f"max_skipped_fraction must be in [0, 1), got {max_skipped_fraction}.")
        self.max_consecutive = max_consecutive
        self.max_skipped_fraction = max_skipped_fraction
        self.min_skipped = min_skipped
        self._consecutive = 0
        self._iterations = 0

    def attach(self, engine: Engine) -> None:
        engine.state.skipped_steps = 0
        engine.add_event_handler(IterationEvents.BACKWARD_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if engine.amp and getattr(engine, "scaler", None) is not None:
            return
        self._iterations += 1
        params = [p for group in engine.optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not params or torch.isfinite(torch.nn.utils.get_total_norm([p.grad for p in params])):
            self._consecutive = 0
            return
        for p in params:
            p.grad = None  # the optimizer skips parameters without a gradient
        self._consecutive += 1
        engine.state.skipped_steps += 1
        skipped = engine.state.skipped_steps
        logger.warning(f"iteration {engine.state.iteration}: non-finite gradients (loss "
                       f"{float(engine.state.output[Keys.LOSS]):.4g}); optimizer step skipped "
                       f"({skipped} skipped so far).")
        fix = ("check the inputs for NaN, lower the learning rate, or, with bf16 autocast, try --bf16_autocast "
               "false")
        if self._consecutive >= self.max_consecutive:
            raise RuntimeError(f"{self._consecutive} iterations in a row had non-finite gradients, so the model "
                               f"cannot learn; {fix}.")
        if skipped >= self.min_skipped and skipped > self.max_skipped_fraction * self._iterations:
            raise RuntimeError(f"{skipped} of {self._iterations} iterations had non-finite gradients, more than "
                               f"{self.max_skipped_fraction:.0%}, so the run learns from fewer batches than it "
                               f"reports; {fix}.")


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
    _, keys, position, has_gauss, cached_gaussian = generator.get_state()
    # tensors and plain numbers only, so that the checkpoint loads with weights_only=True
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position), "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian)}


def _set_numpy_state(generator: np.random.RandomState, state: Mapping) -> None:
    generator.set_state(("MT19937", state["keys"].numpy().astype(np.uint32), state["position"], state["has_gauss"],
                         state["cached_gaussian"]))


class RandomStates:
    """The random streams of a training run, as an entry of a checkpoint's ``save_dict``: torch's (CPU, and every
    CUDA device's when CUDA is available: dropout and other draws on the GPU), numpy's and Python's global
    generators (the data loader's shuffling and its workers' seeds come from torch's) and each transform's own
    generator in the trainer's dataset.

    MONAI's ``CheckpointSaver``/``CheckpointLoader`` save and restore anything with ``state_dict`` and
    ``load_state_dict``; with this entry, a resumed run continues the streams instead of replaying the first
    epoch's crops and pseudo-labels. Under ``torch.distributed`` the checkpoint holds rank 0's streams (rank 0
    alone saves); rank 0 continues them and every other rank branches off with a seed of its own.

    Args:
        trainer: the engine whose ``data_loader.dataset`` holds the transforms; read when saving and loading.
    """

    def __init__(self, trainer: Engine) -> None:
        self.trainer = trainer

    def _generators(self) -> list[np.random.RandomState]:
        return _random_generators(getattr(getattr(self.trainer, "data_loader", None), "dataset", None))

    def state_dict(self) -> dict:
        version, python_state, gauss = random.getstate()
        cuda = {"cuda": torch.cuda.get_rng_state_all()} if torch.cuda.is_available() else {}
        return {
            **cuda,
            "torch": torch.get_rng_state(),
            "numpy": _numpy_state(np.random.mtrand._rand),
            "python": {"version": version, "state": torch.tensor(python_state, dtype=torch.int64), "gauss": gauss},
            "transforms": [_numpy_state(g) for g in self._generators()],
        }

    def load_state_dict(self, state: Mapping) -> None:
        torch.set_rng_state(state["torch"])
        if torch.cuda.is_available() and "cuda" in state:
            devices = torch.cuda.device_count()
            if len(state["cuda"]) != devices:
                logger.warning("the checkpoint holds the random states of %d CUDA devices, this machine has %d: the "
                               "first %d are restored", len(state["cuda"]), devices, min(devices, len(state["cuda"])))
            for device, saved in enumerate(state["cuda"][:devices]):
                torch.cuda.set_rng_state(saved, device)
        _set_numpy_state(np.random.mtrand._rand, state["numpy"])
        python = state["python"]
        random.setstate((python["version"], tuple(int(v) for v in python["state"]), python["gauss"]))
        generators = self._generators()
        if len(generators) != len(state["transforms"]):
            logger.warning("the checkpoint holds %d transform random states, this pipeline has %d: the transforms' "
                           "random streams start afresh", len(state["transforms"]), len(generators))
        else:
            for generator, saved in zip(generators, state["transforms"]):
                _set_numpy_state(generator, saved)
        rank = idist.get_rank()
        if rank > 0:
            # rank 0 alone saves, so these are its streams: every other rank branches off them with its own seed,
            # or all ranks would draw the same crops and pseudo-labels after a resume
            seed = (int(torch.randint(2**31 - 1, (1,)).item()) + rank) % 2**31
            torch.manual_seed(seed)
            np.random.seed(seed)
            random.seed(seed)
            for index, generator in enumerate(generators):
                generator.seed((seed + 1 + index) % 2**32)


class TrainingConfig:
    """The pretext model's configuration (network class and arguments, tasks, loss weights) as an entry of a
    checkpoint's ``save_dict``, so that a checkpoint says what it was trained as. Loading checks that the run
    resumes the same tasks, whose heads it restores.

    Args:
        model: the pretext model.
    """

    def __init__(self, model: PretextModel) -> None:
        self.model = model

    def state_dict(self) -> dict:
        return self.model.config()

    def load_state_dict(self, state: Mapping) -> None:
        saved, current = [t["name"] for t in state.get("tasks", [])], list(self.model.tasks)
        if saved != current:
            raise ValueError(f"the checkpoint was trained on tasks {saved}, this run has {current}; resume with "
                             f"--tasks \"{saved}\", or start afresh without --resume.")
        # a continuation may change a task's difficulty (its heads still fit); say so, since the logs of the
        # two parts then measure different things
        for saved_task, task in zip(state["tasks"], self.model.config()["tasks"]):
            before, after = saved_task.get("args", {}), task["args"]
            changed = {k: (before.get(k, "(not recorded)"), after.get(k, "(not recorded)"))
                       for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)}
            if changed:
                logger.info(f"resuming task {task['name']!r} with changed arguments: " + ", ".join(
                    f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items()))


def pretext_save_dict(model: PretextModel, optimizer: torch.optim.Optimizer, trainer: Engine,
                      lr_scheduler: Any = None) -> dict:
    """What a pretraining checkpoint holds, for MONAI's ``CheckpointSaver``/``CheckpointLoader``: the network
    (``"model"``, MONAI's own key names, so that ``load_pretrained`` and a plain UNet read it), the task heads, the
    configuration, the optimizer, the trainer (epoch, iteration), the random streams and, if given, the scheduler."""
    save_dict = {"model": model.network, "heads": model.heads, "config": TrainingConfig(model),
                 "optimizer": optimizer, "trainer": trainer, "random_states": RandomStates(trainer)}
    if lr_scheduler is not None:
        save_dict["scheduler"] = lr_scheduler
    return save_dict


class _AtomicDiskSaver(DiskSaver):
    """Ignite's ``DiskSaver`` writing through :func:`monai_ssl.utils.atomic_path` (temporary file, fsync, rename;
    the user's umask), optionally under a fixed file name as MONAI's own saver does."""

    def __init__(self, dirname: str, filename: str | None = None) -> None:
        super().__init__(dirname=dirname, require_empty=False, atomic=False)
        self.filename = filename

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        super().__call__(checkpoint, self.filename or filename, metadata)

    def remove(self, filename: str) -> None:
        super().remove(self.filename or filename)

    def _save_func(self, checkpoint: Mapping, path, func) -> None:
        with atomic_path(str(path), suffix=".pt") as temporary:
            func(checkpoint, temporary, **self.kwargs)


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI's ``CheckpointSaver`` whose files are written atomically.

    What MONAI lacks: it builds its disk savers with ``atomic=False`` (Ignite's atomic mode used to leave files
    readable by their owner only), so a crash or a full disk during a save leaves a truncated checkpoint under the
    final name, which a resumed run then fails to read. Here every file is written to a temporary name, synced and
    renamed (:func:`monai_ssl.utils.atomic_path`), with the user's umask. Arguments and behaviour are otherwise
    MONAI's; files are saved on rank 0 only, as Ignite's savers do.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for checkpoint in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
            if checkpoint is not None:
                checkpoint.save_handler = _AtomicDiskSaver(self.save_dir, checkpoint.save_handler.filename)


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
