"""The heads can learn and the pseudo-labels are consistent: on a tiny fixed set of real MRI volumes, training
through the engine fits the rotation labels and drives the jigsaw loss far below chance (log K)."""

import math

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import DataLoader
from monai.networks.nets import UNet

from monai_ssl import PretextModel, PretextTrainer
from tests.conftest import shared_path

SUBJECTS = [("train", "brats_2013_pat0005_1"), ("train", "brats_2013_pat0006_1"),
            ("validation", "brats_2013_pat0003_1"), ("validation", "brats_2013_pat0004_1")]


@pytest.fixture(scope="module")
def real_volumes() -> list[np.ndarray]:
    """8 real volumes (FLAIR and T1c of 4 BraTS subjects) at half resolution, central 48x48x48 region."""
    volumes = []
    for split, subject in SUBJECTS:
        for contrast in ("Flair", "T1c"):
            path = shared_path("brats_deepmedic", split, subject, f"{contrast}_subtrMeanDivStd.nii.gz")
            image = np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)[::2, ::2, ::2]
            starts = [(s - c) // 2 for s, c in zip(image.shape, (48, 48, 48))]
            volumes.append(image[None, starts[0] : starts[0] + 48, starts[1] : starts[1] + 48,
                                 starts[2] : starts[2] + 48].copy())
    return volumes


def fixed_samples(model: PretextModel, volumes, per_volume: int) -> list[dict]:
    transform = model.transform()
    transform.set_random_state(0)
    return [transform({"image": v}) for v in volumes for _ in range(per_volume)]


def evaluate(model: PretextModel, samples: list[dict]) -> tuple[dict, dict]:
    """Per-task loss and accuracy over the whole fixed set, in eval mode."""
    model.eval()
    batch = {k: torch.stack([s[k] for s in samples]) for k in samples[0] if isinstance(samples[0][k], torch.Tensor)}
    with torch.no_grad():
        predictions = model(batch)
        model.compute_loss(predictions, batch)
    return dict(model.loss_function.last_losses), model.accuracies(predictions, batch)


def train(model: PretextModel, samples: list[dict], epochs: int) -> PretextTrainer:
    torch.manual_seed(0)
    loader = DataLoader(samples, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    trainer = PretextTrainer("cpu", epochs, loader, model, torch.optim.Adam(model.parameters(), 3e-3))
    trainer.run()
    return trainer


def small_unet() -> UNet:
    torch.manual_seed(0)
    return UNet(3, 1, 2, channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=1)


def test_rotation_fits_over_90_percent(real_volumes):
    model = PretextModel(small_unet(), [{"name": "rotation", "args": {"planes": [[0, 1]]}}])
    samples = fixed_samples(model, real_volumes, per_volume=8)
    assert len({int(s["rotation_label"]) for s in samples}) == 4
    assert evaluate(model, samples)[1]["rotation"] < 0.5
    train(model, samples, epochs=15)
    assert evaluate(model, samples)[1]["rotation"] > 0.9


def test_jigsaw_loss_falls_well_below_log_k(real_volumes):
    model = PretextModel(small_unet(), [{"name": "jigsaw", "args": {"num_permutations": 10, "gap": 2, "jitter": 1}}])
    samples = fixed_samples(model, real_volumes, per_volume=6)
    assert evaluate(model, samples)[0]["jigsaw"] > 0.8 * math.log(10)
    train(model, samples, epochs=15)
    assert evaluate(model, samples)[0]["jigsaw"] < 0.5 * math.log(10)


@pytest.mark.parametrize(
    "task, fraction",
    [({"name": "restoration"}, 0.75),  # 0.59-0.71 over three sample draws
     ({"name": "contrastive", "args": {"view_size": [24, 24, 24]}}, 0.8),
     ({"name": "exemplar", "args": {"view_size": [24, 24, 24]}}, 0.5),
     ({"name": "cpc", "args": {"patch_size": [20, 20, 20], "grid": [3, 2, 2]}}, 0.8),
     ({"name": "masked_volume", "args": {"cube_size": 6}}, 0.75)],  # 0.67-0.70 over two sample draws
    ids=lambda value: value["name"] if isinstance(value, dict) else str(value),
)
def test_the_other_families_learn_on_real_mri(real_volumes, task, fraction):
    """Restoration, contrastive, exemplar, CPC and masked volume: on the fixed set, the loss falls clearly below its
    start."""
    model = PretextModel(small_unet(), [task])
    samples = fixed_samples(model, real_volumes, per_volume=2)
    before = evaluate(model, samples)[0][task["name"]]
    train(model, samples, epochs=15)
    after = evaluate(model, samples)[0][task["name"]]
    assert after < fraction * before, (before, after)
