"""The HTML report: built from real run folders, rebuilt by `fcbench report`, viewed in Chromium."""

from __future__ import annotations

import pytest
import subprocess
import sys

from PIL import Image

from browser import dump_dom, image_widths, screenshot


@pytest.mark.slow
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


@pytest.mark.slow
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


# --- issue #18: numbers a reader can read, tables that scroll in their own box ---------------

def test_numbers_are_written_by_kind():
    from fcbench.report.html import column_header, column_kind, format_number

    assert format_number(4 / 9, "probability") == "0.4444"
    assert format_number("0.4444444444444444", "probability") == "0.4444"
    assert format_number(123.456789, "ms") == "123.5" and format_number(0.0123, "ms") == "0.012"
    assert format_number(12345.6789, "money") == "12,345.68"
    assert format_number(0.0034567, "money") == "0.0035"  # not 0.00 for a small price
    assert format_number(0, "money") == "0.00"
    assert format_number("1788.0", "count") == "1,788" and format_number(7.4, "count") == "7"
    assert format_number(60.0) == "60" and format_number(0.333333) == "0.333"
    assert format_number(1234.5678) == "1,234.6"
    assert format_number(0.25, "share") == "25.0%"
    for empty in (None, "", "nan", float("nan")):
        assert format_number(empty, "ms") == "–"
    assert format_number("True") == "yes" and format_number(False) == "no"
    assert format_number("results/x") == "results/x"  # text stays text
    assert [column_kind(c) for c in ("p_cold_hi", "p99_from_intended_ms", "fc-doc-simple_CNY_"
                                     "per_day", "requests_throttled_429", "idleTimeout_s",
                                     "minInstances", "rate_rps")] == [
        "probability", "ms", "money", "count", "seconds", "count", "number"]
    assert column_header("idleTimeout_s") == "idleTimeout (s)"
    assert column_header("fc-doc-simple_CNY_per_day") == "fc-doc-simple (CNY/day)"
    assert column_header("fc3-cu-2024-08_USD_per_1000_requests") == \
        "fc3-cu-2024-08 (USD/1000 requests)"
    assert column_header("p50_ms") == "p50 (ms)" and column_header("p_cold") == "P(cold)"


#: The columns of a what-if CSV (`fcbench.sim.whatif.WhatIfRow.flat`), price columns apart.
WHAT_IF_COLUMNS = ["minInstances", "idleTimeout_s", "as_run", "requests_sent", "p_cold",
                   "p_cold_lo", "p_cold_hi", "p99_from_intended_ms", "p99_from_intended_ms_lo",
                   "p99_from_intended_ms_hi", "requests_throttled_429", "instances_started",
                   "source", "bootstrap_replications"]


