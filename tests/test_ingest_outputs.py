"""What `monai-ssl index` writes: a PHI-free datalist, report, logs and cache; resumable and crash-safe; the
same with several workers; consumed by the pretraining bundle."""

import json
import os
import subprocess
import sys

import pytest

from monai_ssl.ingest import index_archive
from monai_ssl.ingest import indexer
from tests.dicom_factory import PHI, write_series
from tests.helpers import PRETRAINING, TINY_PRETRAINING, outputs

PHI_STRINGS = ["DOE", "JOHN", "PAT-12345", "19700101", "ACC987", "john doe"]


@pytest.fixture()
def archive(tmp_path):
    root = tmp_path / "archive"
    # hospital exports often name folders after the patient
    write_series(str(root / "DOE_JOHN" / "ct"), count=12, seed=0)
    write_series(str(root / "DOE_JOHN" / "mr"), count=12, modality="MR", seed=1)
    with open(root / "DOE_JOHN" / "broken.dcm", "w") as f:
        f.write("not dicom")
    write_series(str(root / "DOE_JOHN" / "few"), count=2, seed=2)
    return root


def everything_written(out_dir) -> str:
    text = []
    for folder, _, files in os.walk(out_dir):
        for name in files:
            text.append(os.path.join(folder, name))
            if name.endswith(".json"):
                with open(os.path.join(folder, name)) as f:
                    text.append(f.read())
    return "\n".join(text)


def test_no_patient_data_in_datalist_report_logs_or_cache_names(archive, tmp_path, capfd, caplog):
    out = tmp_path / "out"
    summary = index_archive(str(archive), str(out / "datalist.json"), workers=1)
    printed = capfd.readouterr()
    written = everything_written(out) + printed.out + printed.err + caplog.text + summary.text()
    assert summary.accepted == 2 and sum(summary.skipped.values()) == 2
    for phi in PHI_STRINGS + list(PHI.values()):
        assert phi not in written, phi
    entry = json.loads((out / "datalist.json").read_text())["training"][0]
    assert all(len(entry[k]) == 64 and int(entry[k], 16) >= 0 for k in ("subject", "study", "series"))
    assert {"image", "modality", "shape", "spacing"} <= set(entry)
    report = json.loads((out / "datalist_report.json").read_text())
    assert all(s["item"].startswith(("file:", "series:")) for s in report["skipped"])


def test_same_salt_same_keys_other_salt_other_keys(archive, tmp_path):
    first = index_archive(str(archive), str(tmp_path / "a" / "list.json"), salt="one", progress=False)
    again = index_archive(str(archive), str(tmp_path / "b" / "list.json"), salt="one", progress=False)
    other = index_archive(str(archive), str(tmp_path / "c" / "list.json"), salt="two", progress=False)
    keys = [sorted(e["series"] for e in json.load(open(s.datalist_path))["training"]) for s in (first, again, other)]
    assert keys[0] == keys[1] and not set(keys[0]) & set(keys[2])



def test_the_default_salt_is_per_user_and_never_beside_the_data(archive, tmp_path, monkeypatch):
    """Whoever is handed an index (datalist, report, cache) must not also hold the salt of its hashes."""
    config_home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    for variable in ("MONAI_SSL_SALT", "MONAI_SSL_SALT_FILE"):
        monkeypatch.delenv(variable, raising=False)
    first = index_archive(str(archive), str(tmp_path / "d" / "list.json"), progress=False)
    salt_file = config_home / "monai-ssl" / "salt"
    assert len(salt_file.read_text()) == 64 and oct(salt_file.stat().st_mode)[-3:] == "600"
    assert oct(salt_file.parent.stat().st_mode)[-3:] == "700"
    index_tree = {p.name for p in (tmp_path / "d").rglob("*")}
    assert not any("salt" in name for name in index_tree)
    assert salt_file.read_text() not in "".join(p.read_text() for p in (tmp_path / "d").glob("*.json"))
    # created once and kept: the same keys next time; a salt file or the environment give other keys
    again = index_archive(str(archive), str(tmp_path / "e" / "list.json"), progress=False)
    (tmp_path / "team_salt").write_text("shared team secret\n")
    from_file = index_archive(str(archive), str(tmp_path / "f" / "list.json"), progress=False,
                              salt_file=str(tmp_path / "team_salt"))
    monkeypatch.setenv("MONAI_SSL_SALT", "shared team secret")
    from_environment = index_archive(str(archive), str(tmp_path / "g" / "list.json"), progress=False)
    keys = [sorted(e["series"] for e in json.load(open(s.datalist_path))["training"])
            for s in (first, again, from_file, from_environment)]
    assert keys[0] == keys[1] and keys[2] == keys[3] and not set(keys[0]) & set(keys[2])


def test_an_empty_salt_file_is_refused(archive, tmp_path):
    (tmp_path / "salt").write_text("\n")
    with pytest.raises(ValueError, match="the salt file .* is empty"):
        index_archive(str(archive), str(tmp_path / "list.json"), salt_file=str(tmp_path / "salt"), progress=False)


def test_a_legacy_salt_in_the_cache_is_not_read_and_is_reported(archive, tmp_path, caplog):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / ".salt").write_text("old")
    with caplog.at_level("WARNING"):
        summary = index_archive(str(archive), str(tmp_path / "list.json"), cache_dir=str(cache), salt="new",
                                progress=False)
    assert "salt kept beside the data it protects" in caplog.text
    with_old = index_archive(str(archive), str(tmp_path / "o" / "list.json"), salt="old", progress=False)
    keys = [{e["series"] for e in json.load(open(s.datalist_path))["training"]} for s in (summary, with_old)]
    assert not keys[0] & keys[1]


