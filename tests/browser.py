"""Headless Chromium for tests (Debian's `chromium`; `.ci/run` installs it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

#: Flags for a closed network: no background connections, no sandbox as root.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]


def chromium() -> str:
    """Path of the Chromium binary, or skip (fail when FCBENCH_REQUIRE_BROWSER=1)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("FCBENCH_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is required (FCBENCH_REQUIRE_BROWSER=1) but not installed; "
                        "apt-get install chromium chromium-driver")
        pytest.skip("Chromium is not installed (apt-get install chromium chromium-driver)")
    return path


def run_chromium(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run headless Chromium once with a fresh profile folder."""
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


def screenshot(url: str, out: Path, size: str = "1200,1800") -> Path:
    res = run_chromium(f"--screenshot={out}", f"--window-size={size}", url)
    assert out.exists(), res.stderr[-2000:]
    return out


def dump_dom(url: str) -> str:
    return run_chromium("--dump-dom", "--virtual-time-budget=2000", url).stdout
