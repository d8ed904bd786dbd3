"""Semi-supervised fine-tuning: a mean teacher on unlabelled scans, as a handler of MONAI's ``SupervisedTrainer``.

Reference:
    Tarvainen and Valpola, "Mean teachers are better role models", NeurIPS 2017: the teacher's weights are an
    exponential moving average of the student's, and the student is also trained to agree with the teacher on
    unlabelled inputs under different noise. For 3D medical segmentation: Yu et al., "Uncertainty-aware
    self-ensembling model for semi-supervised 3D left atrium segmentation", MICCAI 2019 (consistency weight 0.1
    ramped up as exp(-5 (1 - t)^2), EMA decay 0.99, teacher input noise of 0.1 clipped to 0.2).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Iterator

import torch
from ignite.engine import Engine, Events
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys as Keys
from torch import nn
from torch.nn import functional as F

__all__ = ["MeanTeacher", "CONSISTENCY_KEY"]

#: key of the unweighted consistency loss in ``engine.state.output``
CONSISTENCY_KEY = "consistency"


class MeanTeacher:
    """Mean-teacher consistency on unlabelled scans, attached to a ``SupervisedTrainer`` that fine-tunes
    ``network`` on labelled ones.

    On every iteration, after the trainer computes its supervised loss (``IterationEvents.LOSS_COMPLETED``), one
    batch of ``unlabelled_loader`` goes through the student (the trained network, through the trainer's inferer)
    and, with Gaussian noise added, through the teacher; the mean squared difference of their softmax outputs,
    weighted, is added to the loss before the trainer's single backward pass. After the optimizer step the
    teacher's weights move towards the student's (an exponential moving average). Validation and the saved model
    stay the student's. The unweighted consistency is in ``engine.state.output["consistency"]``.

    Every iteration costs about twice a supervised one (a student and a teacher forward pass on the unlabelled
    batch). The teacher starts as a copy of the network when the run starts (after any pretrained weights are
    loaded); a run that stops starts its teacher afresh.

    Args:
        unlabelled_loader: batches of unlabelled crops, ``{"image": (B, C, *roi)}``, cycled for as long as the run.
        network: the trained network (the trainer's ``network``).
        weight: the consistency loss's weight once ramped up.
        rampup: share of the run's iterations over which the weight ramps up as ``exp(-5 (1 - t)^2)``, in [0, 1].
        ema_decay: the teacher's decay; early on ``1 - 1 / (iteration + 1)`` when smaller, so that the first
            iterations' average is not dominated by the initial weights.
        noise_std: standard deviation of the Gaussian noise on the teacher's input, clipped to twice it.
        seed: seed of the noise.
        image_key: key of the image in the unlabelled batches.
    """

    def __init__(self, unlabelled_loader: Iterable, network: nn.Module, weight: float = 0.1, rampup: float = 0.4,
                 ema_decay: float = 0.99, noise_std: float = 0.1, seed: int = 0, image_key: str = "image") -> None:
        if weight < 0:
            raise ValueError(f"the consistency weight must be >= 0, got {weight}.")
        if not 0.0 <= rampup <= 1.0:
            raise ValueError(f"rampup is a share of the run's iterations, in [0, 1], got {rampup}.")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) (0.99 is usual), got {ema_decay}.")
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}.")
        self.unlabelled_loader = unlabelled_loader
        self.network = network
        self.weight = float(weight)
        self.rampup = float(rampup)
        self.ema_decay = float(ema_decay)
        self.noise_std = float(noise_std)
        self.seed = int(seed)
        self.image_key = image_key
        self.teacher: nn.Module | None = None
        self._batches: Iterator | None = None
        self._generator: torch.Generator | None = None
        self._rampup_iterations = 0

    def attach(self, engine: SupervisedTrainer) -> None:
        if isinstance(self.network, nn.parallel.DistributedDataParallel):
            raise ValueError("semi-supervised fine-tuning runs in one process: its second forward pass per "
                             "iteration does not fit DistributedDataParallel's one pass; run train.json without "
                             "multi_gpu_train.json.")
        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(IterationEvents.LOSS_COMPLETED, self._add_consistency)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._update_teacher)

    def consistency_weight(self, iteration: int) -> float:
        """The weight at ``iteration`` (1-based) of the run: ``weight * exp(-5 (1 - t)^2)`` during the ramp-up,
        ``t`` the share of it done, then ``weight``."""
        if iteration >= self._rampup_iterations:
            return self.weight
        done = iteration / self._rampup_iterations
        return self.weight * math.exp(-5.0 * (1.0 - done) ** 2)

    def _start(self, engine: Engine) -> None:
        self.teacher = copy.deepcopy(self.network).eval()
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)
        self._rampup_iterations = round(self.rampup * engine.state.max_epochs * engine.state.epoch_length)
        self._generator = torch.Generator(device=engine.state.device).manual_seed(self.seed)
        self._batches = None

    def _next_batch(self) -> dict:
        if self._batches is not None:
            batch = next(self._batches, None)
            if batch is not None:
                return batch
        self._batches = iter(self.unlabelled_loader)
        batch = next(self._batches, None)
        if batch is None:
            raise ValueError("semi-supervised fine-tuning has no unlabelled scans: give --unlabelled_datalist or "
                             "--unlabelled_dir, or set --semi_supervised false.")
        return batch

    def _add_consistency(self, engine: SupervisedTrainer) -> None:
        images = self._next_batch()[self.image_key]
        images = torch.as_tensor(images).to(engine.state.device, non_blocking=engine.non_blocking)
        noise = torch.randn(images.shape, generator=self._generator, device=images.device, dtype=images.dtype)
        noise = (noise * self.noise_std).clamp(-2 * self.noise_std, 2 * self.noise_std)
        with torch.no_grad():
            teacher = torch.softmax(engine.inferer(images + noise, self.teacher).float(), dim=1)
        student = torch.softmax(engine.inferer(images, engine.network).float(), dim=1)
        consistency = F.mse_loss(student, teacher)
        output = engine.state.output
        output[CONSISTENCY_KEY] = consistency.detach()
        output[Keys.LOSS] = output[Keys.LOSS] + self.consistency_weight(engine.state.iteration) * consistency

    @torch.no_grad()
    def _update_teacher(self, engine: Engine) -> None:
        decay = min(1.0 - 1.0 / (engine.state.iteration + 1), self.ema_decay)
        for teacher, student in zip(self.teacher.parameters(), self.network.parameters()):
            teacher.mul_(decay).add_(student.detach(), alpha=1.0 - decay)
        for teacher, student in zip(self.teacher.buffers(), self.network.buffers()):
            teacher.copy_(student)
