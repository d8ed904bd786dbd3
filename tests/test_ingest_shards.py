"""`monai-ssl index --shard i/n` and `monai-ssl merge`: n shards joined give exactly the single run's datalist and
report; a series is never split, wherever its files lie; incomplete or mixed inputs are refused with the fix."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from monai_ssl.ingest import Shard, index_archive, merge_indexes
from monai_ssl.ingest.records import shard_key, walk_files
from tests.conftest import shared_path
from tests.dicom_factory import write_series, write_time_series

OPTIONS = {"salt": "s", "min_slices": 2, "progress": False}


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Series of several kinds, one spread over two folders, one exported twice, a 4D series, a NIfTI, a series too
    short to keep and a broken file."""
    root = tmp_path_factory.mktemp("archive")
    for k in range(5):
        write_series(str(root / f"patient{k}" / "ct"), count=6, seed=k)
    spread = write_series(str(root / "patient5" / "mr"), count=8, modality="MR", seed=5)
    (root / "late_export").mkdir()
    for path in spread["paths"][:4]:  # the same series continued in another export folder
        shutil.move(path, root / "late_export" / Path(path).name)
    twice = write_series(str(root / "patient6" / "ct"), count=6, seed=6)
    shutil.copytree(Path(twice["paths"][0]).parent, root / "exported_again" / "ct")
    write_time_series(root / "patient7", volumes=3, count=6)
    write_series(str(root / "patient8" / "few"), count=1, seed=8)
    nib.save(nib.Nifti1Image(np.arange(6 * 7 * 8, dtype=np.float32).reshape(6, 7, 8), np.eye(4)),
             str(root / "patient9.nii.gz"))
    (root / "broken.dcm").write_text("not dicom")
    return root


def index_in_shards(archive, out: Path, count: int, **options) -> list[str]:
    datalists = [str(out / f"shard_{i}.json") for i in range(count)]
    for i, datalist in enumerate(datalists):
        index_archive(str(archive), datalist, shard=f"{i}/{count}", **{**OPTIONS, **options})
    return datalists


def read(datalist: Path) -> tuple[list, dict]:
    report = datalist.with_name(datalist.stem + "_report.json")
    return json.loads(datalist.read_text())["training"], json.loads(report.read_text())


def without_images(entries: list) -> list:
    return [{k: v for k, v in e.items() if k != "image"} for e in entries]


