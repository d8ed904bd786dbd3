"""Small networks and data shared by the model, engine and transfer tests."""

from __future__ import annotations

import torch
from monai.networks.nets import BasicUNet, UNet

from monai_ssl.data import make_phantom

SMALL_TASKS = [
    {"name": "jigsaw", "args": {"num_permutations": 10, "gap": 2, "jitter": 1}},
    {"name": "rotation"},
    {"name": "colorization"},
    {"name": "relative_position", "args": {"patch_size": 12, "gap": 1, "jitter": 1}},
]
UNET_ARGS = {"spatial_dims": 3, "in_channels": 1, "out_channels": 2, "channels": (8, 16, 32), "strides": (2, 2),
             "num_res_units": 1}


def small_unet(seed: int = 0, **overrides) -> UNet:
    torch.manual_seed(seed)
    return UNet(**{**UNET_ARGS, **overrides})


def small_basic_unet(seed: int = 0) -> BasicUNet:
    torch.manual_seed(seed)
    return BasicUNet(3, 1, 2, features=(4, 4, 8, 8, 16, 4))


def phantom_samples(count: int = 4, size: int = 32) -> list[dict]:
    return [{"image": make_phantom(i, shape=(size, size, size))[0]} for i in range(count)]


def pretext_batch(model, count: int = 2, size: int = 32) -> dict:
    """One batch of ``count`` phantoms through ``model.transform()``, its random draws seeded."""
    from monai.data import DataLoader, Dataset

    transform = model.transform().set_random_state(0)
    return next(iter(DataLoader(Dataset(phantom_samples(count, size), transform=transform), batch_size=count)))


def write_phantom_images(folder, count: int, size: int = 48) -> list:
    """``count`` phantom images as NIfTI files in ``folder``."""
    import nibabel as nib
    import numpy as np

    Path(folder).mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        paths.append(Path(folder) / f"phantom_{i}.nii.gz")
        nib.save(nib.Nifti1Image(np.asarray(make_phantom(i, shape=(size,) * 3)[0][0], dtype=np.float32), np.eye(4)),
                 str(paths[-1]))
    return paths

# ---- bundles -------------------------------------------------------------------------------------------------
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PRETRAINING = REPO / "bundles" / "pretext_pretraining" / "configs"
SEGMENTATION = REPO / "bundles" / "brain_mri_segmentation" / "configs"
TINY_NETWORK = {"network_def#channels": [8, 16, 32], "network_def#strides": [2, 2], "network_def#num_res_units": 1}
TINY_PRETRAINING = {
    **TINY_NETWORK,
    "demo": True,
    "roi_size": [32, 32, 32],
    "samples_per_volume": 2,
    "num_workers": 0,
    "max_epochs": 1,
    "epoch_length": 2,
    "task_args#jigsaw": {"grid": [2, 2, 2], "num_permutations": 10, "gap": 2, "jitter": 1},
    "task_args#relative_position": {"patch_size": [12, 12, 12], "gap": 1, "jitter": 1},
}
TINY_SEGMENTATION = {**TINY_NETWORK, "demo": True, "roi_size": [32, 32, 32], "samples_per_volume": 2, "num_workers": 0,
                     "max_epochs": 2, "val_interval": 1}


def outputs(folder) -> dict[str, str]:
    """``output_dir`` and ``ckpt_dir`` overrides under ``folder``: a test never writes into a bundle's ``models/``
    (its default ``ckpt_dir``), which holds the shipped weights."""
    return {"output_dir": str(folder), "ckpt_dir": str(Path(folder) / "models")}


def cli_arguments(overrides: dict) -> list[str]:
    """``--key value`` arguments for ``python -m monai.bundle run``."""
    return [item for key, value in overrides.items() for item in (f"--{key}", json.dumps(value))]


def run_cli(args: list[str], cwd, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def bundle_command(config_files, overrides: dict) -> list[str]:
    files = config_files if isinstance(config_files, str) else json.dumps([str(f) for f in config_files])
    return [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(files), *cli_arguments(overrides)]


def unique_volume(shape) -> torch.Tensor:
    """Every voxel holds a distinct value, so equal patches can only come from the same place."""
    return torch.arange(int(torch.tensor(shape).prod()), dtype=torch.float32).reshape(shape)


def crop(img, start, size):
    """The patch of ``size`` at voxel ``start`` of a channel-first image."""
    return img[(slice(None),) + tuple(slice(int(s), int(s) + n) for s, n in zip(start, size))]


def parameters_with_gradient(network) -> set[str]:
    """Names of ``network``'s parameters that received a non-zero gradient."""
    return {k for k, p in network.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def fit_one_batch(model, batch, steps: int = 40, lr: float = 3e-3) -> list[float]:
    """A pretext model's loss at each of ``steps`` Adam steps on one fixed batch (seeded)."""
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model.compute_loss(model(batch), batch)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def pretrain_tiny_and_transfer(folder, tasks: list[str]):
    """Run the pretraining bundle (tiny settings) with ``tasks``, then load its ``model.pt`` into a 4-class
    segmentation network of the same architecture with the whole network eligible. Returns the pretext checkpoint,
    the transfer report and the segmentation network's adapter."""
    from monai.bundle import ConfigWorkflow

    from monai_ssl import load_pretrained
    from monai_ssl.networks import get_adapter

    flow = ConfigWorkflow(config_file=str(PRETRAINING / "train.json"), workflow_type="train",
                          **{**TINY_PRETRAINING, **outputs(folder), "tasks": tasks})
    flow.initialize()
    flow.run()
    checkpoint = torch.load(Path(folder) / "models" / "pretext_checkpoint.pt", weights_only=True)
    segmenter = flow.parser.get_parsed_content("network_def").__class__(
        **{**checkpoint["config"]["network"]["args"], "out_channels": 4})
    report = load_pretrained(segmenter, str(Path(folder) / "models" / "model.pt"), encoder_only=False)
    return checkpoint, report, get_adapter(segmenter)
