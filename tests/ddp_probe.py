"""Run under torchrun by ``tests/test_bundle_multi_gpu.py``: each rank runs a bundle's multi-GPU workflow and
records what the tests check to ``<out>/rank<N>.json``.

Usage: ``torchrun ... tests/ddp_probe.py CONFIGS_DIR OUT_DIR MODE OVERRIDES_JSON`` with MODE
``data`` (the rank's partition of the training files and its first batch's pseudo-labels), ``losses`` (the
training files of the rank and its loss at every iteration), ``freeze`` (a digest
of the encoder when training starts and after each epoch) or ``guard`` (rank 1's first input batch turned to NaN: the
steps each rank skipped, and a digest of its network afterwards).
"""

import hashlib
import json
import os
import sys

import torch
import torch.distributed as dist
from ignite.engine import Events
from monai.bundle import ConfigWorkflow

from monai_ssl.networks import get_adapter


def _digest(parameters) -> str:
    return hashlib.sha256(b"".join(p.detach().cpu().numpy().tobytes() for p in parameters)).hexdigest()


def _encoder_digest(network) -> str:
    return _digest(get_adapter(network).encoder_parameters())


def _poison_first_batch(engine) -> None:
    """NaN in the first batch's network inputs (``image``, or each pretext task's ``<task>_input``): the loss and,
    through DDP's all-reduce, every rank's gradients become NaN."""
    if engine.state.iteration == 1:
        for key, value in engine.state.batch.items():
            if key == "image" or key.endswith("_input"):
                value.fill_(float("nan"))


def main(configs: str, out: str, mode: str, overrides: dict) -> None:
    flow = ConfigWorkflow(config_file=[os.path.join(configs, "train.json"), os.path.join(configs, "multi_gpu_train.json")],
                          workflow_type="train", **overrides)
    flow.initialize()
    record: dict = {"world_size": dist.get_world_size()}
    if mode == "data":
        record["files"] = [next(iter(entry.values())) for entry in flow.parser.get_parsed_content("train#dataset#files")]
        batch = next(iter(flow.parser.get_parsed_content("train#dataloader")))
        record["labels"] = {k: v.tolist() for k, v in batch.items() if k.endswith("_label") and v.ndim == 1}
    elif mode == "losses":
        record["files"] = [next(iter(entry.values())) for entry in flow.parser.get_parsed_content("train#dataset#files")]
        trainer = flow.parser.get_parsed_content("train#trainer")
        record["losses"] = []
        trainer.add_event_handler(Events.ITERATION_COMPLETED,
                                  lambda engine: record["losses"].append(engine.state.output["loss"].item()))
        flow.run()
    elif mode == "freeze":
        network = flow.parser.get_parsed_content("network_def")
        trainer = flow.parser.get_parsed_content("train#trainer")
        record["epochs"] = []
        trainer.add_event_handler(Events.STARTED, lambda _: record.update(start=_encoder_digest(network)))
        trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda _: record["epochs"].append(_encoder_digest(network)))
        flow.run()
    elif mode == "guard":
        network = flow.parser.get_parsed_content("network_def")
        trainer = flow.parser.get_parsed_content("train#trainer")
        if dist.get_rank() == 1:
            trainer.add_event_handler(Events.ITERATION_STARTED, _poison_first_batch)
        flow.run()
        record["skipped_steps"] = trainer.state.skipped_steps
        record["iterations"] = trainer.state.iteration
        record["finite"] = all(bool(torch.isfinite(p).all()) for p in network.parameters())
        record["network"] = _digest(network.parameters())
    else:
        raise ValueError(f"mode must be 'data', 'losses', 'freeze' or 'guard', got {mode!r}.")
    rank = dist.get_rank()
    record["rank"], record["node_rank"] = rank, int(os.environ.get("GROUP_RANK", "0"))
    flow.finalize()
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(record, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
