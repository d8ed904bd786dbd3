"""The one-command demo: pretrain on unlabelled demo phantoms, then fine-tune a UNet on one labelled phantom twice,
from scratch and from the pretrained weights, with identical budgets, and compare validation Dice.

It drives the two bundles through MONAI's ``ConfigWorkflow``, exactly as ``python -m monai.bundle run`` does;
only command-line style overrides differ from the bundles' defaults (smaller crops and budgets for a 2-core CPU).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from monai.bundle import ConfigWorkflow

__all__ = ["find_bundles_dir", "run_bundle", "run_demo", "DEMO_PRETRAINING", "DEMO_FINE_TUNING"]

logger = logging.getLogger(__name__)

# crops of 48 voxels (the demo phantom is 64^3 at 2 mm) keep a pretraining step near a second on 2 cores
DEMO_PRETRAINING: dict[str, Any] = {
    "demo": True,
    "roi_size": [48, 48, 48],
    "samples_per_volume": 4,
    "batch_size": 4,
    "num_workers": 0,
    "task_args": {
        "jigsaw": {"grid": [2, 2, 2], "num_permutations": 24, "gap": 2, "jitter": 2},
        "rotation": {"planes": [[0, 1], [0, 2], [1, 2]]},
        "colorization": {"mode": "remap"},
        "relative_position": {"patch_size": [20, 20, 20], "gap": 2, "jitter": 2, "fit_all_neighbours": False,
                              "foreground_threshold": 0.05},
    },
}
DEMO_FINE_TUNING: dict[str, Any] = {
    "demo": True,
    "roi_size": [48, 48, 48],
    "num_labelled": 1,
    "samples_per_volume": 8,
    "batch_size": 4,
    "num_workers": 0,
}


def find_bundles_dir() -> Path:
    """The repository's ``bundles/`` folder (the package is installed from a checkout)."""
    candidate = Path(__file__).resolve().parents[1] / "bundles"
    if not (candidate / "pretext_pretraining").is_dir():
        raise FileNotFoundError(f"bundles not found at {candidate}; pass --bundles-dir with the repository's bundles/.")
    return candidate


def run_bundle(config_files: str | list[str], workflow_type: str = "train", **overrides) -> ConfigWorkflow:
    """Initialise, run and finalise a bundle workflow, as ``python -m monai.bundle run`` does."""
    workflow = ConfigWorkflow(config_file=config_files, workflow_type=workflow_type, **overrides)
    workflow.initialize()
    problems = workflow.check_properties()
    if problems:
        raise ValueError(f"bundle {config_files} lacks required properties: {problems}")
    workflow.run()
    workflow.finalize()
    return workflow


def _fine_tune(bundles: Path, output_dir: str, epochs: int, seed: int, **overrides) -> dict[str, float]:
    workflow = run_bundle(
        str(bundles / "brain_mri_segmentation" / "configs" / "train.json"),
        output_dir=output_dir, ckpt_dir=os.path.join(output_dir, "models"), max_epochs=epochs, val_interval=epochs,
        seed=seed, **DEMO_FINE_TUNING, **overrides,
    )
    evaluator = workflow.parser.get_parsed_content("validate#evaluator")
    return {k: float(v) for k, v in evaluator.state.metrics.items()}


def run_demo(
    output_dir: str = "outputs/demo", pretrain_epochs: int = 25, fine_tune_epochs: int = 100, seed: int = 0,
    bundles_dir: str | None = None,
) -> dict[str, Any]:
    """Pretrain, fine-tune from scratch and from the pretrained weights, print and return both Dice results.

    Returns:
        ``{"scratch": metrics, "pretrained": metrics, "montage": path, "seconds": wall time}``.
    """
    from monai_ssl.data import make_phantom
    from monai_ssl.visualize import render_pretext_montage

    start = time.time()
    bundles = Path(bundles_dir) if bundles_dir else find_bundles_dir()
    montage = render_pretext_montage(make_phantom(seed, shape=(96, 96, 96))[0],
                                     os.path.join(output_dir, "pretext_tasks.png"), seed=seed)
    print(f"[1/3] pretraining on unlabelled demo phantoms ({pretrain_epochs} epochs)", flush=True)
    pretraining_dir = os.path.join(output_dir, "pretraining")
    pretraining_models = os.path.join(pretraining_dir, "models")
    run_bundle(str(bundles / "pretext_pretraining" / "configs" / "train.json"), output_dir=pretraining_dir,
               ckpt_dir=pretraining_models, max_epochs=pretrain_epochs, seed=seed, **DEMO_PRETRAINING)
    pretrained_path = os.path.join(pretraining_models, "model.pt")
    print(f"[2/3] fine-tuning from scratch on 1 labelled subject ({fine_tune_epochs} epochs)", flush=True)
    scratch = _fine_tune(bundles, os.path.join(output_dir, "scratch"), fine_tune_epochs, seed)
    print(f"[3/3] fine-tuning from the pretrained weights, same budget ({fine_tune_epochs} epochs)", flush=True)
    pretrained = _fine_tune(bundles, os.path.join(output_dir, "pretrained"), fine_tune_epochs, seed,
                            use_pretrained=True, pretrained_path=pretrained_path)
    seconds = time.time() - start

    names = [k for k in scratch if k.startswith("val_dice_")]
    print("\nValidation Dice on 3 demo phantoms after fine-tuning on 1 labelled phantom (demo data, not a result):")
    print(f"{'':12s} {'mean':>7s} " + " ".join(f"{n[len('val_dice_'):]:>11s}" for n in names))
    for arm, metrics in (("scratch", scratch), ("pretrained", pretrained)):
        print(f"{arm:12s} {metrics['val_mean_dice']:7.3f} " + " ".join(f"{metrics[n]:11.3f}" for n in names))
    print(f"\nPretext task montage: {os.path.abspath(montage)}")
    print(f"Pretrained model: {os.path.abspath(pretrained_path)}; total time {seconds:.0f} s")
    return {"scratch": scratch, "pretrained": pretrained, "montage": montage, "seconds": seconds}
