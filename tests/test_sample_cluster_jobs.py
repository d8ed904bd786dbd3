"""The cluster examples in sample_configs/ run as their headers say: the index job arrays (Slurm, Kubernetes indexed
Job, DICOMweb by month), run for every array index and then merged, give the single run's datalist; the multi-node
pretraining script launches torchrun with a rendezvous the bundle accepts."""

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from monai_ssl.cli import build_parser
from monai_ssl.ingest import index_archive
from tests.dicom_factory import write_series
from tests.helpers import REPO

SAMPLES = REPO / "sample_configs"
BIN = os.path.dirname(sys.executable)  # the installed `monai-ssl` command


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("archive")
    for k in range(3):
        write_series(str(root / f"patient{k}" / "ct"), count=12, seed=k)
    spread = write_series(str(root / "patient3" / "mr"), count=12, modality="MR", seed=3)
    (root / "second_export").mkdir()
    for path in spread["paths"][:5]:
        shutil.move(path, root / "second_export" / Path(path).name)
    return root


@pytest.fixture(scope="module")
def single(archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "list.json"
    index_archive(str(archive), str(out), salt="s", modalities=["CT", "MR"], progress=False)
    return json.loads(out.read_text())["training"]


def keys(datalist: Path) -> list:
    return [{k: v for k, v in e.items() if k != "image"} for e in json.loads(datalist.read_text())["training"]]


def environment(**variables) -> dict:
    return {**os.environ, "PATH": BIN + os.pathsep + os.environ["PATH"], "MONAI_SSL_SALT": "s", **variables}


def header_command(script: Path, marker: str) -> str:
    """The command a script's header says to run after the array (``sbatch ... --wrap "<command>"``)."""
    line = next(line for line in script.read_text().splitlines() if marker in line)
    return re.search(r'--wrap "(.*)"', line).group(1)


def test_slurm_array_then_merge_gives_the_single_run(archive, single, tmp_path):
    script = SAMPLES / "index_slurm_array.sh"
    assert re.search(r"#SBATCH --array=0-(\d+)", script.read_text())
    for task in range(2):  # the array's size comes from Slurm's environment
        result = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=environment(
            SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_TASK_COUNT="2", SLURM_CPUS_PER_TASK="1",
            ARCHIVE=str(archive), OUT=str(tmp_path)))
        assert result.returncode == 0, result.stderr
    merge = header_command(script, "--dependency")
    result = subprocess.run(["bash", "-c", merge], capture_output=True, text=True, env=environment(OUT=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert keys(tmp_path / "datalist.json") == [{k: v for k, v in e.items() if k != "image"} for e in single]
    assert len(single) == 4


def test_kubernetes_indexed_job_then_merge_gives_the_single_run(archive, single, tmp_path):
    job = yaml.safe_load((SAMPLES / "index_kubernetes_job.yaml").read_text())
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"]
    container = spec["template"]["spec"]["containers"][0]
    env = {v["name"]: v["value"] for v in container["env"]}
    assert int(env["SHARD_COUNT"]) == spec["completions"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    salt = tmp_path / "salt"
    salt.write_text("s")
    command = container["args"][0].replace(mounts["archive"], str(archive)).replace(mounts["index"], str(tmp_path))
    for index in range(2):
        result = subprocess.run([*container["command"], command], capture_output=True, text=True, env=environment(
            JOB_COMPLETION_INDEX=str(index), SHARD_COUNT="2", MONAI_SSL_SALT_FILE=str(salt)))
        assert result.returncode == 0, result.stderr
    merge = yaml.safe_load((SAMPLES / "index_kubernetes_merge.yaml").read_text())
    merge_container = merge["spec"]["template"]["spec"]["containers"][0]
    # exec form, no shell: monai-ssl merge expands the pattern itself
    command = [part.replace(mounts["index"], str(tmp_path)) for part in merge_container["command"]]
    result = subprocess.run(command, capture_output=True, text=True, env=environment())
    assert result.returncode == 0, result.stderr
    assert keys(tmp_path / "datalist.json") == [{k: v for k, v in e.items() if k != "image"} for e in single]


def test_dicomweb_array_asks_for_one_month_per_task(tmp_path):
    """A stand-in `monai-ssl` records the arguments; the real parser reads them."""
    script = SAMPLES / "index_dicomweb_slurm_array.sh"
    recorder = tmp_path / "bin" / "monai-ssl"
    recorder.parent.mkdir()
    recorder.write_text('#!/bin/bash\nprintf "%s\\n" "$@" > "$RECORD"\n')
    recorder.chmod(0o755)
    ranges = []
    for task in (0, 1, 11):
        record = tmp_path / f"args{task}"
        result = subprocess.run(["bash", str(script)], capture_output=True, text=True, env={
            **os.environ, "PATH": str(recorder.parent) + os.pathsep + os.environ["PATH"], "RECORD": str(record),
            "SLURM_ARRAY_TASK_ID": str(task), "YEAR": "2024", "OUT": str(tmp_path)})
        assert result.returncode == 0, result.stderr
        args = build_parser().parse_args(record.read_text().splitlines())
        assert args.command == "index" and args.source.startswith("dicomweb+http")
        ranges.append((args.study_date_from, args.study_date_to, Path(args.out).name))
    assert ranges == [("20240101", "20240131", "month_01.json"), ("20240201", "20240229", "month_02.json"),
                      ("20241201", "20241231", "month_12.json")]
    merge = build_parser().parse_args(header_command(script, "--dependency").split()[1:])
    assert merge.command == "merge" and merge.datalists == ["$OUT/month_*.json"]


def test_multinode_pretraining_script_launches_torchrun_on_every_node(tmp_path):
    """Stand-ins for `srun`, `scontrol` and `torchrun` record the launch; torchrun's own parser and the bundle's
    files check it."""
    from torch.distributed.run import get_args_parser

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # a host list longer than a pipe's buffer: a reader that stops at the first line would end scontrol by SIGPIPE
    for name, body in {"srun": '"$@"', "scontrol": "echo node017; seq -f node%g 18 100000",
                       "torchrun": 'printf "%s\\n" "$@" > "$RECORD"'}.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    record = tmp_path / "torchrun_args"
    result = subprocess.run(["bash", str(SAMPLES / "pretrain_slurm_multinode.sh"), "--max_epochs", "3"],
                            capture_output=True, text=True, cwd=REPO, env={
                                **os.environ, "PATH": str(bin_dir) + os.pathsep + os.environ["PATH"],
                                "RECORD": str(record), "SLURM_JOB_NODELIST": "node[017-018]", "SLURM_NNODES": "2",
                                "SLURM_GPUS_ON_NODE": "4", "SLURM_JOB_ID": "123"})
    assert result.returncode == 0, result.stderr
    args = get_args_parser().parse_args(record.read_text().splitlines())
    assert (args.nnodes, args.nproc_per_node, args.rdzv_backend) == ("2", "4", "c10d")
    assert args.rdzv_endpoint == "node017:29500" and args.rdzv_id == "123" and args.module
    bundle = args.training_script_args
    assert bundle[:2] == ["run", "--config_file"] and bundle[-2:] == ["--max_epochs", "3"]
    configs = ast.literal_eval(bundle[2])  # the list literal monai.bundle parses
    assert [Path(c).name for c in configs] == ["train.json", "multi_gpu_train.json"]
    assert all((REPO / c).is_file() for c in configs)
