"""Shared fixtures: the real data in ../shared/data (tests that need it skip without it)."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

SHARED_DATA = Path(
    os.environ.get("MONAI_SSL_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


@pytest.fixture(autouse=True)
def private_config_home(tmp_path_factory, monkeypatch):
    """Each test gets its own per-user config folder (``$XDG_CONFIG_HOME``, where the indexer keeps its default
    salt): tests never write into the real one, nor share a salt through it."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with a clear message when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} (the shared data folder is not beside this checkout)")
    return path


@pytest.fixture(scope="session")
def brats_flair() -> np.ndarray:
    """A real BraTS FLAIR volume, channel-first float32, cropped to its central 128x128x96 region."""
    image = np.asarray(nib.load(shared_path("brats_deepmedic", "train", "brats_2013_pat0005_1",
                                            "Flair_subtrMeanDivStd.nii.gz")).dataobj, dtype=np.float32)
    starts = [(s - c) // 2 for s, c in zip(image.shape, (128, 128, 96))]
    return image[None, starts[0] : starts[0] + 128, starts[1] : starts[1] + 128, starts[2] : starts[2] + 96].copy()


@pytest.fixture(scope="session")
def brats_two_channel() -> np.ndarray:
    """Real BraTS FLAIR + T1c, channel-first, central 64x64x48 region at half resolution."""
    channels = []
    for name in ("Flair_subtrMeanDivStd.nii.gz", "T1c_subtrMeanDivStd.nii.gz"):
        image = np.asarray(nib.load(shared_path("brats_deepmedic", "train", "brats_2013_pat0005_1", name)).dataobj,
                           dtype=np.float32)
        channels.append(image[::2, ::2, ::2][28:92, 28:92, 15:63])
    return np.stack(channels)


def _bundle_weights() -> dict[str, str]:
    """Every file in the repository's bundles/*/models folders with its content hash."""
    import hashlib

    root = Path(__file__).resolve().parents[1] / "bundles"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.glob("*/models/*"))}


@pytest.fixture(scope="session", autouse=True)
def bundles_are_left_untouched():
    """No test may write into a bundle folder (its models/ holds the shipped weights): the default ``ckpt_dir``
    of both bundles is ``bundle_root/models``, so a test that forgets ``ckpt_dir`` fails here."""
    before = _bundle_weights()
    yield
    after = _bundle_weights()
    assert after == before, f"tests changed bundles/*/models: {sorted(set(after.items()) ^ set(before.items()))}"
