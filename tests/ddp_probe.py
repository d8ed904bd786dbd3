"""Run under torchrun by ``tests/test_bundle_multi_gpu.py``: each rank runs a bundle's multi-GPU workflow and
records what the tests check to ``<out>/rank<N>.json``.

Usage: ``torchrun ... tests/ddp_probe.py CONFIGS_DIR OUT_DIR MODE OVERRIDES_JSON`` with MODE
``data`` (the rank's partition of the training files and its first batch's pseudo-labels) or ``freeze`` (a digest
of the encoder when training starts and after each epoch).
"""

import hashlib
import json
import os
import sys

import torch.distributed as dist
from ignite.engine import Events
from monai.bundle import ConfigWorkflow

from monai_ssl.networks import get_adapter


def _encoder_digest(network) -> str:
    parameters = get_adapter(network).encoder_parameters()
    return hashlib.sha256(b"".join(p.detach().cpu().numpy().tobytes() for p in parameters)).hexdigest()


def main(configs: str, out: str, mode: str, overrides: dict) -> None:
    flow = ConfigWorkflow(config_file=[os.path.join(configs, "train.json"), os.path.join(configs, "multi_gpu_train.json")],
                          workflow_type="train", **overrides)
    flow.initialize()
    record: dict = {"world_size": dist.get_world_size()}
    if mode == "data":
        record["files"] = [next(iter(entry.values())) for entry in flow.parser.get_parsed_content("train#dataset#files")]
        batch = next(iter(flow.parser.get_parsed_content("train#dataloader")))
        record["labels"] = {k: v.tolist() for k, v in batch.items() if k.endswith("_label") and v.ndim == 1}
    elif mode == "freeze":
        network = flow.parser.get_parsed_content("network_def")
        trainer = flow.parser.get_parsed_content("train#trainer")
        record["epochs"] = []
        trainer.add_event_handler(Events.STARTED, lambda _: record.update(start=_encoder_digest(network)))
        trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda _: record["epochs"].append(_encoder_digest(network)))
        flow.run()
    else:
        raise ValueError(f"mode must be 'data' or 'freeze', got {mode!r}.")
    rank = dist.get_rank()
    flow.finalize()
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(record, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
