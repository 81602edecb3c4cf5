"""Run folders: `results/<YYYYmmdd-HHMMSS>-<name>[-N]/`, created fresh and never reused.

Key names: `new_run_dir`, `host_info` (what run.yaml records of the machine). Reading and writing
a folder's files: `fcbench.results.folder.RunFolder`.
"""

from __future__ import annotations

import os
import platform
import re
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["host_info", "new_run_dir"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def new_run_dir(parent: str | Path, name: str, *, now: float | None = None) -> Path:
    """Create and return a fresh ``parent/<YYYYmmdd-HHMMSS>-<name>`` folder.

    When that name is taken (two runs in the same second), ``-2``, ``-3``, ... is appended; the
    folder is made with ``mkdir(exist_ok=False)``, so two processes never share one.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    safe = _UNSAFE.sub("-", name).strip("-") or "run"
    stem = f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}-{safe}"
    for n in range(1, 100_000):
        path = parent / (stem if n == 1 else f"{stem}-{n}")
        try:
            path.mkdir(exist_ok=False)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free run folder name under {parent} for {stem}; clean it up")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def host_info() -> dict[str, Any]:
    """Versions and host facts for run.yaml (no environment variables, no user names)."""
    from .. import __version__

    return {
        "fcbench": __version__,
        "locust": _version("locust"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "hostname": platform.node(),
        "cpus": os.cpu_count(),
    }
