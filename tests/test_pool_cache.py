"""The pretraining pool's cache: `auto` keeps it in memory while the preprocessed volumes fit in half the available
memory of the node's processes, on disk beyond; the estimate comes from headers (or an index datalist), exactly."""

import logging

import nibabel as nib
import numpy as np
import pytest
from monai.data import CacheDataset, PersistentDataset

from monai_ssl import PretextModel
from monai_ssl.bundle import cache as pool_cache
from monai_ssl.bundle import pretext_dataset
from tests.helpers import SMALL_TASKS, small_unet


@pytest.fixture()
def scans(tmp_path):
    """Two scans: 40x30x20 at 1 mm, and 2-channel 20x20x20 at 2 mm."""
    nib.save(nib.Nifti1Image(np.zeros((40, 30, 20), np.int16), np.eye(4)), str(tmp_path / "a.nii.gz"))
    nib.save(nib.Nifti1Image(np.zeros((20, 20, 20, 2), np.float32), np.diag([2.0, 2.0, 2.0, 1.0])),
             str(tmp_path / "b.nii.gz"))
    return [{"image": str(tmp_path / "a.nii.gz")}, {"image": str(tmp_path / "b.nii.gz")}]


def test_preprocessed_size_comes_from_the_headers_at_the_target_spacing(scans, tmp_path):
    assert pool_cache.cached_bytes(scans, None) == ((40 * 30 * 20 + 20 * 20 * 20 * 2) * 4, 0)
    # at 2 mm the first scan has 8 times fewer voxels, the second as many
    assert pool_cache.cached_bytes(scans, (2.0, 2.0, 2.0)) == ((20 * 15 * 10 + 20 * 20 * 20 * 2) * 4, 0)
    label_map = [{"label_map": scans[0]["image"]}]  # int16 once preprocessed
    assert pool_cache.cached_bytes(label_map, None) == (40 * 30 * 20 * 2, 0)
    channels = [{"image": [scans[0]["image"], scans[0]["image"]]}]
    assert pool_cache.cached_bytes(channels, None) == (2 * 40 * 30 * 20 * 4, 0)


def test_an_index_datalist_is_estimated_without_opening_a_file(tmp_path):
    entries = [{"image": str(tmp_path / "absent.nii.gz"), "shape": [100, 100, 50], "spacing": [1.0, 1.0, 4.0]}]
    assert pool_cache.cached_bytes(entries, (2.0, 2.0, 2.0)) == (50 * 50 * 100 * 4, 0)


def test_files_without_a_header_count_four_times_their_size(tmp_path):
    folder = tmp_path / "dicom_series"
    folder.mkdir()
    (folder / "1.dcm").write_bytes(b"x" * 1000)
    (folder / "2.dcm").write_bytes(b"x" * 500)
    assert pool_cache.cached_bytes([{"image": str(folder)}], None) == (6000, 1)


@pytest.mark.parametrize("available, processes, expected", [
    (4 * 10**6, "1", "memory"),  # 2 MB of volumes in half of 4 MB
    (4 * 10**6 - 8, "1", "disk"),
    (8 * 10**6, "2", "memory"),  # two processes on the node, each with a share as large
    (8 * 10**6 - 8, "2", "disk"),
])
def test_memory_while_the_pool_fits_in_half_the_available_memory(monkeypatch, caplog, tmp_path, available, processes,
                                                                  expected):
    entries = [{"image": str(tmp_path / f"{k}.nii.gz"), "shape": [50, 50, 20], "spacing": [1, 1, 1]}
               for k in range(10)]  # 10 x 200 kB
    monkeypatch.setattr(pool_cache, "available_memory", lambda: available)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", processes)
    with caplog.at_level(logging.INFO, logger="monai_ssl.bundle.cache"):
        assert pool_cache.choose_cache(entries, None) == expected
    assert f"cache 'auto': {expected}: 10 volumes, about 0.0 GB preprocessed, x {processes} process(es)" in caplog.text


def test_unknown_available_memory_chooses_disk_and_says_so(monkeypatch, caplog, scans):
    monkeypatch.setattr(pool_cache, "available_memory", lambda: None)
    with caplog.at_level(logging.INFO, logger="monai_ssl.bundle.cache"):
        assert pool_cache.choose_cache(scans, None) == "disk"
    assert "does not report its available memory" in caplog.text


def test_the_dataset_follows_the_choice(monkeypatch, scans, tmp_path):
    model = PretextModel(small_unet(), SMALL_TASKS)
    monkeypatch.setattr(pool_cache, "available_memory", lambda: 10**12)
    assert isinstance(pretext_dataset(scans, model, "MR", None, (32, 32, 32), cache_dir=str(tmp_path / "c")),
                      CacheDataset)
    monkeypatch.setattr(pool_cache, "available_memory", lambda: 1000)
    on_disk = pretext_dataset(scans, model, "MR", None, (32, 32, 32), cache_dir=str(tmp_path / "c"))
    assert isinstance(on_disk, PersistentDataset) and len(on_disk[0]) == 4
    with pytest.raises(ValueError, match="or 'auto' for this many volumes, see the log"):
        pretext_dataset(scans, model, "MR", None, (32, 32, 32))
    with pytest.raises(ValueError, match="cache must be one of"):
        pretext_dataset(scans, model, "MR", None, (32, 32, 32), cache="ram")
