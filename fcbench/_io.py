"""Writing files so that a reader never sees half of one: the one atomic-write helper.

Key names: `atomic_write`. The content goes to a hidden temporary file in the same folder, is
flushed, and replaces the target in one `os.replace`, so an interrupted run leaves either the old
file or the new one, never a torn one; `mode` sets the new file's permissions from the start
(``0o600`` for a file only its owner may read).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(path: str | Path, data: str | bytes, *, mode: int = 0o644,
                 encoding: str = "utf-8", fsync: bool = False) -> Path:
    """Write `data` to `path` atomically; returns the path. `fsync` also forces the content to
    disk before the replace (for files a crash must not leave empty, at a cost per write).

    Raises:
        OSError: the folder cannot be written (the temporary file is removed).
    """
    path = Path(path)
    raw = data.encode(encoding) if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(raw)
            out.flush()
            if fsync:
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
