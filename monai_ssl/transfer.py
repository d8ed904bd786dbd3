"""Transfer pretrained weights into a segmentation network, and fine-tuning helpers."""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from ignite.engine import Engine, Events
from monai.networks.utils import copy_model_state, freeze_layers
from monai.optimizers import generate_param_groups
from torch import nn

from monai_ssl.checkpoint import PRETRAINING_STATE_FILENAME, load_checkpoint
from monai_ssl.tasks.registry import create_task, list_tasks
from monai_ssl.networks.adapters import get_adapter

__all__ = ["LoadReport", "load_pretrained", "whole_network_transfer", "EncoderFreezeHandler", "encoder_param_groups"]

logger = logging.getLogger(__name__)

MISSING = "missing in the network"
SHAPE_MISMATCH = "shape mismatch"
DECODER = "decoder, excluded by encoder_only"
ADAPTED = "input channels adapted"


def adapt_input_channels(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """A convolution weight ``(out, C_src, *kernel)`` re-made for ``in_channels`` inputs.

    Every new input channel gets the sum of the source channels' kernels divided by ``in_channels``, so that an
    input whose channels all equal one image ``x`` gives the same response as the source layer gave ``x`` in all
    its channels: a single-channel encoder seeds a FLAIR + T1c network with kernels that treat each modality
    alike, at the scale the following layers were trained on.
    """
    if weight.ndim < 3:
        raise ValueError(f"expected a convolution weight (out, in, *kernel), got shape {tuple(weight.shape)}.")
    kernel = weight.sum(dim=1, keepdim=True) / in_channels
    return kernel.expand(-1, in_channels, *([-1] * (weight.ndim - 2))).clone()


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did.

    Attributes:
        copied: network keys whose tensors were copied.
        skipped: checkpoint keys that were not copied, with the reason (missing in the network, shape mismatch
            with both shapes, or decoder excluded by ``encoder_only``).
        not_in_checkpoint: network keys the checkpoint has no tensor for; they keep their initial values.
        adapted: network keys copied after their input channels were adapted (see :func:`adapt_input_channels`),
            with both shapes.
    """

    copied: list[str] = field(default_factory=list)
    adapted: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    not_in_checkpoint: list[str] = field(default_factory=list)

    def reasons(self) -> dict[str, int]:
        """Number of skipped keys per reason."""
        return dict(Counter(reason.split(":")[0] for reason in self.skipped.values()))

    def summary(self) -> str:
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(self.reasons().items())) or "none"
        adapted = f", {len(self.adapted)} of them with input channels adapted" if self.adapted else ""
        return (
            f"loaded {len(self.copied)} pretrained tensors{adapted}; skipped {len(self.skipped)} ({reasons}); "
            f"{len(self.not_in_checkpoint)} network tensors not in the checkpoint"
        )


def load_pretrained(
    network: nn.Module,
    path: str | Mapping[str, torch.Tensor],
    encoder_only: bool | None = True,
    min_match_fraction: float = 0.5,
    adapt_channels: bool = True,
) -> LoadReport:
    """Copy pretrained weights into a freshly built network, in place, through MONAI's ``copy_model_state``.

    A tensor is copied when its key exists in ``network`` with the same shape and, with ``encoder_only``, the
    network's adapter counts it as encoder (for MONAI's UNet: every down layer and the bottom layer). The
    exclusion is applied by filtering the source dict before ``copy_model_state`` is called, because its
    ``exclude_vars`` is ignored whenever ``dst_prefix`` is set.

    Args:
        network: the network to initialise (e.g. the segmentation UNet).
        path: a monai-ssl checkpoint (its ``"model"`` entry is used), a plain ``state_dict`` file, or an
            in-memory state dict. Files are read with ``torch.load(weights_only=True)``.
        encoder_only: copy the encoder alone and leave the decoder as initialised. ``None`` decides from the
            pretraining tasks (:func:`whole_network_transfer`): the whole network when every task trained the
            decoder (restoration, colorization), the encoder otherwise.
        min_match_fraction: raise if fewer than this fraction of the network tensors eligible for loading
            (the encoder's with ``encoder_only``) can be copied: the checkpoint is for another architecture.
        adapt_channels: when the checkpoint was trained on another number of input channels (e.g. one MR
            channel, and the network takes FLAIR + T1c), adapt the input layer's weights with
            :func:`adapt_input_channels` instead of skipping them; reported in ``LoadReport.adapted``.

    Tensors that cannot be copied for a shape mismatch are named in a warning: a partial transfer is never
    silent.

    Returns:
        a :py:class:`LoadReport`; its one-line summary is also logged.

    Raises:
        ValueError: when (almost) nothing matches, e.g. a BasicUNet checkpoint loaded into a UNet.
    """
    if not 0.0 <= min_match_fraction <= 1.0:
        raise ValueError(f"min_match_fraction must be in [0, 1], got {min_match_fraction}.")
    if isinstance(path, Mapping):
        checkpoint = dict(path) if "model" in path else {"model": dict(path)}
    elif not os.path.isfile(path):
        raise FileNotFoundError(
            f"no pretrained weights at {path}: pass --pretrained_path with a monai-ssl checkpoint or a bundle's "
            "models/model.pt. The segmentation bundle finds the pretraining bundle's encoder by itself when the two "
            "bundle folders sit side by side (e.g. both downloaded with one --bundle_dir).")
    else:
        checkpoint = load_checkpoint(str(path))
    if encoder_only is None:
        encoder_only = not whole_network_transfer(checkpoint, None if isinstance(path, Mapping) else str(path))
    source = checkpoint["model"]
    adapter = get_adapter(network)
    destination = network.state_dict()
    report = LoadReport()
    selected = {}
    in_channels = adapter.in_channels
    for key, value in source.items():
        if key not in destination:
            report.skipped[key] = MISSING
            continue
        if encoder_only and not adapter.is_encoder_key(key):
            report.skipped[key] = DECODER
            continue
        shape = destination[key].shape
        if adapt_channels and _differs_in_input_channels(value.shape, shape, in_channels):
            report.adapted[key] = f"{ADAPTED}: {tuple(value.shape)} in the checkpoint, {tuple(shape)} here"
            value = adapt_input_channels(value, in_channels).to(value.dtype)
        if shape != value.shape:
            report.skipped[key] = (
                f"{SHAPE_MISMATCH}: {tuple(value.shape)} in the checkpoint, {tuple(shape)} here"
            )
        else:
            selected[key] = value
    eligible = [k for k in destination if adapter.is_encoder_key(k)] if encoder_only else list(destination)
    matched = sum(k in selected for k in eligible)
    if not eligible or matched < min_match_fraction * len(eligible):
        origin = checkpoint.get("config", {}).get("network", {}).get("class", "an unknown network")
        raise ValueError(
            f"the checkpoint does not fit this {type(network).__name__}: only {matched} of {len(eligible)} "
            f"{'encoder ' if encoder_only else ''}tensors match by name and shape (it was saved from {origin}). "
            "Build the network with the pretraining run's network_def arguments."
        )
    _, report.copied, _ = copy_model_state(network, selected, inplace=True)
    report.not_in_checkpoint = [k for k in destination if k not in source]
    logger.info("load_pretrained: %s", report.summary())
    mismatched = [k for k, reason in report.skipped.items() if reason.startswith(SHAPE_MISMATCH)]
    if mismatched:
        logger.warning("load_pretrained: %d tensors were not loaded for a shape mismatch and keep their initial "
                       "values: %s", len(mismatched), ", ".join(mismatched))
    if report.adapted:
        logger.info("load_pretrained: adapted the input layer to %d channels: %s", in_channels,
                    "; ".join(f"{k} ({r})" for k, r in report.adapted.items()))
    return report


def whole_network_transfer(checkpoint: Mapping, path: str | None = None) -> bool:
    """Whether the pretraining tasks of a checkpoint all trained the decoder, so that the whole network, not the
    encoder alone, should seed a segmentation network (Models Genesis transfers the whole network).

    The tasks are read from the checkpoint's ``"config"``, or, for a plain ``model.pt``, from the training state
    ``pretext_checkpoint.pt`` beside it. Without either, or with an unregistered task, the encoder alone (logged).
    """
    config = checkpoint.get("config")
    if config is None and path is not None:
        state = os.path.join(os.path.dirname(path), PRETRAINING_STATE_FILENAME)
        if os.path.isfile(state):
            config = load_checkpoint(state).get("config")
    names = [t["name"] for t in (config or {}).get("tasks", [])]
    if not names or any(name not in list_tasks() for name in names):
        logger.info("load_pretrained: the pretraining tasks are unknown (%s): transferring the encoder", names or "none")
        return False
    # built with their arguments: an option may make a task train the decoder (the contrastive local loss)
    whole = all(create_task(t["name"], **t.get("args", {})).trains_decoder for t in config["tasks"])
    logger.info("load_pretrained: pretraining tasks %s: transferring the %s", names,
                "whole network (every task trained the decoder)" if whole else "encoder")
    return whole


def _differs_in_input_channels(source: torch.Size, destination: torch.Size, in_channels: int) -> bool:
    """Whether two convolution weights differ only in their input channels, the destination's being the
    network's input channels (an input layer trained on another number of image channels)."""
    return (len(source) == len(destination) >= 3 and source[0] == destination[0] and source[2:] == destination[2:]
            and source[1] != destination[1] and destination[1] == in_channels)


class EncoderFreezeHandler:
    """Ignite handler freezing a network's encoder for the first ``freeze_epochs`` epochs, then unfreezing it.

    The warm-up recipe of Taleb et al. (2020): the randomly initialised decoder first adapts to the pretrained
    encoder. Frozen parameters get ``requires_grad=False`` (so optimizers skip them). Normalisation running
    statistics, if the encoder has BatchNorm layers, keep updating in training mode; MONAI's UNet uses instance
    norm by default, which has none.

    Under ``DistributedDataParallel``, the trainer's network must be built with ``find_unused_parameters=True``:
    DDP registers the parameters that need gradients when it is built, and would otherwise wait forever for the
    frozen ones ("Expected to have finished reduction in the prior iteration"). Attaching checks it.

    Args:
        network: the network being fine-tuned (not wrapped in DDP).
        freeze_epochs: number of epochs with a frozen encoder; 0 disables freezing.
    """

    def __init__(self, network: nn.Module, freeze_epochs: int) -> None:
        if freeze_epochs < 0:
            raise ValueError(f"freeze_epochs must be >= 0, got {freeze_epochs}.")
        self.network = network
        adapter = get_adapter(network)
        self.encoder = adapter.encoder_parameters()
        # MONAI's freeze_layers selects parameters by a regular expression over their names
        names = [name for name, _ in network.named_parameters() if adapter.is_encoder_key(name)]
        self.encoder_pattern = "^(?:" + "|".join(re.escape(name) for name in names) + ")$"
        self.freeze_epochs = freeze_epochs

    def attach(self, engine: Engine) -> None:
        trained = getattr(engine, "network", None)
        if (self.freeze_epochs and isinstance(trained, nn.parallel.DistributedDataParallel)
                and not trained.find_unused_parameters):
            raise ValueError("freeze_encoder_epochs needs DistributedDataParallel(find_unused_parameters=True): the "
                             "frozen encoder receives no gradients, which DDP otherwise waits for.")
        engine.add_event_handler(Events.STARTED, self._on_start)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._on_epoch_completed)

    def set_frozen(self, frozen: bool) -> None:
        if frozen:
            freeze_layers(self.network, freeze_vars=self.encoder_pattern)
        else:  # MONAI has no counterpart to unfreeze
            for parameter in self.encoder:
                parameter.requires_grad_(True)

    def _on_start(self, engine: Engine) -> None:
        if engine.state.epoch < self.freeze_epochs:
            self.set_frozen(True)
            logger.info("encoder frozen for the first %d epochs", self.freeze_epochs)

    def _on_epoch_completed(self, engine: Engine) -> None:
        if engine.state.epoch == self.freeze_epochs and self.freeze_epochs > 0:
            self.set_frozen(False)
            logger.info("encoder unfrozen after epoch %d", engine.state.epoch)


def encoder_param_groups(network: nn.Module, lr: float, encoder_lr: float | None = None) -> list[dict]:
    """Optimizer parameter groups giving the encoder its own (usually lower) learning rate.

    Args:
        network: the network being fine-tuned.
        lr: learning rate of the decoder and other parameters.
        encoder_lr: learning rate of the encoder; ``None`` means ``lr``.
    """
    adapter = get_adapter(network)
    groups = generate_param_groups(network, layer_matches=[lambda item: adapter.is_encoder_key(item[0])],
                                   match_types=["filter"], lr_values=[lr if encoder_lr is None else encoder_lr])
    groups[-1]["lr"] = lr  # the other parameters: decoder and anything outside the encoder
    return [{**group, "params": list(group["params"])} for group in groups]
