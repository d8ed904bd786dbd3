"""The DICOMweb source of ``monai-ssl index``, against a real PACS: Orthanc with its DICOMweb plugin, started on a
free loopback port in a temporary folder, loaded over its REST API, stopped afterwards."""

import json
import os
import stat
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from monai_ssl.ingest import index_archive
from monai_ssl.ingest import dicomweb
from monai_ssl.ingest.dicomweb import PASSWORD_VARIABLE, USER_VARIABLE, DicomwebUnavailable, index_dicomweb
from tests.dicom_factory import write_enhanced, write_mosaic, write_series, write_time_series
from tests.orthanc import AVAILABLE, PASSWORD, USER, Orthanc

pytestmark = pytest.mark.skipif(not AVAILABLE, reason="Orthanc with its DICOMweb plugin is not installed (Debian "
                                "packages orthanc and orthanc-dicomweb)")


@pytest.fixture
def orthanc(tmp_path, monkeypatch):
    server = Orthanc(tmp_path / "orthanc")
    server.start()
    monkeypatch.setenv(USER_VARIABLE, USER)
    monkeypatch.setenv(PASSWORD_VARIABLE, PASSWORD)
    yield server
    server.stop()


def write_archive(root):
    """A CT volume, an MR time series of 3 volumes, a mosaic, an enhanced MR and a localizer (skipped)."""
    write_series(str(root / "ct"), count=12)
    write_time_series(root / "fmri")
    write_mosaic(str(root / "mosaic"), tiles=9, volumes=2)
    write_enhanced(str(root / "enhanced"))
    write_series(str(root / "localizer"), count=3, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))


def read(out):
    return json.loads((out / "list.json").read_text())["training"], json.loads((out / "list_report.json").read_text())


def test_indexing_the_pacs_gives_the_datalist_of_the_same_files_in_a_folder(tmp_path, orthanc):
    write_archive(tmp_path / "archive")
    orthanc.upload(tmp_path / "archive")
    folder = index_archive(str(tmp_path / "archive"), str(tmp_path / "folder" / "list.json"), salt="s",
                           min_slices=2, progress=False)
    web = index_dicomweb(orthanc.source, str(tmp_path / "web" / "list.json"), salt="s", min_slices=2,
                         progress=False)
    (folder_entries, folder_report), (web_entries, web_report) = read(tmp_path / "folder"), read(tmp_path / "web")
    assert web_entries == folder_entries and len(web_entries) == 1 + 3 + 2 + 1
    assert web.accepted == folder.accepted == 4 and web_report["skipped_counts"] == {"localizer": 1}
    assert web_report["skipped_counts"] == folder_report["skipped_counts"]
    for entry in web_entries:
        np.testing.assert_array_equal(np.asarray(nib.load(str(tmp_path / "web" / entry["image"])).dataobj),
                                      np.asarray(nib.load(str(tmp_path / "folder" / entry["image"])).dataobj))
    # nothing with patient data stays: no fetched DICOM in the cache, no name or ID in the outputs
    cache_files = [p for p in (tmp_path / "web").rglob("*") if p.is_file()]
    assert not [p for p in cache_files if p.suffix == ".dcm"]
    for path in cache_files:
        if path.suffix == ".json":
            assert "PAT-12345" not in path.read_text() and "DOE" not in path.read_text()


def test_filters_and_limit(tmp_path, orthanc):
    write_archive(tmp_path / "archive")
    orthanc.upload(tmp_path / "archive")
    ct = index_dicomweb(orthanc.source, str(tmp_path / "ct" / "list.json"), modalities=["CT"], salt="s",
                        min_slices=2, progress=False)
    assert ct.accepted == 1 and json.loads((tmp_path / "ct" / "list.json").read_text())["training"][0]["modality"] == "CT"
    one = index_dicomweb(orthanc.source, str(tmp_path / "one" / "list.json"), limit=1, salt="s", min_slices=2,
                         progress=False)
    assert one.accepted + sum(one.skipped.values()) == 1
    # the factory's studies are dated nowhere: a date range matches none of them
    dated = index_dicomweb(orthanc.source, str(tmp_path / "dated" / "list.json"), study_date_from="20200101",
                           study_date_to="20201231", salt="s", min_slices=2, progress=False)
    assert dated.accepted == 0 and dated.files == 0


