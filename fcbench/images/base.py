"""The offline base image: a minimal Debian with Python 3, built on this machine, no registry needed.

Key names: `DEFAULT_BASE`, `BaseImage`, `build_base_image`. It runs ``debootstrap --variant=minbase``
against a Debian mirror (reachable here even though no container registry is), trims docs and apt
caches, and ``docker import``s the tree. An existing image is reused unless ``force``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RuntimeBackendError
from .engine import translated
from .wheelhouse import cache_root

if TYPE_CHECKING:
    import docker

__all__ = ["DEFAULT_BASE", "DEFAULT_MIRROR", "DEFAULT_SUITE", "BaseImage", "build_base_image"]

#: Tag of the offline base image; Debian bookworm's Python is 3.11, like the host's.
DEFAULT_BASE = "fcbench/base:bookworm"
DEFAULT_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"

# Removed from the tree before import: nothing in an inference image reads them.
_TRIM = ["var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
         "usr/share/info", "usr/share/locale", "usr/share/lintian", "var/log"]


@dataclass(frozen=True)
class BaseImage:
    """The result of `build_base_image`."""

    tag: str
    image_id: str
    size_bytes: int
    seconds: float
    built: bool  # False: it existed and was reused


def build_base_image(client: docker.DockerClient, *, tag: str = DEFAULT_BASE,
                     suite: str = DEFAULT_SUITE, mirror: str | None = None,
                     packages: tuple[str, ...] = ("python3",), force: bool = False,
                     log: Path | None = None) -> BaseImage:
    """Build (or reuse) a Debian `suite` image with `packages`, tagged `tag` (blocking).

    Args:
        mirror: Debian mirror URL (default ``$FCBENCH_DEBIAN_MIRROR`` or deb.debian.org).
        log: where debootstrap's output goes (default a file in the cache folder).

    Raises:
        RuntimeBackendError: not root, debootstrap missing or failing (the message names the log).
        DockerUnavailable: the daemon does not answer.
    """
    from docker import errors

    t0 = time.perf_counter()
    if not force:
        with translated(f"look up image {tag}"):
            try:
                image = client.images.get(tag)
            except errors.ImageNotFound:
                image = None
        if image is not None:
            return BaseImage(tag, image.id, int(image.attrs.get("Size", 0)),
                             time.perf_counter() - t0, built=False)
    if os.geteuid() != 0:
        raise RuntimeBackendError(
            "building the offline base image runs debootstrap, which needs root; run "
            "`sudo fcbench images base`, or on a machine that can pull use "
            "`--base python:3.11-slim`")
    if shutil.which("debootstrap") is None:
        raise RuntimeBackendError(
            "debootstrap is not installed; run `sudo apt-get install -y debootstrap` "
            "(or `bash scripts/ci-services.sh`), or pass --base python:3.11-slim where a "
            "registry is reachable")
    mirror = mirror or os.environ.get("FCBENCH_DEBIAN_MIRROR") or DEFAULT_MIRROR
    work = cache_root() / "base"
    work.mkdir(parents=True, exist_ok=True)
    log = log or work / "debootstrap.log"
    tmp = Path(tempfile.mkdtemp(prefix="rootfs-", dir=work))
    try:
        rootfs = tmp / "rootfs"
        cmd = ["debootstrap", "--variant=minbase", "--arch=amd64",
               f"--include={','.join(packages)}", suite, str(rootfs), mirror]
        with open(log, "wb") as out:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            raise RuntimeBackendError(
                f"debootstrap {suite} from {mirror} failed (exit {proc.returncode}); its log is "
                f"{log}. Check the mirror is reachable or pass --mirror.")
        for rel in _TRIM:
            target = rootfs / rel
            if target.is_dir():
                for child in target.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
        tar = tmp / "rootfs.tar"
        subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tar), "."],
                       check=True)
        repo, _, version = tag.rpartition(":") if ":" in tag.split("/")[-1] else (tag, "", "latest")
        changes = ["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   "ENV LANG=C.UTF-8", 'CMD ["python3"]',
                   f"LABEL fcbench.base={suite} fcbench.base.packages={','.join(packages)}"]
        with translated(f"import the base image {tag}"):
            client.api.import_image_from_file(str(tar), repository=repo, tag=version,
                                              changes=changes)
            image = client.images.get(tag)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return BaseImage(tag, image.id, int(image.attrs.get("Size", 0)), time.perf_counter() - t0,
                     built=True)
