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


_PROBE = ("<script>addEventListener('load', () => { const out = document.createElement('pre');"
          " out.id = 'fcbench-probe'; out.textContent = JSON.stringify([...document.images]"
          ".map(i => [i.alt, i.naturalWidth])); document.body.appendChild(out); });</script>")


def image_widths(page: Path, tmp: Path) -> dict[str, int]:
    """`naturalWidth` of every image of `page` by its alt text, as Chromium decoded them (0: it
    did not load). The page is copied into `tmp` with a probe script; the original is left
    alone."""
    import html
    import json
    import re

    probe = tmp / f"{page.stem}.probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"),
                     encoding="utf-8")
    dom = dump_dom(probe.as_uri())
    found = re.search(r'<pre id="fcbench-probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe did not run: " + dom[-500:]
    return dict(json.loads(html.unescape(found.group(1))))
