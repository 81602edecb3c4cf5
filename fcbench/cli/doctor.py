"""`fcbench doctor`: what this machine has for fcbench (Docker, NVIDIA runtime, GPUs, registry...).

Key names: `Check`, `run_checks`. Each check answers ok or missing with what to do; the command
always exits 0.
"""

from __future__ import annotations

import shutil
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

__all__ = ["Check", "doctor", "run_checks"]

REGISTRY = "127.0.0.1:5000"


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def _python() -> list[Check]:
    return [Check("python", True, f"{sys.version.split()[0]} ({sys.executable})")]


def _fcbench() -> list[Check]:
    import fcbench

    return [Check("fcbench", True, f"{fcbench.__version__} ({fcbench.__file__.rsplit('/', 2)[0]})")]


def _docker(state: dict[str, Any]) -> list[Check]:
    from ..errors import FcbenchError
    from ..images.engine import START_DOCKER_HINT, connect, daemon_url

    try:
        client = connect(timeout=5)
        version = client.version()
    except FcbenchError as exc:
        del exc  # its message repeats the hint below
        return [Check("docker", False, f"no daemon answers at {daemon_url()}", START_DOCKER_HINT)]
    state["client"] = client
    info = client.info()
    state["info"] = info
    checks = [Check("docker", True, f"daemon {version.get('Version', '?')} (API "
                                    f"{version.get('ApiVersion', '?')}) at {daemon_url()}, "
                                    f"storage {info.get('Driver', '?')}")]
    runtimes = sorted((info.get("Runtimes") or {}).keys())
    hook = shutil.which("nvidia-container-runtime-hook") or shutil.which("nvidia-ctk")
    if "nvidia" in runtimes or hook:
        checks.append(Check("nvidia runtime", True,
                            "nvidia" if "nvidia" in runtimes else f"hook {hook}"))
    else:
        checks.append(Check(
            "nvidia runtime", False, f"not in docker info (runtimes: {', '.join(runtimes)}); "
            "GPU specs on the docker runtime fail",
            "install nvidia-container-toolkit, run `sudo nvidia-ctk runtime configure "
            "--runtime=docker`, restart dockerd"))
    return checks


def _gpus() -> list[Check]:
    from ..harness.gpus import discover_gpus

    gpus = discover_gpus()
    if not gpus:
        return [Check("gpus", False, "NVML sees no GPU",
                      "GPU specs need --virtual-gpus (e.g. 1x16GB) here; on a GPU machine "
                      "install the NVIDIA driver")]
    return [Check("gpus", True, "; ".join(f"#{g.index} {g.name} {g.total_mb} MB" for g in gpus))]


def _registry() -> list[Check]:
    try:
        with urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=2) as resp:
            ok = resp.status == 200
    except OSError as exc:
        return [Check("registry", False, f"nothing answers at {REGISTRY} ({exc.__class__.__name__})",
                      "start one on loopback: `sudo bash scripts/ci-services.sh` (Debian's "
                      "docker-registry with http.addr 127.0.0.1:5000)")]
    return [Check("registry", ok, f"http://{REGISTRY}/v2/ answers")]


def _tools() -> list[Check]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    checks = [Check("chromium", bool(browser), browser or "not installed",
                    "" if browser else "apt-get install chromium (for report checks)")]
    deb = shutil.which("debootstrap")
    checks.append(Check("debootstrap", bool(deb), deb or "not installed",
                        "" if deb else "apt-get install debootstrap (for `fcbench images base`)"))
    return checks


def _images(state: dict[str, Any]) -> list[Check]:
    client = state.get("client")
    if client is None:
        return [Check("images", False, "unknown (no Docker daemon)", "start Docker first")]
    from ..images.base import DEFAULT_BASE
    from ..images.build import RECIPES, default_tag, list_images

    have = {tag: i for i in list_images(client) for tag in i.tags}
    out = []
    for tag, how in [(DEFAULT_BASE, "fcbench images base")] + [
            (default_tag(n), f"fcbench images build {n}") for n in RECIPES]:
        image = have.get(tag)
        if image is not None:
            out.append(Check(f"image {tag}", True,
                             f"{image.size_bytes / 1e6:.0f} MB, {image.layers} layers"))
        else:
            out.append(Check(f"image {tag}", False, "not built", f"run `{how}`"))
    return out


def run_checks() -> list[Check]:
    """Every check, in report order; never raises."""
    state: dict[str, Any] = {}
    groups: list[Callable[[], list[Check]]] = [
        _python, _fcbench, lambda: _docker(state), _gpus, _registry, _tools,
        lambda: _images(state)]
    out: list[Check] = []
    for group in groups:
        try:
            out.extend(group())
        except Exception as exc:  # noqa: BLE001 - a broken check must not hide the others
            out.append(Check(getattr(group, "__name__", "check").strip("_<>"), False,
                             f"check failed: {type(exc).__name__}: {exc}"))
    return out


@click.command()
def doctor() -> None:
    """Print what this machine has: Python, Docker, NVIDIA runtime, GPUs, registry, images."""
    for check in run_checks():
        status = "ok" if check.ok else "missing"
        click.echo(f"{status:<8} {check.name}: {check.detail}")
        if check.fix:
            click.echo(f"{'':<8}   -> {check.fix}")
