"""`monai-ssl zoo-release`: the bundle as a Model Zoo pull request takes it, every weight in large_files.yml with the
md5 of its release asset, a TorchScript model.ts equal to the eager network, no file over the Zoo's 1 MB limit."""

import hashlib
import shutil
import subprocess
import sys

import pytest
import torch
import yaml
from monai.bundle import ConfigParser

from monai_ssl.bundle.release import LARGE_FILE_LIMIT, zoo_release
from tests.helpers import PRETRAINING, SEGMENTATION

URL = "https://github.com/example/monai-ssl/releases/download/v0.1.0"


def test_release_of_the_pretraining_bundle(tmp_path):
    written = zoo_release(str(PRETRAINING.parent), URL, str(tmp_path / "release"))
    folder = tmp_path / "release" / "pretext_pretraining"
    assert not (folder / "models").exists() and "configs/inference.json" in written["bundle"]
    assert all((folder / f).stat().st_size <= LARGE_FILE_LIMIT for f in written["bundle"])
    listed = yaml.safe_load((folder / "large_files.yml").read_text())["large_files"]
    assert [e["path"] for e in listed] == ["models/model.pt", "models/model.ts", "models/pretext_checkpoint.pt"]
    for entry in listed:
        asset = tmp_path / "release" / "assets" / entry["url"].rsplit("/", 1)[1]
        assert entry["url"] == f"{URL}/pretext_pretraining_{entry['path'].split('/')[1]}"
        assert entry["hash_type"] == "md5" and entry["hash_val"] == hashlib.md5(asset.read_bytes()).hexdigest()
    # the shipped weights are untouched in the repository, and model.ts is network_def with them
    assert (PRETRAINING.parent / "models" / "model.pt").is_file()
    parser = ConfigParser()
    parser.read_config(str(PRETRAINING / "inference.json"))
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(PRETRAINING.parent / "models" / "model.pt", weights_only=True))
    scripted = torch.jit.load(str(tmp_path / "release" / "assets" / "pretext_pretraining_model.ts"))
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), network.eval()(x))


def test_refusals_name_the_fix(tmp_path):
    untrained = tmp_path / "untrained"
    shutil.copytree(SEGMENTATION.parent, untrained, ignore=shutil.ignore_patterns("models", "outputs"))
    with pytest.raises(ValueError, match="has no models/model.pt: train"):
        zoo_release(str(untrained), URL, str(tmp_path / "a"))
    with pytest.raises(ValueError, match="url_prefix must be the http"):
        zoo_release(str(PRETRAINING.parent), "releases/v1", str(tmp_path / "b"))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x").write_text("x")
    with pytest.raises(ValueError, match="is not empty"):
        zoo_release(str(PRETRAINING.parent), URL, str(tmp_path / "c"))


def test_command_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "monai_ssl", "zoo-release", str(PRETRAINING.parent), "--url-prefix",
                             URL, "--out", str(tmp_path / "r"), "--name", "monai_ssl_pretext_pretraining"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "monai_ssl_pretext_pretraining_model.pt" in result.stdout
    assert (tmp_path / "r" / "monai_ssl_pretext_pretraining" / "large_files.yml").is_file()
