"""The families pretraining script: each family's bundle command, and a run of two families on tiny settings."""

import json
import subprocess
import sys

import pytest
from monai.bundle import ConfigParser

from monai_ssl.bundle import check_pretext_setup
from tests.helpers import REPO, write_phantom_images

sys.path.insert(0, str(REPO / "benchmarks"))
from pretrain_families import BUNDLE_TRAIN, DEFAULT_CONFIG, FAMILIES, family_command  # noqa: E402

SCRIPT = str(REPO / "benchmarks" / "pretrain_families.py")


def test_family_command_changes_only_the_tasks_and_their_arguments():
    command = family_command("contrastive_local", "out/contrastive_local", DEFAULT_CONFIG, 10, datalist="pool.json",
                             overrides={"bf16_autocast": "true"})
    assert command[1:] == ["-m", "monai.bundle", "run", "--config_file", repr([BUNDLE_TRAIN, DEFAULT_CONFIG]),
                           "--tasks", "['contrastive']", "--max_epochs", "10", "--output_dir", "out/contrastive_local",
                           "--task_args", "{'contrastive': {'local_weight': 1.0}}", "--datalist", "pool.json",
                           "--bf16_autocast", "true"]
    # the bundle's own task arguments where the family sets none
    assert "--task_args" not in family_command("mix", "out", DEFAULT_CONFIG, 10)
    with pytest.raises(ValueError, match="unknown family 'simclr'"):
        family_command("simclr", "out", DEFAULT_CONFIG, 10)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_starts_on_the_pool_settings(name):
    # what the bundle checks at start-up, on the config each family's command builds
    parser = ConfigParser()
    parser.read_config([str(REPO / BUNDLE_TRAIN), str(REPO / DEFAULT_CONFIG)])
    parser["tasks"] = FAMILIES[name]["tasks"]
    if FAMILIES[name]["task_args"] is not None:
        parser["task_args"] = FAMILIES[name]["task_args"]
    model = parser.get_parsed_content("model")
    assert list(model.tasks) == FAMILIES[name]["tasks"]
    check_pretext_setup(model, parser["roi_size"])


def test_two_families_run_export_and_report(tmp_path):
    images = [str(p) for p in write_phantom_images(tmp_path / "images", 4, size=40)]
    datalist = tmp_path / "pool.json"
    datalist.write_text(json.dumps({"training": [{"image": p} for p in images[:2]],
                                    "validation": [{"image": p} for p in images[2:]]}))
    settings = ["epoch_length=1", "val_interval=1", "batch_size=2", "samples_per_volume=1", "roi_size=[32,32,32]",
                "network_def#channels=[8,16,32]", "network_def#strides=[2,2]", "network_def#num_res_units=1",
                "task_args={'contrastive':{'view_size':[20,20,20]}}", "cache=none", "num_workers=0"]
    result = subprocess.run([sys.executable, SCRIPT, "--families", "masked_volume", "contrastive", "--output-root",
                             str(tmp_path / "runs"), "--datalist", str(datalist), "--epochs", "1", "--parallel", "1",
                             "--export-dir", str(tmp_path / "export"), "--set", *settings],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "2 of 2 families finished"
    summary = json.loads((tmp_path / "runs" / "summary.json").read_text())
    assert {n: (r["status"], r["iteration"]) for n, r in summary.items()} == {
        "masked_volume": ("finished", 1), "contrastive": ("finished", 1)}
    assert summary["contrastive"]["pretext_scores"]["history"][0]["iteration"] == 1
    for name in summary:
        assert {p.name for p in (tmp_path / "export" / name).iterdir()} == {"model.pt", "pretext_checkpoint.pt"}
