"""monai_ssl.utils.atomic_path: all or nothing, and files get the user's umask (not mkstemp's 0600)."""

import os

import pytest

from monai_ssl.utils import atomic_path, atomic_write_text


@pytest.mark.parametrize("umask, mode", [(0o022, "644"), (0o077, "600")])
def test_new_files_follow_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        path = atomic_write_text(str(tmp_path / "scores.json"), "{}")
    finally:
        os.umask(previous)
    assert oct(os.stat(path).st_mode)[-3:] == mode


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / "scores.json")
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(path) as temporary:
            with open(temporary, "w") as f:
                f.write("partial")
            raise RuntimeError("disk full")
    assert open(path).read() == "old" and os.listdir(tmp_path) == ["scores.json"]