def test_a_server_gone_mid_run_leaves_the_done_series_cached_and_a_rerun_finishes(tmp_path, orthanc, monkeypatch):
    write_archive(tmp_path / "archive")
    orthanc.upload(tmp_path / "archive")
    fetches = []
    fetch = dicomweb._index_one_series

    def fetch_then_stop_the_server(client, study, series, *args):
        fetches.append(series)
        outcome = fetch(client, study, series, *args)
        if len(fetches) == 2:
            orthanc.stop()
        return outcome

    monkeypatch.setattr(dicomweb, "_index_one_series", fetch_then_stop_the_server)
    out = str(tmp_path / "web" / "list.json")
    with pytest.raises(DicomwebUnavailable, match="series 3 of 5.*the 2 series before it are cached.*Run the same"):
        index_dicomweb(orthanc.source, out, salt="s", min_slices=2, progress=False, retries=0, timeout=5)
    assert len(list((tmp_path / "web" / "cache" / ".dicomweb").glob("*.json"))) == 2
    assert not (tmp_path / "web" / "list.json").exists()  # no datalist that looks complete

    orthanc.start()
    summary = index_dicomweb(orthanc.source, out, salt="s", min_slices=2, progress=False)
    assert len(fetches) == 2 + 1 + 3  # the third series again (its fetch was cut), then the last two
    assert len(set(fetches)) == 5
    assert summary.accepted == 4 and summary.skipped == {"localizer": 1}

    # a volume removed from the cache makes its series fetched again; the others are not
    entries = json.loads((tmp_path / "web" / "list.json").read_text())["training"]
    (tmp_path / "web" / entries[0]["image"]).unlink()
    index_dicomweb(orthanc.source, out, salt="s", min_slices=2, progress=False)
    assert len(fetches) == 7 and (tmp_path / "web" / entries[0]["image"]).exists()


def test_credentials_stay_out_of_the_command_line_and_the_logs(tmp_path, orthanc, monkeypatch):
    write_series(str(tmp_path / "archive" / "ct"), count=12)
    orthanc.upload(tmp_path / "archive")
    with pytest.raises(ValueError, match="credentials in the DICOMweb URL"):
        index_dicomweb(orthanc.source.replace("//", f"//{USER}:{PASSWORD}@"), str(tmp_path / "x.json"), salt="s")
    monkeypatch.setenv(PASSWORD_VARIABLE, "wrong")
    with pytest.raises(DicomwebUnavailable, match="credentials"):
        index_dicomweb(orthanc.source, str(tmp_path / "x.json"), salt="s", retries=0, progress=False)
    monkeypatch.setenv(PASSWORD_VARIABLE, PASSWORD)
    salt_file = tmp_path / "salt"
    salt_file.write_text("s")
    result = subprocess.run([sys.executable, "-m", "monai_ssl", "index", orthanc.source, "--out",
                             str(tmp_path / "cli" / "list.json"), "--salt-file", str(salt_file)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1 series accepted" in result.stdout
    written = "".join(p.read_text() for p in (tmp_path / "cli").glob("*.json"))
    assert PASSWORD not in result.stdout + result.stderr + written



def test_a_series_the_server_refuses_is_skipped_and_the_others_indexed(tmp_path, orthanc, monkeypatch):
    write_series(str(tmp_path / "archive" / "ct"), count=12)
    orthanc.upload(tmp_path / "archive")
    listed = dicomweb._list_series

    def with_a_deleted_series(*args, **kwargs):  # listed, then gone before its fetch: the server answers 404
        return listed(*args, **kwargs) + [("1.2.3.4", "1.2.3.4.5")]

    monkeypatch.setattr(dicomweb, "_list_series", with_a_deleted_series)
    summary = index_dicomweb(orthanc.source, str(tmp_path / "web" / "list.json"), salt="s", min_slices=2,
                             progress=False, retries=0)
    assert summary.accepted == 1 and summary.skipped == {"fetch_failed": 1}
    report = json.loads((tmp_path / "web" / "list_report.json").read_text())
    assert report["skipped"][0]["detail"].startswith("the server answered HTTP 4")


def test_staged_dicom_is_private_and_a_killed_runs_staging_is_swept(tmp_path, orthanc, monkeypatch):
    """Fetched DICOM holds patient data: it is staged in a folder only its owner can read, and what a killed run
    left there is deleted by the next run, while a running process's folder is left alone."""
    write_series(str(tmp_path / "archive" / "ct"), count=4)
    orthanc.upload(tmp_path / "archive")
    manifests = tmp_path / "web" / "cache" / ".dicomweb"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = [manifests / f"staging_{dead.stdout.strip()}_x", manifests / ("a" * 32)]  # a killed run, an older version
    live = manifests / f"staging_{os.getpid()}_y"
    for folder in (*stale, live):
        folder.mkdir(parents=True)
        (folder / "000000.dcm").write_bytes(b"patient data")
    modes = []
    original = dicomweb.index_files

    def index_files(staging, *args, **kwargs):
        modes.append((stat.S_IMODE(os.stat(staging).st_mode), len(os.listdir(staging))))
        return original(staging, *args, **kwargs)

    monkeypatch.setattr(dicomweb, "index_files", index_files)
    index_dicomweb(orthanc.source, str(tmp_path / "web" / "list.json"), salt="s", min_slices=2, progress=False)
    assert modes == [(0o700, 4)]
    assert not any(folder.exists() for folder in stale) and live.exists()
    assert sorted(p.name for p in manifests.iterdir() if p.is_dir()) == [live.name]
