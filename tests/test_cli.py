import subprocess
import sys

from monai_ssl.cli import main


def test_demo_renders_the_montage(tmp_path, capsys):
    assert main(["demo", "--output-dir", str(tmp_path)]) == 0
    assert (tmp_path / "pretext_tasks.png").stat().st_size > 10_000
    assert str(tmp_path / "pretext_tasks.png") in capsys.readouterr().out


def test_module_entry_point_shows_help():
    result = subprocess.run([sys.executable, "-m", "monai_ssl", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "demo" in result.stdout
