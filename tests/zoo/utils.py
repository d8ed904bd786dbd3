"""What the MONAI Model Zoo's unit tests do with a bundle, for the tests of this folder: copy it where its CI has it,
override settings, export the merged config into the bundle's configs/ (the Zoo's multi-GPU tests run
``torchrun -m monai.bundle run`` on that one exported file) and run the workflows with the bundle's logging and
metadata files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from monai.bundle import ConfigParser, ConfigWorkflow

from tests.helpers import REPO


def bundle_copy(name: str, folder: Path) -> Path:
    """The bundle ``name`` copied to ``folder/models/name`` (the Zoo repository's layout), without outputs."""
    target = folder / "models" / name
    shutil.copytree(REPO / "bundles" / name, target, ignore=shutil.ignore_patterns("outputs"))
    return target


def workflow(bundle: Path, workflow_type: str, config_files: list[str], **overrides) -> ConfigWorkflow:
    """A ``ConfigWorkflow`` as the Zoo builds it: the bundle's logging and metadata files, settings overridden."""
    return ConfigWorkflow(workflow_type=workflow_type, config_file=[str(bundle / "configs" / f) for f in config_files],
                          logging_file=str(bundle / "configs" / "logging.conf"),
                          meta_file=str(bundle / "configs" / "metadata.json"), **overrides)


def run_checked(flow: ConfigWorkflow, check: bool = True) -> None:
    flow.initialize()
    if check:
        problems = flow.check_properties()
        if problems:
            raise ValueError(f"check_properties failed: {problems}")
    flow.run()
    flow.finalize()


def export_and_run_torchrun(bundle: Path, config_files: list[str], overrides: dict, name: str, nproc: int = 2) -> None:
    """Merge ``config_files`` with ``overrides`` into ``configs/<name>`` and run it under ``torchrun``."""
    parser = ConfigParser()
    parser.read_config([str(bundle / "configs" / f) for f in config_files])
    parser.update(pairs=overrides)
    exported = bundle / "configs" / name
    ConfigParser.export_config_file(parser.config, str(exported), indent=4)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
               f"--nproc_per_node={nproc}", "-m", "monai.bundle", "run", "--config_file", str(exported),
               "--logging_file", str(bundle / "configs" / "logging.conf"),
               "--meta_file", str(bundle / "configs" / "metadata.json")]
    subprocess.run(command, check=True, cwd=bundle.parent, timeout=600,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
