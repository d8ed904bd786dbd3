import matplotlib.image
import numpy as np
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


def test_relative_position_patches_are_shown_in_the_overview_plane():
    """Each patch panel is the part of the overview slice inside its box: the same plane, the same orientation."""
    import numpy as np

    from monai_ssl.transforms import RandRelativePatchPosition
    from monai_ssl.visualize import relative_position_views

    volume = np.random.default_rng(0).random((1, 40, 40, 40)).astype(np.float32)
    for seed in range(6):
        transform = RandRelativePatchPosition(patch_size=8, gap=1, jitter=1)
        transform.set_random_state(seed)
        pair = np.asarray(transform(volume))
        offset = transform.offsets[transform.label]
        views = relative_position_views(volume[0], pair, transform.centre_start, transform.neighbour_start, offset, 8)
        assert offset[views["axis"]] == 0 or not np.any(offset == 0)  # side by side whenever possible
        for name, (x, y) in zip(("centre", "neighbour"), views["boxes"]):
            start = transform.centre_start if name == "centre" else transform.neighbour_start
            if name == "neighbour" and not start[views["axis"]] <= views["index"] < start[views["axis"]] + 8:
                continue  # the neighbour's jitter moved it off this slice
            np.testing.assert_array_equal(views[name], views["overview"][y:y + 8, x:x + 8])


def test_montage_labels_fit_the_figure_and_do_not_overlap():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from monai_ssl.visualize import pretext_montage_figure

    fig = pretext_montage_figure(make_phantom(0, shape=(64, 64, 48))[0])
    renderer = FigureCanvasAgg(fig).get_renderer()
    page = fig.bbox
    boxes = [ax.get_tightbbox(renderer) for ax in fig.axes if ax.get_visible() and ax.axison]
    for box in boxes:
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1
    overlaps = [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if a.overlaps(b)]
    assert overlaps == []


def test_the_montage_shows_every_registered_task():
    """A newly registered task without a montage row fails here."""
    from monai_ssl import list_tasks
    from monai_ssl.visualize import MONTAGE_ROWS, pretext_montage_figure

    assert sorted(MONTAGE_ROWS) == sorted(list_tasks())
    fig = pretext_montage_figure(make_phantom(0, shape=(64, 64, 48))[0])
    titles = [text.get_text() for text in fig.texts]
    assert len(titles) == len(MONTAGE_ROWS)
    for keyword, title in zip(("jigsaw", "rotation", "relative patch", "colorization", "restoration", "contrastive",
                               "exemplar", "cpc", "masked volume"), titles):
        assert keyword in title.lower()


def test_segmentation_montage_overlays_the_labels(tmp_path):
    from matplotlib.image import imread

    from monai_ssl.data import PHANTOM_LABEL_NAMES, make_phantom
    from monai_ssl.visualize import render_segmentation_montage

    image, label = make_phantom(seed=0, shape=(48, 48, 48))
    path = render_segmentation_montage(image, label, str(tmp_path / "seg.png"), PHANTOM_LABEL_NAMES, title="phantom")
    pixels = imread(path)
    assert pixels.shape[:2] == (600, 900)
    bare = render_segmentation_montage(image, np.zeros_like(label), str(tmp_path / "bare.png"), PHANTOM_LABEL_NAMES)
    assert not np.array_equal(imread(bare), pixels)  # the overlay shows
    with pytest.raises(ValueError, match="one 3D grid"):
        render_segmentation_montage(image, label[..., :10], str(tmp_path / "x.png"), PHANTOM_LABEL_NAMES)
