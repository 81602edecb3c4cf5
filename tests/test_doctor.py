"""`fcbench doctor`: one ok/missing line per capability, with what to do; always exit 0."""

from __future__ import annotations

import pytest
import os
import subprocess
import sys

# fixtures are imported by name so pytest finds them here
from docker_fixtures import docker_client, mobilenet_image, registry  # noqa: F401
from fcbench.cli.doctor import run_checks

pytestmark = pytest.mark.slow  # every test here starts processes or servers


def doctor(**env: str) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "fcbench", "doctor"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **env})
    return proc.returncode, proc.stdout


def lines_by_name(out: str) -> dict[str, str]:
    found = {}
    for line in out.splitlines():
        if line.startswith(("ok ", "missing ")):
            status, rest = line.split(None, 1)
            found[rest.split(": ", 1)[0]] = status
    return found


def test_doctor_without_a_daemon_says_how_to_start_it_and_exits_zero(tmp_path):
    code, out = doctor(DOCKER_HOST=f"unix://{tmp_path}/nothing.sock")
    assert code == 0
    status = lines_by_name(out)
    assert status["python"] == "ok" and status["fcbench"] == "ok"
    assert status["docker"] == "missing" and status["images"] == "missing"
    assert f"unix://{tmp_path}/nothing.sock" in out
    assert "dockerd" in out
    for name in ("gpus", "registry", "chromium", "debootstrap"):
        assert name in status


def test_doctor_with_a_daemon_reports_runtime_registry_and_images(docker_client, mobilenet_image,
                                                                   registry):
    code, out = doctor()
    assert code == 0
    status = lines_by_name(out)
    assert status["docker"] == "ok" and status["registry"] == "ok"
    assert status["image fcbench/base:bookworm"] == "ok"
    has_nvidia = "nvidia" in (docker_client.info().get("Runtimes") or {})
    assert status["nvidia runtime"] == ("ok" if has_nvidia else "missing")
    if not has_nvidia:
        assert "nvidia-container-toolkit" in out
    checks = {c.name: c for c in run_checks()}
    assert checks["docker"].ok and "API" in checks["docker"].detail
    assert checks["gpus"].ok == bool(checks["gpus"].ok and "MB" in checks["gpus"].detail)
