"""`fcbench doctor`: what this machine has for fcbench (Docker, NVIDIA runtime, GPUs, registry...).

Key names: `Check`, `run_checks`. Each check answers ok or missing with what to do; the command
always exits 0. Every suggestion depends on what the checks found, so it names only commands that
can work here: no `sudo` where there is none (or where fcbench runs as root), no `systemctl`
without a running systemd, no NVIDIA set-up without an NVIDIA GPU, no image builds without a
Docker daemon; `fcbench` commands are written in backticks with options that exist.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

__all__ = ["Check", "doctor", "run_checks"]

REGISTRY = "127.0.0.1:5000"
DEFAULT_DOCKER_SOCKET = "unix:///var/run/docker.sock"


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


# ---- what this machine can run --------------------------------------------------------------

def _as_root(command: str) -> str:
    """`command` as this user can run it: as is for root, with sudo where there is sudo."""
    if os.geteuid() == 0:
        return f"`{command}`"
    if shutil.which("sudo"):
        return f"`sudo {command}`"
    return f"`{command}` as root"


def _systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def _apt_install(package: str) -> str | None:
    """How to install a Debian package here, or None without apt-get."""
    return _as_root(f"apt-get install {package}") if shutil.which("apt-get") else None


def _ci_services_script() -> Path | None:
    """scripts/ci-services.sh of a source checkout (absent from an installed package)."""
    import fcbench

    script = Path(fcbench.__file__).resolve().parent.parent / "scripts" / "ci-services.sh"
    return script if script.is_file() else None


def _nvidia_pci_devices() -> int:
    """NVIDIA display/3D controllers on the PCI bus (whether or not a driver is loaded)."""
    count = 0
    for dev in glob.glob("/sys/bus/pci/devices/*"):
        try:
            vendor = Path(dev, "vendor").read_text().strip()
            klass = Path(dev, "class").read_text().strip()
        except OSError:
            continue
        if vendor == "0x10de" and klass.startswith("0x03"):
            count += 1
    return count


def _nvml_gpus(state: dict[str, Any]) -> list[Any]:
    if "gpus" not in state:
        from ..harness.gpus import discover_gpus

        state["gpus"] = discover_gpus()
    return state["gpus"]


def _default_daemon_answers() -> bool:
    try:
        import docker

        client = docker.DockerClient(base_url=DEFAULT_DOCKER_SOCKET, timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - any failure means "no daemon there"
        return False


def _start_docker_hint() -> str:
    host = os.environ.get("DOCKER_HOST")
    if host and host != DEFAULT_DOCKER_SOCKET and _default_daemon_answers():
        return (f"a dockerd answers at {DEFAULT_DOCKER_SOCKET}: `unset DOCKER_HOST` to use it "
                f"(DOCKER_HOST is {host})")
    ways = []
    if _systemd_running():
        ways.append(f"start it with {_as_root('systemctl start docker')}")
    elif shutil.which("dockerd"):
        ways.append(f"start it with {_as_root('dockerd --iptables=false --bridge=none &')}")
    script = _ci_services_script()
    if script is not None and shutil.which("apt-get"):
        ways.append(f"install and start it (and a registry) with {_as_root(f'bash {script}')}")
    elif not shutil.which("dockerd") and (how := _apt_install("docker.io")):
        ways.append(f"install it with {how}")
    ways.append("point DOCKER_HOST at a daemon that runs")
    return "; or ".join(ways)


# ---- checks ---------------------------------------------------------------------------------

def _python() -> list[Check]:
    return [Check("python", True, f"{sys.version.split()[0]} ({sys.executable})")]


def _fcbench() -> list[Check]:
    import fcbench

    return [Check("fcbench", True, f"{fcbench.__version__} ({fcbench.__file__.rsplit('/', 2)[0]})")]


def _docker(state: dict[str, Any]) -> list[Check]:
    from ..errors import FcbenchError
    from ..images.engine import connect, daemon_url

    try:
        client = connect(timeout=5)
        version = client.version()
    except FcbenchError as exc:
        del exc  # its message repeats the hint below
        return [Check("docker", False, f"no daemon answers at {daemon_url()}",
                      _start_docker_hint())]
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
    elif not _nvml_gpus(state):
        checks.append(Check(
            "nvidia runtime", False, f"not in docker info (runtimes: {', '.join(runtimes)}); "
            "not needed here: NVML sees no GPU, so GPU specs on the docker runtime run on "
            "virtual GPUs (on a GPU machine it comes from nvidia-container-toolkit)"))
    else:
        steps = []
        if shutil.which("nvidia-ctk") is None:
            how = _apt_install("nvidia-container-toolkit")
            steps.append(f"install nvidia-container-toolkit ({how} once NVIDIA's apt repository "
                         "is configured)" if how else "install nvidia-container-toolkit")
        steps.append(f"run {_as_root('nvidia-ctk runtime configure --runtime=docker')}")
        steps.append("restart dockerd")
        checks.append(Check(
            "nvidia runtime", False, f"not in docker info (runtimes: {', '.join(runtimes)}); "
            "GPU specs on the docker runtime cannot get this machine's GPUs", ", ".join(steps)))
    return checks


def _gpus(state: dict[str, Any]) -> list[Check]:
    gpus = _nvml_gpus(state)
    if gpus:
        return [Check("gpus", True, "; ".join(f"#{g.index} {g.name} {g.total_mb} MB"
                                              for g in gpus))]
    fix = ("none needed to run GPU specs: they go on virtual GPUs sized like their gpuType "
           "(16 GB for fc.gpu.tesla.1); choose others with "
           "`fcbench harness serve SPEC.yaml --virtual-gpus 2x24GB`")
    pci = _nvidia_pci_devices()
    if pci:
        fix += (f"; this machine has {pci} NVIDIA device(s) on the PCI bus that NVML cannot "
                "use: install the NVIDIA driver (nvidia-smi then lists them)")
    return [Check("gpus", False, "NVML sees no GPU", fix)]


def _registry() -> list[Check]:
    from ..http1 import HttpProtocolError
    from ..httpclient import HttpClient

    try:
        with HttpClient(f"http://{REGISTRY}", timeout=2) as client:
            ok = client.request("GET", "/v2/").status == 200
    except (OSError, HttpProtocolError) as exc:
        script = _ci_services_script()
        if script is not None and shutil.which("apt-get"):
            fix = (f"start one on loopback with {_as_root(f'bash {script}')} (Debian's "
                   "docker-registry with http.addr 127.0.0.1:5000)")
        elif shutil.which("docker-registry"):
            fix = ("start `docker-registry serve CONFIG.yml` with http.addr 127.0.0.1:5000 in "
                   "CONFIG.yml")
        elif how := _apt_install("docker-registry"):
            fix = f"install one with {how}, serving on 127.0.0.1:5000"
        else:
            fix = ("run a Docker registry on 127.0.0.1:5000 (only image pushes and "
                   "`fcbench coldstart profile --pull` need it)")
        return [Check("registry", False,
                      f"nothing answers at {REGISTRY} ({exc.__class__.__name__})", fix)]
    return [Check("registry", ok, f"http://{REGISTRY}/v2/ answers")]


def _tools() -> list[Check]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    how = _apt_install("chromium")
    checks = [Check("chromium", bool(browser), browser or "not installed (report checks use it)",
                    "" if browser or not how else how)]
    deb = shutil.which("debootstrap")
    how = _apt_install("debootstrap")
    checks.append(Check("debootstrap", bool(deb),
                        deb or "not installed (`fcbench images base` needs it)",
                        "" if deb or not how else how))
    return checks


def _sd_packages_missing() -> list[str]:
    return [name for name in ("torch", "diffusers", "transformers")
            if importlib.util.find_spec(name) is None]


def _images(state: dict[str, Any]) -> list[Check]:
    client = state.get("client")
    if client is None:
        return [Check("images", False, "unknown (no Docker daemon)",
                      "start Docker first (see the docker line)")]
    from ..images.base import DEFAULT_BASE
    from ..images.build import RECIPES, default_tag, list_images

    have = {tag: i for i in list_images(client) for tag in i.tags}
    base_missing = DEFAULT_BASE not in have
    need_debootstrap = base_missing and shutil.which("debootstrap") is None
    first = ""
    if need_debootstrap:
        how = _apt_install("debootstrap")
        first = f"install debootstrap ({how}), then " if how else "install debootstrap, then "
    out = []
    for tag, name in [(DEFAULT_BASE, None)] + [(default_tag(n), n) for n in RECIPES]:
        image = have.get(tag)
        if image is not None:
            out.append(Check(f"image {tag}", True,
                             f"{image.size_bytes / 1e6:.0f} MB, {image.layers} layers"))
            continue
        if name is None:
            fix = f"{first}run `fcbench images base`"
        elif name == "stable-diffusion" and (missing := _sd_packages_missing()):
            fix = (f"needs {', '.join(missing)} installed here first (the `sd` extra, see "
                   "docs/models.md); then run `fcbench images build stable-diffusion`")
        else:
            fix = f"{first}run `fcbench images build {name}`" + (
                " (it builds the base image first)" if base_missing and not first else "")
        out.append(Check(f"image {tag}", False, "not built", fix))
    return out


def run_checks() -> list[Check]:
    """Every check, in report order; never raises."""
    state: dict[str, Any] = {}
    groups: list[Callable[[], list[Check]]] = [
        _python, _fcbench, lambda: _docker(state), lambda: _gpus(state), _registry, _tools,
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
