"""``monai_ssl.bundle.end_distributed``: the ``finalize`` of both multi-GPU configs."""

import json

import torch.distributed as dist

from monai_ssl.bundle import distributed, end_distributed
from tests.helpers import PRETRAINING, SEGMENTATION


def test_without_a_process_group_it_does_nothing(monkeypatch):
    slept = []
    monkeypatch.setattr(distributed.time, "sleep", slept.append)
    end_distributed()
    assert not dist.is_initialized() and slept == []


def test_it_destroys_a_gloo_group_then_hands_the_gil_to_its_threads(tmp_path, monkeypatch):
    slept = []
    monkeypatch.setattr(distributed.time, "sleep", slept.append)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    end_distributed(gil_handover_seconds=0.5)
    assert not dist.is_initialized()
    assert slept == [0.5]


def test_both_multi_gpu_configs_end_with_it():
    for configs in (PRETRAINING, SEGMENTATION):
        config = json.loads((configs / "multi_gpu_train.json").read_text())
        assert config["finalize"] == ["$monai_ssl.bundle.end_distributed()"], configs
