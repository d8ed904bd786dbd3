import subprocess
import sys

from monai_ssl.cli import main


def test_montage_renders_the_png(tmp_path, capsys):
    assert main(["montage", "--output-dir", str(tmp_path)]) == 0
    assert (tmp_path / "pretext_tasks.png").stat().st_size > 10_000
    assert str(tmp_path / "pretext_tasks.png") in capsys.readouterr().out


def test_demo_pretrains_then_fine_tunes_twice_and_prints_both_dice(tmp_path, capsys):
    assert main(["demo", "--output-dir", str(tmp_path), "--pretrain-epochs", "1", "--fine-tune-epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "scratch" in out and "pretrained" in out and "Validation Dice" in out
    assert str(tmp_path / "pretext_tasks.png") in out
    assert (tmp_path / "pretraining" / "models" / "model.pt").is_file()
    assert (tmp_path / "scratch" / "models" / "model.pt").is_file()
    assert (tmp_path / "pretrained" / "models" / "model.pt").is_file()


def test_module_entry_point_shows_help():
    result = subprocess.run([sys.executable, "-m", "monai_ssl", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "demo" in result.stdout and "montage" in result.stdout


def test_console_script_is_installed():
    import os
    import shutil

    script = shutil.which("monai-ssl", path=os.path.dirname(sys.executable))
    assert script is not None
    result = subprocess.run([script, "index", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--min-slices" in result.stdout and "--salt-file" in result.stdout
    assert "--salt SALT" not in result.stdout  # a secret on the command line would show in process lists


def test_web_filters_on_a_folder_are_refused(tmp_path):
    result = subprocess.run([sys.executable, "-m", "monai_ssl", "index", str(tmp_path), "--out",
                             str(tmp_path / "list.json"), "--limit", "3"], capture_output=True, text=True)
    assert result.returncode == 2 and "--limit filter a DICOMweb source" in result.stderr.strip().splitlines()[-1]
