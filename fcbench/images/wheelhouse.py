"""Wheelhouses: an image's Python wheels, downloaded on the host so `docker build` needs no network.

Key names: `pinned`, `wheelhouse`. Wheels are fetched once per requirement set with
``pip download --only-binary=:all:`` for the image's Python and cached under
``$FCBENCH_CACHE_DIR/wheelhouse/<hash>``; the image installs them with ``pip install --no-index``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from ..errors import RuntimeBackendError

__all__ = ["DEFAULT_PLATFORM", "cache_root", "pinned", "wheelhouse"]

#: glibc of Debian bookworm (and python:3.11-slim): wheels for this or any older glibc are taken.
DEFAULT_PLATFORM = "manylinux_2_36_x86_64"
_READY = ".complete"


def cache_root() -> Path:
    """``$FCBENCH_CACHE_DIR`` or ``~/.cache/fcbench``."""
    root = os.environ.get("FCBENCH_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache",
                                                                "fcbench")
    return Path(root)


def pinned(names: Sequence[str]) -> list[str]:
    """Pin each bare requirement to the version installed on this host (the tested one).

    Names that already carry a specifier, or are not installed here, are passed through.
    """
    out = []
    for name in names:
        if any(c in name for c in "=<>~!@ ;["):
            out.append(name)
            continue
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(name)
    return out


def wheelhouse(requirements: Sequence[str], *, python_version: str = "3.11",
               platform: str = DEFAULT_PLATFORM, extra_args: Sequence[str] = (),
               refresh: bool = False) -> Path:
    """A folder holding wheels for `requirements` (and their dependencies) plus pip itself.

    The folder also holds ``requirements.txt``. It is reused without network when it exists.

    Raises:
        RuntimeBackendError: pip could not find a wheel; the message holds pip's last lines.
    """
    reqs = sorted(set(requirements))
    key = hashlib.sha256("\n".join([python_version, platform, *extra_args, *reqs]).encode())
    dest = cache_root() / "wheelhouse" / key.hexdigest()[:16]
    if (dest / _READY).is_file() and not refresh:
        return dest
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    abi = "cp" + python_version.replace(".", "")
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--only-binary=:all:", "--python-version", python_version, "--implementation", "cp",
           "--abi", abi, "--abi", "abi3", "--abi", "none", *_platform_args(platform),
           "-d", str(tmp), *extra_args, "pip", *reqs]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise RuntimeBackendError(
            f"could not download wheels for Python {python_version} ({' '.join(reqs)}); check the "
            f"package index is reachable or the pins exist. pip said:\n{tail}")
    (tmp / "requirements.txt").write_text("\n".join(reqs) + "\n")
    (tmp / _READY).write_text(" ".join(cmd) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest


def _platform_args(platform: str) -> list[str]:
    """``--platform`` for `platform` and every older manylinux tag (pip does not infer them)."""
    head, sep, arch = platform.partition("_2_")
    if head != "manylinux" or not sep:
        return ["--platform", platform]
    minor, _, arch = arch.partition("_")
    tags = [f"manylinux_2_{m}_{arch}" for m in range(int(minor), 4, -1)]
    tags += [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    return [arg for tag in tags for arg in ("--platform", tag)]
