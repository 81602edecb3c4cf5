"""`fcbench run --ui`: Locust's web UI with the "Cold starts" tab, in a real headless Chromium.

The browser test is skipped only when Chromium is not installed, and fails instead when
FCBENCH_REQUIRE_BROWSER=1 (CI installs `chromium` and `chromium-driver`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from fcbench._net import free_port

pytestmark = pytest.mark.slow  # every test here starts processes or servers

SCREENSHOT = Path(os.environ.get("FCBENCH_WEBUI_SCREENSHOT", "/tmp/webui.png"))


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - not up yet
            last_exc = exc
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_exc})")


@pytest.fixture(scope="module")
def ui_run(tmp_path_factory):
    """A run with the web UI on a free port: a 6 s plan with cold starts, UI kept up after."""
    import subprocess
    import sys

    import yaml

    tmp = tmp_path_factory.mktemp("ui")
    port = free_port()
    wl = tmp / "ui.yaml"
    wl.write_text(yaml.safe_dump({
        "name": "ui",
        "target": {"kind": "local", "functions": [{
            "functionName": "f",
            "environmentVariables": {"FCBENCH_MODEL": "sleep", "FCBENCH_SLEEP_MS": "50",
                                     "FCBENCH_STARTUP_MS": "300"},
            "harness": {"idleTimeout": 60, "maxInstances": 5}}]},
        "duration": 6, "plan": {"kind": "constant", "rate": 8},
        "output": str(tmp / "results")}))
    proc = subprocess.Popen([sys.executable, "-m", "fcbench", "run", str(wl), "--ui",
                             "--autostart", "--web-port", str(port), "--ui-linger", "120",
                             "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _get_json(f"{base}/fcbench/cold-starts")["cold"] > 0, 60,
              "a cold start to be counted")
        yield proc, base, tmp / "results"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def test_cold_starts_endpoint_counts_from_the_run(ui_run):
    proc, base, _ = ui_run
    # Live instances come from the harness, cached for a second.
    data = _wait(lambda: (d := _get_json(f"{base}/fcbench/cold-starts"))["live_instances"] and d,
                 10, "live instances")
    assert data["cold"] >= 1 and data["requests"] >= data["cold"]
    assert 1 <= data["live_instances"] <= 5 and data["recent_cold_ms"]
    # a cold request waits for (the rest of) a 300 ms start: the one that started an instance
    # waits it whole; one that joined a start under way (its starter was served elsewhere
    # first) waits less, but never nothing
    assert max(data["recent_cold_ms"]) > 300 and min(data["recent_cold_ms"]) > 0
    assert data["p_cold_lo"] <= data["p_cold"] <= data["p_cold_hi"]
    stats = _get_json(f"{base}/stats/requests")
    tab = [t for t in stats["extended_stats"] if t["key"] == "cold-starts"]
    assert tab and tab[0]["data"][0]["metric"] == "Cold starts"


def _chrome():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None
    missing = [n for n, ok in (("chromium", chromium), ("chromium-driver", driver),
                               ("selenium", webdriver)) if not ok]
    if missing:
        why = f"{', '.join(missing)} not installed (apt-get install chromium chromium-driver; " \
              "pip install selenium)"
        if os.environ.get("FCBENCH_REQUIRE_BROWSER") == "1":
            pytest.fail(f"a browser is required (FCBENCH_REQUIRE_BROWSER=1) but {why}")
        pytest.skip(why)
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager reach out
    profile = tempfile.mkdtemp(prefix="fcbench-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", "--window-size=1400,900"):
        opts.add_argument(flag)
    return webdriver.Chrome(options=opts, service=Service(driver)), profile


def test_cold_starts_tab_in_chromium(ui_run):
    from selenium.webdriver.common.by import By

    proc, base, results = ui_run
    browser, profile = _chrome()
    try:
        browser.get(base + "/")
        tab = _wait(lambda: [t for t in browser.find_elements(By.CSS_SELECTOR, "[role=tab]")
                             if t.text.strip().lower() == "cold starts"], 30,
                    "the Cold starts tab")[0]
        tab.click()

        def cold_count() -> int | None:
            for row in browser.find_elements(By.CSS_SELECTOR, "table tr"):
                cells = [c.text.strip() for c in row.find_elements(By.CSS_SELECTOR, "td")]
                if len(cells) == 2 and cells[0] == "Cold starts" and cells[1].isdigit():
                    return int(cells[1])
            return None

        count = _wait(cold_count, 30, "the Cold starts table")
        assert count > 0
        assert "tab=cold-starts" in browser.current_url
        page = browser.find_element(By.TAG_NAME, "body").text
        assert "P(cold)" in page and "Live instances" in page
        assert "Latest cold-start latencies" in page
        browser.save_screenshot(str(SCREENSHOT))
        assert SCREENSHOT.stat().st_size > 10_000
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)
    # The plan ends on its own; the UI stays up; Ctrl-C then closes it without calling the
    # complete run interrupted.
    _wait(lambda: _get_json(f"{base}/stats/requests")["state"] == "stopped", 60,
          "the run to finish")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    run = next(results.iterdir())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["count"] == 48 and summary["interrupted"] is False
    assert summary["cold_starts"] >= count
