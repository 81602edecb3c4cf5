"""The HTML report: built from real run folders, rebuilt by `fcbench report`, viewed in Chromium."""

from __future__ import annotations

import subprocess
import sys

from PIL import Image

from browser import dump_dom, image_widths, screenshot


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
    assert 'id="waterfall"' in dom and "unknown, not zero" in dom
    widths = image_widths(report, tmp_path)
    assert widths.get("waterfall.png", 0) > 0 and widths.get("phases.png", 0) > 0, widths
    png = screenshot(report.as_uri(), tmp_path / "shot.png")
    img = Image.open(png).convert("RGB")
    colors = img.resize((200, 300)).getcolors(maxcolors=100_000)
    assert colors is not None and len(colors) > 50  # text, tables and a plot, not a blank page


def test_report_of_a_missing_folder_is_a_clear_error(tmp_path):
    res = subprocess.run([sys.executable, "-m", "fcbench", "report", str(tmp_path / "nope")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "does not exist" in res.stderr


def test_report_of_a_measured_run_shows_instances_latency_and_cost(sleep_workload, fcbench_run,
                                                                  tmp_path):
    wl = sleep_workload({"kind": "poisson", "rate": 12}, duration=3, sleep_ms=40,
                        startup_ms=150, idle=1, max_instances=4, concurrency=1)
    res = fcbench_run("run", str(wl), "--no-progress", timeout=120)
    assert res.returncode == 0, res.stderr
    [run] = list((tmp_path / "results").iterdir())
    for name in ("timeline.png", "in_flight.png", "latency_cdf.png", "cost.png"):
        assert (run / "plots" / name).is_file(), name
    report = run / "report.html"
    widths = image_widths(report, tmp_path)
    for name in ("timeline.png", "in_flight.png", "latency.png", "latency_cdf.png", "cost.png"):
        assert widths.get(name, 0) > 0, (name, widths)
    dom = dump_dom(report.as_uri())
    for text in ('id="instances"', 'id="latency"', 'id="cost"', "Instances over time",
                 "fc-doc-simple", "fc3-cu-2024-08"):
        assert text in dom, text
    # `fcbench report` draws them again from the folder alone
    for png in (run / "plots").glob("*.png"):
        if png.name != "latency.png":
            png.unlink()
    assert fcbench_run("report", str(run), timeout=60).returncode == 0
    assert (run / "plots" / "timeline.png").is_file() and (run / "plots" / "cost.png").is_file()
