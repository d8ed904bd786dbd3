"""Each bundle under torchrun: 2 CPU processes, gloo backend, a few iterations; rank 0 alone logs and saves."""

import sys

import pytest

from tests.helpers import PRETRAINING, SEGMENTATION, TINY_PRETRAINING, TINY_SEGMENTATION, cli_arguments, outputs, run_cli

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2"]


@pytest.mark.parametrize(
    "configs, overrides, saved",
    [(PRETRAINING, TINY_PRETRAINING, "models/model.pt"), (SEGMENTATION, {**TINY_SEGMENTATION, "max_epochs": 1}, "models/model.pt")],
    ids=["pretext_pretraining", "brain_mri_segmentation"],
)
def test_two_process_gloo_run(tmp_path, configs, overrides, saved):
    files = f"['{configs / 'train.json'}','{configs / 'multi_gpu_train.json'}']"
    command = [*TORCHRUN, "-m", "monai.bundle", "run", "--config_file", files,
               *cli_arguments({**overrides, **outputs(tmp_path)})]
    result = run_cli(command, cwd=tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert (tmp_path / saved).is_file()
    if configs == PRETRAINING:
        log = result.stdout + result.stderr
        # model.pt and pretext_checkpoint.pt, by rank 0 only (2 ranks would log it 4 times)
        assert log.count("Train completed, saved final checkpoint") == 2


def probe(tmp_path, configs, mode: str, overrides: dict) -> list[dict]:
    """Run ``tests/ddp_probe.py`` on 2 gloo processes; the records of rank 0 and rank 1."""
    import json

    from tests.helpers import REPO

    command = [*TORCHRUN, str(REPO / "tests" / "ddp_probe.py"), str(configs), str(tmp_path), mode,
               json.dumps({**overrides, **outputs(tmp_path)})]
    result = run_cli(command, cwd=REPO)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_train_as_one_node_with_the_same_global_batch(tmp_path):
    """Two torchrun launchers acting as two nodes of one process each (c10d rendezvous on loopback, gloo) give the
    losses of one node running two processes, iteration by iteration; each node reads only its partition."""
    import json
    import os
    import subprocess
    from pathlib import Path

    from tests.helpers import REPO

    overrides = {**TINY_PRETRAINING, "epoch_length": 3}
    (tmp_path / "one_node").mkdir()
    one_node = probe(tmp_path / "one_node", PRETRAINING, "losses", overrides)
    out = tmp_path / "two_nodes"
    out.mkdir()
    port = free_port()
    launchers = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d",
         f"--rdzv_endpoint=127.0.0.1:{port}", "--rdzv_id=monai-ssl-test", "--max_restarts=0",
         str(REPO / "tests" / "ddp_probe.py"), str(PRETRAINING), str(out), "losses",
         json.dumps({**overrides, **outputs(out)})],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"}) for _ in range(2)]
    logs = [launcher.communicate(timeout=300)[0] for launcher in launchers]
    assert all(launcher.returncode == 0 for launcher in launchers), "\n".join(log[-3000:] for log in logs)
    two_nodes = sorted((json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)),
                       key=lambda record: record["rank"])
    assert {record["node_rank"] for record in two_nodes} == {0, 1}  # one process on each node
    names = lambda record: [Path(f).name for f in record["files"]]  # noqa: E731 - each run has its demo folder
    assert [names(r) for r in two_nodes] == [names(r) for r in one_node]
    assert not set(two_nodes[0]["files"]) & set(two_nodes[1]["files"])
    for node, single in zip(two_nodes, one_node):
        assert len(node["losses"]) == overrides["epoch_length"] * overrides.get("max_epochs", 1)
        assert node["losses"] == pytest.approx(single["losses"], rel=1e-6)


def test_each_rank_draws_its_own_samples_from_its_own_partition(tmp_path):
    """Seeds differ per rank (seed + rank) and each rank caches and reads only its partition of the files."""
    first, second = probe(tmp_path, PRETRAINING, "data", TINY_PRETRAINING)
    assert first["world_size"] == second["world_size"] == 2
    assert len(first["files"]) == len(second["files"]) == 4  # 8 demo volumes
    assert not set(first["files"]) & set(second["files"])
    demo = sorted(str(p) for p in (tmp_path / "demo_unlabelled").glob("*_image.nii.gz"))
    assert sorted(first["files"] + second["files"]) == demo  # together, the dataset once per epoch
    assert first["labels"].keys() == {"jigsaw_label", "rotation_label", "relative_position_label"}
    assert first["labels"] != second["labels"]


def test_a_frozen_encoder_warm_up_under_ddp(tmp_path):
    """The encoder is frozen for epoch 1 of 3 (the documented BraTS setup freezes 5): it is bit-identical after
    epoch 1, changed after epoch 3, and the same on both ranks."""
    overrides = {**TINY_SEGMENTATION, "freeze_encoder_epochs": 1, "max_epochs": 3, "val_interval": 3}
    ranks = probe(tmp_path, SEGMENTATION, "freeze", overrides)
    for record in ranks:
        assert len(record["epochs"]) == 3
        assert record["epochs"][0] == record["start"]
        assert record["epochs"][2] != record["start"]
    assert ranks[0]["epochs"] == ranks[1]["epochs"]


@pytest.mark.parametrize(
    "configs, overrides",
    [(PRETRAINING, TINY_PRETRAINING), (SEGMENTATION, {**TINY_SEGMENTATION, "max_epochs": 2, "val_interval": 2})],
    ids=["pretext_pretraining", "brain_mri_segmentation"],
)
def test_every_rank_skips_the_same_non_finite_step(tmp_path, configs, overrides):
    """NaN inputs on rank 1 reach both ranks' gradients through the all-reduce: both skip that step (rank 1 runs
    the guard although it runs no logging handler), train on, and end with the same finite weights. In float32:
    bf16 CPU autocast gives the tiny networks' 2-voxel maps NaN gradients of their own now and then."""
    ranks = probe(tmp_path, configs, "guard", {**overrides, "bf16_autocast": False})
    for record in ranks:
        assert record["skipped_steps"] == 1 and record["iterations"] > 1 and record["finite"]
    assert ranks[0]["network"] == ranks[1]["network"]


def test_freezing_under_ddp_without_unused_parameter_handling_is_refused():
    import torch
    from ignite.engine import Engine

    from monai_ssl import EncoderFreezeHandler
    from tests.helpers import small_unet

    network = small_unet()
    engine = Engine(lambda e, b: None)
    wrapped = torch.nn.parallel.DistributedDataParallel.__new__(torch.nn.parallel.DistributedDataParallel)
    wrapped.find_unused_parameters = False
    engine.network = wrapped
    with pytest.raises(ValueError, match="find_unused_parameters=True"):
        EncoderFreezeHandler(network, freeze_epochs=1).attach(engine)
