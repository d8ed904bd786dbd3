"""Small helpers shared across the package."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

__all__ = ["atomic_path", "atomic_write_text"]


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path beside ``path``; when the block succeeds, fsync it and rename it to ``path``.

    A crash at any point leaves either the previous file or the complete new one, never a partial file; on an
    exception the temporary file is removed. The file gets the user's umask, like any newly created file.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temporary = os.path.join(directory, f".tmp-{uuid.uuid4().hex}{suffix}")
    # created with mode 0666 so that the kernel applies the umask (mkstemp would create 0600)
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield temporary
        with open(temporary, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def atomic_write_text(path: str, text: str) -> str:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, suffix=".tmp") as temporary:
        with open(temporary, "w") as f:
            f.write(text)
    return path