def test_rerun_reuses_the_cache(archive, tmp_path, monkeypatch):
    out = tmp_path / "out" / "datalist.json"
    index_archive(str(archive), str(out), salt="s", progress=False)
    cached = sorted((tmp_path / "out" / "cache").glob("*.nii.gz"))
    before = {p: p.stat().st_mtime_ns for p in cached}

    def must_not_convert(records):
        raise AssertionError("a cached series was converted again")

    monkeypatch.setattr(indexer, "convert_series", must_not_convert)
    index_archive(str(archive), str(out), salt="s", progress=False)
    assert {p: p.stat().st_mtime_ns for p in cached} == before


def test_an_interrupted_conversion_leaves_no_file_a_later_run_would_trust(archive, tmp_path, monkeypatch):
    out = tmp_path / "out" / "datalist.json"
    import nibabel

    original = nibabel.save
    calls = {"n": 0}

    def crash_mid_write(image, path):
        calls["n"] += 1
        with open(path, "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt  # the process dies while writing

    monkeypatch.setattr(nibabel, "save", crash_mid_write)
    with pytest.raises(KeyboardInterrupt):
        index_archive(str(archive), str(out), salt="s", progress=False)
    assert calls["n"] == 1
    assert list((tmp_path / "out" / "cache").glob("*.nii.gz")) == []
    monkeypatch.setattr(nibabel, "save", original)
    summary = index_archive(str(archive), str(out), salt="s", progress=False)
    assert summary.accepted == 2


def test_workers_give_the_same_result(archive, tmp_path):
    one = index_archive(str(archive), str(tmp_path / "one" / "l.json"), salt="s", workers=1, progress=False)
    two = index_archive(str(archive), str(tmp_path / "two" / "l.json"), salt="s", workers=2, progress=False)
    strip = lambda s: sorted((e["series"], e["shape"]) for e in json.load(open(s.datalist_path))["training"])  # noqa
    assert strip(one) == strip(two) and one.skipped == two.skipped


def test_modality_filter_and_min_slices(archive, tmp_path):
    summary = index_archive(str(archive), str(tmp_path / "l.json"), modalities=["mr"], min_slices=3,
                            salt="s", progress=False)
    assert summary.accepted == 1
    assert summary.skipped["modality_excluded"] == 2  # the CT and the 2-slice series, before the slice count


def test_cli_prints_the_summary(archive, tmp_path):
    (tmp_path / "salt").write_text("s")
    result = subprocess.run([sys.executable, "-m", "monai_ssl", "index", str(archive), "--out",
                             str(tmp_path / "list.json"), "--workers", "2", "--salt-file", str(tmp_path / "salt")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 series accepted, 2 items skipped" in result.stdout
    assert "not_dicom: 1" in result.stdout and "too_few_slices: 1" in result.stdout
    assert "DOE" not in result.stdout + result.stderr


def test_missing_archive_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        index_archive(str(tmp_path / "absent"), str(tmp_path / "l.json"))


def test_the_pretraining_bundle_reads_the_datalist(archive, tmp_path):
    from monai.bundle import ConfigWorkflow

    out = tmp_path / "index" / "datalist.json"
    index_archive(str(archive), str(out), salt="s", progress=False)
    flow = ConfigWorkflow(config_file=str(PRETRAINING / "train.json"), workflow_type="train",
                          **{**TINY_PRETRAINING, "demo": False, "datalist": str(out), **outputs(tmp_path / "run"),
                             "modality": "CT", "spacing": None})
    flow.initialize()
    flow.run()
    assert (tmp_path / "run" / "models" / "model.pt").is_file()
    assert len(flow.parser.get_parsed_content("train#files")) == 2


def test_outputs_follow_the_umask_so_a_team_can_read_them(archive, tmp_path):
    """Datalist, report and converted volumes are created like any file (0644 under umask 022), not mkstemp's
    0600."""
    previous = os.umask(0o022)
    try:
        out = tmp_path / "index" / "datalist.json"
        index_archive(str(archive), str(out), salt="s", progress=False)
    finally:
        os.umask(previous)
    written = [p for p in (tmp_path / "index").rglob("*") if p.is_file()]
    assert any(p.suffix == ".gz" for p in written) and out in written
    assert {p.name: oct(p.stat().st_mode)[-3:] for p in written} == {p.name: "644" for p in written}


def test_an_index_that_accepts_nothing_exits_non_zero_with_the_reasons(tmp_path):
    """An empty datalist is not a success to pretrain on: the command fails and says why."""
    archive = tmp_path / "archive"
    archive.mkdir()
    for index in range(3):
        (archive / f"notes{index}.txt").write_text("not an image")
    (archive / "empty.dcm").write_bytes(b"")
    (tmp_path / "salt").write_text("s")
    result = subprocess.run([sys.executable, "-m", "monai_ssl", "index", str(archive), "--out",
                             str(tmp_path / "list.json"), "--salt-file", str(tmp_path / "salt")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("monai-ssl index: no series accepted from 4 files; the commonest reasons: "
                                "not_dicom (3), empty_file (1).")
