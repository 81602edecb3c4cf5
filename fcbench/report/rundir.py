"""Run folders: `results/<YYYYmmdd-HHMMSS>-<name>[-N]/`, created fresh and never reused.

Key names: `RunFolder` (the one writer of ``run.yaml``, ``summary.json`` and ``instances.csv``
for every command that makes a run folder), `new_run_dir`, `host_info`.
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

from .._io import atomic_write
from ..secrets import mask_secrets

__all__ = ["RunFolder", "host_info", "mask_secrets", "new_run_dir"]

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


class RunFolder:
    """A run folder and the files every command writes the same way: atomically, secrets masked,
    host and versions in run.yaml.

    >>> folder = RunFolder.create("results", "coldstart-f")
    >>> folder.write_run_yaml({"title": "...", "experiment": "coldstart-profile"})
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, parent: str | Path, name: str) -> RunFolder:
        """A fresh folder (see `new_run_dir`): never an existing one."""
        return cls(new_run_dir(parent, name))

    def _replace(self, name: str, text: str) -> Path:
        return atomic_write(self.path / name, text)

    def write_run_yaml(self, doc: dict[str, Any]) -> Path:
        """run.yaml: `doc` with secret-looking values masked, plus ``host`` (versions, machine)."""
        import yaml

        body = {**doc, "host": doc.get("host") or host_info()}
        return self._replace("run.yaml", yaml.safe_dump(mask_secrets(body), sort_keys=False,
                                                        allow_unicode=True))

    def write_summary(self, summary: dict[str, Any]) -> Path:
        """summary.json (NaN and infinities become null)."""
        from .summary import write_summary

        return write_summary(summary, self.path / "summary.json")

    def write_instances(self, instances: list[dict[str, Any]]) -> Path:
        """instances.csv: one row per instance, nested fields flattened as ``key.sub``."""
        import csv

        rows = []
        for inst in instances:
            row: dict[str, Any] = {}
            for key, value in inst.items():
                if isinstance(value, dict):
                    for sub, v in value.items():
                        row[f"{key}.{sub}"] = v
                else:
                    row[key] = value
            rows.append(row)
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        path = self.path / "instances.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns or ["instance_id"])
            writer.writeheader()
            writer.writerows(rows)
        return path