@pytest.fixture(scope="module")
def single(archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    index_archive(str(archive), str(out / "single.json"), **OPTIONS)
    return out, *read(out / "single.json")


@pytest.mark.parametrize("count", [2, 3])
def test_shards_merged_give_exactly_the_single_run(archive, single, tmp_path, count):
    single_dir, single_entries, single_report = single
    datalists = index_in_shards(archive, tmp_path, count, cache_dir=str(tmp_path / "cache"))
    merged = merge_indexes(datalists, str(tmp_path / "merged.json"))
    entries, report = read(tmp_path / "merged.json")
    assert without_images(entries) == without_images(single_entries)  # same volumes under the same keys
    assert report == single_report  # same files, skips and reasons
    assert merged.accepted == report["accepted_series"] == 9 and merged.volumes == 11
    assert report["skipped_counts"] == {"duplicate_instance": 6, "not_dicom": 1, "too_few_slices": 1}
    for e, s in zip(entries, single_entries):  # the same voxels, from the shards' shared cache
        assert Path(e["image"]).parent.name == "cache"
        assert np.array_equal(nib.load(tmp_path / e["image"]).get_fdata(), nib.load(single_dir / s["image"]).get_fdata())
    # every shard did a part: none holds another's series, together they examined each file once
    parts = [read(Path(d)) for d in datalists]
    assert sum(r["files"] for _, r in parts) == report["files"] == len(list(walk_files(str(archive))))
    series = [{e["series"] for e in part} for part, _ in parts]
    assert sum(len(s) for s in series) == len(set().union(*series)) == 9
    assert [r["shard"] for _, r in parts] == [{"index": i, "count": count} for i in range(count)]


def test_a_series_spread_over_folders_goes_to_one_shard(archive):
    keys = {shard_key(p, str(archive)) for p in walk_files(str(archive))
            if "late_export" in p or "patient5" in p}
    assert len(keys) == 1 and keys.pop().startswith("series:")
    assert shard_key(str(archive / "broken.dcm"), str(archive)) == "path:broken.dcm"
    assert shard_key(str(archive / "patient9.nii.gz"), str(archive)) == "path:patient9.nii.gz"


def test_shard_keys_spread_over_the_shards():
    shards = [Shard(i, 4) for i in range(4)]
    owners = [[s.owns(f"series:1.2.{k}") for s in shards] for k in range(400)]
    assert all(sum(o) == 1 for o in owners)  # a partition
    assert all(60 < sum(o[i] for o in owners) < 140 for i in range(4))


@pytest.mark.parametrize("text", ["4/4", "-1/4", "0/0", "1", "a/b", "1/2/3"])
def test_bad_shards_are_refused_with_the_form_to_use(text):
    with pytest.raises(ValueError, match="INDEX/COUNT"):
        Shard.parse(text)


def test_merge_refuses_missing_repeated_or_mixed_inputs(archive, tmp_path):
    datalists = index_in_shards(archive, tmp_path, 3)
    out = str(tmp_path / "merged.json")
    with pytest.raises(ValueError, match=r"shard\(s\) 1/3 missing: run `monai-ssl index SOURCE --shard i/3`"):
        merge_indexes([datalists[0], datalists[2]], out)
    with pytest.raises(ValueError, match=r"shard\(s\) \[2\] of 3 given more than once"):
        merge_indexes(datalists + [datalists[2]], out)
    index_archive(str(archive), str(tmp_path / "other" / "two.json"), shard="0/2", **OPTIONS)
    with pytest.raises(ValueError, match="different numbers of parts"):
        merge_indexes(datalists + [str(tmp_path / "other" / "two.json")], out)
    index_archive(str(archive), str(tmp_path / "whole" / "all.json"), **OPTIONS)
    with pytest.raises(ValueError, match="some of these indexes are shards"):
        merge_indexes(datalists + [str(tmp_path / "whole" / "all.json")], out)
    index_archive(str(archive), str(tmp_path / "salted" / "all.json"), **{**OPTIONS, "salt": "other"})
    with pytest.raises(ValueError, match="different salts"):
        merge_indexes([str(tmp_path / "whole" / "all.json"), str(tmp_path / "salted" / "all.json")], out)
    with pytest.raises(ValueError, match="does not exist"):
        merge_indexes([str(tmp_path / "nothing.json")], out)
    assert not (tmp_path / "merged.json").exists()


def test_an_archive_indexed_twice_merges_to_each_series_once(archive, single, tmp_path):
    _, single_entries, single_report = single
    for name in ("a", "b"):
        index_archive(str(archive), str(tmp_path / name / "list.json"), **OPTIONS)
    merged = merge_indexes([str(tmp_path / "a" / "list.json"), str(tmp_path / "b" / "list.json")],
                           str(tmp_path / "merged.json"))
    entries, report = read(tmp_path / "merged.json")
    assert without_images(entries) == without_images(single_entries)
    assert all(e["image"].startswith("a/") for e in entries)  # the first index's volumes, paths rebased
    assert report["skipped_counts"]["duplicate_series"] == len(single_entries) == merged.volumes
    assert report["files"] == 2 * single_report["files"]


def test_real_ct_series_split_over_folders_in_shards(tmp_path):
    source = shared_path("ct") / "example_ct_dicom"
    archive = tmp_path / "archive"
    slices = sorted(p for p in source.rglob("*") if p.is_file())
    for k, path in enumerate(slices):  # a real series spread over two folders, beside a real NIfTI CT
        target = archive / ("first" if k % 2 else "second") / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    shutil.copyfile(shared_path("ct") / "example_ct.nii.gz", archive / "ct.nii.gz")
    index_archive(str(archive), str(tmp_path / "single" / "list.json"), **OPTIONS)
    datalists = index_in_shards(archive, tmp_path / "shards", 2)
    merge_indexes(datalists, str(tmp_path / "shards" / "merged.json"))
    single_entries, single_report = read(tmp_path / "single" / "list.json")
    entries, report = read(tmp_path / "shards" / "merged.json")
    assert without_images(entries) == without_images(single_entries) and report == single_report
    assert sorted(e["num_slices"] for e in entries if e["format"] == "dicom") == [len(slices)]


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monai_ssl", *args], capture_output=True, text=True)


def test_command_line_shards_and_merge(archive, single, tmp_path):
    _, single_entries, _ = single
    for i in range(2):
        result = run_cli("index", str(archive), "--out", str(tmp_path / f"s{i}.json"), "--shard", f"{i}/2",
                         "--min-slices", "2", "--workers", "1")
        assert result.returncode == 0, result.stderr
    result = run_cli("merge", str(tmp_path / "s*.json"), "--out", str(tmp_path / "all.json"))
    assert result.returncode == 0, result.stderr
    assert "9 series accepted (11 volumes)" in result.stdout
    assert len(read(tmp_path / "all.json")[0]) == len(single_entries)

    result = run_cli("merge", str(tmp_path / "s0.json"), "--out", str(tmp_path / "part.json"))
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith(
        "monai-ssl merge: shard(s) 1/2 missing")
    result = run_cli("index", str(archive), "--out", str(tmp_path / "x.json"), "--shard", "2/2")
    assert result.returncode == 2 and "INDEX/COUNT" in result.stderr.strip().splitlines()[-1]
    result = run_cli("index", "dicomweb+http://127.0.0.1:9/dicom-web", "--out", str(tmp_path / "w.json"),
                     "--shard", "0/2")
    assert result.returncode == 2 and "split a DICOMweb source by study date" in result.stderr


def test_an_empty_shard_is_not_a_failed_job(tmp_path):
    archive = tmp_path / "archive"
    write_series(str(archive / "only"), count=4, seed=0)
    key = shard_key(next(walk_files(str(archive))), str(archive))
    empty = next(i for i in range(2) if not Shard(i, 2).owns(key))
    result = run_cli("index", str(archive), "--out", str(tmp_path / "s.json"), "--shard", f"{empty}/2",
                     "--min-slices", "2", "--workers", "1")
    assert result.returncode == 0 and "no DICOM or NIfTI file among the 0 files" in result.stderr
    assert read(tmp_path / "s.json")[0] == []