def _what_if_folder(tmp_path, columns: int = 1):
    """A folder with a summary and a what-if CSV full of raw floats, as Python writes them;
    `columns` price tables make the table as wide as a many-table what-if."""
    import csv
    import json

    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"count": 18, "cold_starts": 8}))
    prices = [f"table{j}_CNY_per_{per}{end}" for j in range(columns)
              for per in ("day", "1000_requests") for end in ("", "_lo", "_hi")]
    with open(run / "whatif-20261201-120000.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(WHAT_IF_COLUMNS + prices)
        for k, idle in enumerate((5.0, 60.0, 300.0)):
            measured = k == 0
            w.writerow([float(k % 2), idle, k == 1, 18, 8 / 18 / (k + 1), 0.2222222222222222,
                        0.7777777777777778, 759.6512345678, "" if measured else 701.23456,
                        "" if measured else 812.98765, 0, 8 - k,
                        "measured" if measured else "simulated", 0 if measured else 200]
                       + [v for _ in range(columns) for v in
                          (12.345678901 * (k + 1), "" if measured else 11.1111111,
                           "" if measured else 13.3333333, 0.0123456789,
                           "" if measured else 0.0111111, "" if measured else 0.0133333)])
    return run


def test_what_if_table_is_rounded_with_units_in_its_headers(tmp_path):
    import re

    from fcbench.report.html import write_report

    html = write_report(_what_if_folder(tmp_path)).read_text()
    table = html[html.index("Priced what-ifs"):]
    table = table[:table.index("</table>")]
    cells = re.findall(r"<td>(.*?)</td>", table)
    headers = re.findall(r"<th>(.*?)</th>", table)
    assert cells, table
    assert "0.4444444444444444" not in html and "0.7777777777777778" not in html
    assert not [c for c in cells if re.fullmatch(r"-?[\d,]*\.\d{5,}", c)], cells  # no raw floats
    # an interval's ends join their column: "v [lo, hi]"
    assert headers == ["minInstances", "idleTimeout (s)", "as run", "requests sent",
                       "P(cold) [lo, hi]", "p99 from intended send (ms) [lo, hi]",
                       "throttled (429)", "instances started", "source",
                       "bootstrap replications", "table0 (CNY/day) [lo, hi]",
                       "table0 (CNY/1000 requests) [lo, hi]"]
    rows = [cells[i:i + len(headers)] for i in range(0, len(cells), len(headers))]
    assert rows[0] == ["0", "5", "no", "18", "0.4444 [0.2222, 0.7778]", "759.7", "0", "8",
                       "measured", "0", "12.35", "0.012"], rows[0]
    assert rows[1] == ["1", "60", "yes", "18", "0.2222 [0.2222, 0.7778]",
                       "759.7 [701.2, 813.0]", "0", "7", "simulated", "200",
                       "24.69 [11.11, 13.33]", "0.012 [0.011, 0.013]"], rows[1]


def test_format_table_keeps_lone_bounds_and_can_leave_intervals_apart():
    from fcbench.report.html import format_table

    header = ["p_cold", "p_cold_lo", "p_cold_hi", "p_cold_cluster_lo", "p_cold_cluster_hi"]
    row = [0.123456, 0.1, 0.2, 0.05, 0.3]
    joined = format_table(header, [row])
    assert joined["header"] == ["P(cold) [lo, hi]", "P(cold) lo (clustered)",
                                "P(cold) hi (clustered)"]
    assert joined["rows"] == [["0.1235 [0.1000, 0.2000]", "0.0500", "0.3000"]]
    apart = format_table(header, [row], intervals=False)
    assert apart["header"][:3] == ["P(cold)", "P(cold) lo", "P(cold) hi"]
    assert apart["rows"][0][:3] == ["0.1235", "0.1000", "0.2000"]


def test_every_table_scrolls_inside_its_own_box(tmp_path):
    import re

    from fcbench.report.html import write_report

    html = write_report(_what_if_folder(tmp_path)).read_text()
    css = re.search(r"\.table-wrap\s*\{([^}]*)\}", html)
    assert css and "overflow-x: auto" in css.group(1), "no scrolling wrapper style"
    assert html.count("<table") >= 1
    assert html.count("<table") == html.count('<div class="table-wrap"><table')


@pytest.mark.slow
def test_a_wide_table_does_not_widen_the_page_in_chromium(tmp_path):
    """Chromium at 800 px: a what-if with 12 price tables (27 columns) scrolls in its box and
    the page itself has no horizontal scroll."""
    import html as htmlmod
    import json
    import re

    from browser import chromium, run_chromium
    from fcbench.report.html import write_report

    chromium()
    report = write_report(_what_if_folder(tmp_path, columns=12))
    probe = tmp_path / "probe.html"
    script = ("<script>addEventListener('load', () => { const w = document.querySelector("
              "'.table-wrap') || document.querySelector('table'); "
              "const out = document.createElement('pre'); out.id = 'probe'; "
              "out.textContent = JSON.stringify({page: document.documentElement.scrollWidth, "
              "view: document.documentElement.clientWidth, box: w.clientWidth, "
              "inner: w.scrollWidth}); document.body.appendChild(out); });</script>")
    probe.write_text(report.read_text().replace("</body>", script + "</body>"))
    dom = run_chromium("--dump-dom", "--window-size=800,600", "--virtual-time-budget=2000",
                       probe.as_uri()).stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, dom[-500:]
    size = json.loads(htmlmod.unescape(found.group(1)))
    assert size["page"] <= size["view"], size  # the page does not scroll sideways ...
    assert size["inner"] > size["box"], size  # ... the table, wider than its box, does
