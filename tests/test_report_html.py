"""The HTML report: built from a real run folder, rebuilt by `fcbench report`, viewed in Chromium."""

from __future__ import annotations

import subprocess
import sys

from PIL import Image

from browser import dump_dom, screenshot


def test_report_is_self_contained_and_renders_in_chromium(tmp_path):
    spec = tmp_path / "f.yaml"
    spec.write_text("functionName: f\nenvironmentVariables:\n  FCBENCH_MODEL: sleep\n"
                    "  FCBENCH_STARTUP_MS: '100'\n  FCBENCH_SLEEP_MS: '5'\n")
    res = subprocess.run([sys.executable, "-m", "fcbench", "coldstart", "profile", str(spec),
                          "-n", "2", "--out", str(tmp_path / "res")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    run = next((tmp_path / "res").iterdir())
    report = run / "report.html"
    first = report.read_text()
    assert "data:image/png;base64," in first and 'href="phases.csv"' in first
    report.unlink()
    res = subprocess.run([sys.executable, "-m", "fcbench", "report", str(run)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and report.exists(), res.stderr
    html = report.read_text()
    assert "http://" not in html and "https://" not in html  # readable offline
    dom = dump_dom(report.as_uri())
    assert "Cold-start phases (ms)" in dom and "model_load" in dom and "<img" in dom
    png = screenshot(report.as_uri(), tmp_path / "shot.png")
    img = Image.open(png).convert("RGB")
    colors = img.resize((200, 300)).getcolors(maxcolors=100_000)
    assert colors is not None and len(colors) > 50  # text, tables and a plot, not a blank page


def test_report_of_a_missing_folder_is_a_clear_error(tmp_path):
    res = subprocess.run([sys.executable, "-m", "fcbench", "report", str(tmp_path / "nope")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "does not exist" in res.stderr
