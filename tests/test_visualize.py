import matplotlib.image
import pytest

from monai_ssl.data import make_phantom
from monai_ssl.visualize import render_pretext_montage


def test_montage_of_the_phantom_is_a_png(tmp_path):
    path = render_pretext_montage(make_phantom(0, shape=(64, 64, 48))[0], str(tmp_path / "sub" / "m.png"))
    assert path.endswith("m.png")
    picture = matplotlib.image.imread(path)
    assert picture.shape[0] > 500 and picture.shape[1] > 1000
    assert picture[..., :3].std() > 0.1  # not a blank canvas


def test_montage_rejects_non_3d_input(tmp_path):
    with pytest.raises(ValueError, match="channel-first 3D"):
        render_pretext_montage(make_phantom(0)[0][0], str(tmp_path / "m.png"))


def test_montage_of_real_brats(brats_flair, tmp_path):
    path = render_pretext_montage(brats_flair, str(tmp_path / "brats.png"), seed=1)
    assert matplotlib.image.imread(path).shape[1] > 1000


def test_importing_and_rendering_leave_the_matplotlib_backend_alone(tmp_path):
    import subprocess
    import sys

    code = ("import matplotlib; matplotlib.use('svg'); import monai_ssl.visualize as v; "
            "from monai_ssl.data import make_phantom; "
            f"v.render_pretext_montage(make_phantom(0, shape=(48, 48, 48))[0], r'{tmp_path / 'm.png'}'); "
            "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
