"""The report's serverless picture: timeline / in-flight data from hand-written run folders whose
answers are known, the phase waterfall, the cost plot against `compare()`, and the report of a
simulated run (and of broken ones) in headless Chromium."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from browser import dump_dom, image_widths
from fcbench.cost.model import DAY_S, compare, daily_cost, usage_from_calls
from fcbench.cost.plot import cost_curves, plot_cost_curves
from fcbench.cost.tables import load_table
from fcbench.errors import UsageError
from fcbench.report.html import write_report
from fcbench.report.plots import run_busy
from fcbench.report.timeline import choose_lanes, in_flight, lane_states, step_envelope
from fcbench.report.waterfall import read_phases, waterfall
from fcbench.results import RunFolder
from fcbench.results.summary import load_requests, summarize, write_summary

T = 1_000.0  # epoch origin of the hand-written runs

#: instance a: created 0, ready 1, reclaimed 10; b: created 2, ready 3, alive at the end.
INSTANCES = [("a", 0, 1, 10), ("b", 2, 3, None)]
#: (id, instance, start, end, status, cold). Busy a: [1, 4] (r0 waited for the start, r1
#: overlaps it, r3 touches r1) and [6, 7]; busy b: [3, 5]. In flight peaks at 3 at t = 3.5
#: (at t = 3 r1 ends as r3 starts: 2, not 3).
REQUESTS = [("r0", "a", 0.5, 2.0, 200, 1), ("r1", "a", 1.5, 3.0, 200, 0),
            ("r2", "b", 2.2, 4.0, 200, 1), ("r3", "a", 3.0, 4.0, 200, 0),
            ("r7", "b", 3.5, 5.0, 200, 0), ("r4", "a", 6.0, 7.0, 200, 0),
            ("r5", "", 6.5, 6.6, 429, None), ("r6", "", 7.0, 9.0, 0, None)]


def write_run(folder: Path, requests=REQUESTS, instances=INSTANCES, gpu_mb: int = 4096) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "requests.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["request_id", "intended_ts", "start_ts", "end_ts", "latency_ms", "status",
                    "cold", "instance_id", "queue_ms", "error"])
        for rid, inst, s, e, status, cold in requests:
            w.writerow([rid, T + s, T + s, T + e, (e - s) * 1000, status,
                        "" if cold is None else cold, inst, "",
                        "" if 0 < status < 400 else "boom"])
    if instances is not None:
        with open(folder / "instances.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["instance_id", "function", "gpu_memory_mb", "created_ts", "ready_ts",
                        "stopped_ts", "active_s", "idle_s", "provisioned"])
            for iid, c, r, z in instances:
                w.writerow([iid, "f", gpu_mb, T + c, T + r, "" if z is None else T + z, 2.0,
                            3.0, False])
    write_summary(summarize(folder / "requests.csv"), folder / "summary.json")
    return folder


def test_busy_periods_merge_overlaps_and_start_when_the_instance_was_ready(tmp_path):
    run = write_run(tmp_path / "run")
    busy = run_busy(load_requests(run / "requests.csv"), RunFolder(run).instances())
    got = sorted((r.instance_id, r.start - T, r.end - T) for r in busy.itertuples())
    assert got == [("a", 1.0, 4.0), ("a", 6.0, 7.0), ("b", 3.0, 5.0)]


def test_in_flight_peak_is_exact_and_ends_go_before_starts(tmp_path):
    run = write_run(tmp_path / "run")
    df = load_requests(run / "requests.csv")
    t, level = in_flight(df["start_ts"], df["end_ts"])
    assert level.max() == 3 and t[np.argmax(level)] - T == pytest.approx(3.5)
    assert level[np.searchsorted(t, T + 3.0)] == 2 and level[-1] == 0
    inst = RunFolder(run).instances()
    busy = run_busy(df, inst)
    assert in_flight(busy["start"], busy["end"])[1].max() == 2  # a and b busy in [3, 4]
    # a one-instant peak survives downsampling into wide bins
    edges, lo, hi = step_envelope(t, level, t0=T, t1=T + 9, bins=3)
    assert list(hi) == [2, 3, 2] and list(lo) == [0, 0, 0]


def test_lane_raster_paints_starting_idle_busy(tmp_path):
    run = write_run(tmp_path / "run")
    df, inst = load_requests(run / "requests.csv"), RunFolder(run).instances()
    busy = run_busy(df, inst)
    lanes = choose_lanes(inst, busy)
    raster = lane_states(lanes, busy, t0=T, t1=T + 12, width=12)  # one pixel a second
    assert lanes.ids == ["a", "b"] and lanes.note == ""
    # 1 starting, 2 idle, 3 busy, 0 not alive
    assert raster[0].tolist() == [1, 3, 3, 3, 2, 2, 3, 2, 2, 2, 0, 0]
    assert raster[1].tolist() == [0, 0, 1, 3, 3, 2, 2, 2, 2, 2, 2, 2]


def test_many_instances_are_capped_and_the_plot_says_so(tmp_path):
    n = 100
    insts = [(f"i{k}", k, k + 0.5, k + 3) for k in range(n)]
    reqs = [(f"r{k}", f"i{k}", k + 0.2, k + 1.0, 200, 1) for k in range(n)]
    run = write_run(tmp_path / "run", reqs, insts)
    inst = RunFolder(run).instances()
    lanes = choose_lanes(inst, run_busy(load_requests(run / "requests.csv"), inst), cap=40)
    assert len(lanes.ids) == 40 and lanes.total == n and "40 of 100" in lanes.note
    assert lanes.ids[0] == "i0" and lanes.ids[-1] == f"i{n - 1}"  # the whole run is spanned


def test_without_instances_csv_lanes_come_from_the_requests(tmp_path):
    run = write_run(tmp_path / "run", instances=None)
    df = load_requests(run / "requests.csv")
    lanes = choose_lanes(RunFolder(run).instances(), run_busy(df, None))
    assert lanes.ids == ["a", "b"] and "unknown" in lanes.note


def test_waterfall_starts_each_phase_where_the_last_ended_and_keeps_unknowns():
    assert waterfall([1.0, math.nan, 2.0, -0.5, 3.0]) == [
        (0.0, 1.0), (1.0, None), (1.0, 2.0), (3.0, 0.0), (3.0, 3.0)]


def test_phase_rows_read_kept_cold_starts_and_the_profiles_medians(tmp_path):
    run = tmp_path / "cs"
    run.mkdir()
    (run / "phases.csv").write_text(
        "index,kind,status,e2e_ms,warm_ms,cold_penalty_ms,schedule_ms,image_pull_ms,"
        "model_load_ms,unattributed_ms,error\n"
        "0,warmup,200,9,1,8,1,,5,1,\n1,ok,200,10,1,9,2,,6,2,\n2,ok,200,12,1,11,2,,8,2,\n"
        "3,failed,500,0,,,,,,,boom\n")
    (run / "summary.json").write_text(json.dumps({"phases_ms": {
        "schedule": {"median": 2.0}, "model_load": {"median": 7.0},
        "unattributed": {"median": 2.0}, "e2e": {"median": 11.0}}}))
    data = read_phases(run)
    assert data.names == ["schedule", "image_pull", "model_load", "unattributed"]
    assert [r[0] for r in data.rows] == ["#1", "#2", "median"] and data.kept == 2
    assert math.isnan(data.rows[0][1][1]) and math.isnan(data.rows[-1][1][1])  # unknown, not 0
    assert data.rows[-1][1][2] == 7.0 and data.rows[-1][2] == 11.0
    html = write_report(run).read_text()
    assert 'id="fig-waterfall"' in html and (run / "plots" / "waterfall.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("name,server_per_day", [("fc-doc-simple", None),
                                                 ("fc3-cu-2024-08", 48.0)])
def test_cost_plot_marks_compares_break_even(tmp_path, name, server_per_day):
    table = load_table(name)
    sizes = [4.0, 8.0, 16.0, 24.0]
    data = cost_curves(table, duration_s=2.0, gpu_mem_gb=sizes,
                       server_price_per_day=server_per_day)
    server = server_per_day or table.server_per_hour * 24
    assert data.server_per_day == pytest.approx(server)
    for curve in data.curves:
        full = usage_from_calls(DAY_S / 2.0, 2.0, curve.gpu_gb)
        cmp = compare(table, full, server_per_hour=server / 24)
        if daily_cost(table, full)["total"] <= server:
            assert curve.break_even_calls is None  # FC cheaper even when busy all day
        else:
            assert curve.break_even_calls == pytest.approx(
                cmp.break_even_utilisation * DAY_S / 2.0)
        # the curve is daily_cost at each x, nothing else
        k = len(data.calls) // 2
        assert curve.cost[k] == pytest.approx(daily_cost(
            table, usage_from_calls(data.calls[k], 2.0, curve.gpu_gb))["total"])
    if table.regime == "gb-s":  # linear: the break-even lies on the FC curve itself
        for curve in data.curves:
            if curve.break_even_calls is not None:
                at = usage_from_calls(curve.break_even_calls, 2.0, curve.gpu_gb)
                assert daily_cost(table, at)["total"] == pytest.approx(server)
    assert any(c.break_even_calls for c in data.curves)
    png = plot_cost_curves(table, duration_s=2.0, gpu_mem_gb=sizes,
                           server_price_per_day=server_per_day, out=tmp_path / "cost.png")
    marks = json.loads(Image.open(png).text["fcbench"])["break_even"]
    assert {m["gpu_gb"]: m["calls"] for m in marks} == pytest.approx(
        {c.gpu_gb: c.break_even_calls for c in data.curves if c.break_even_calls})


def test_cost_plot_without_a_server_price_or_a_duration(tmp_path):
    table = load_table("fc3-cu-2024-08")
    data = cost_curves(table, duration_s=1.0, gpu_mem_gb=[16])
    assert data.server_per_day is None and data.curves[0].break_even_calls is None
    assert plot_cost_curves(table, duration_s=1.0, gpu_mem_gb=[16],
                            out=tmp_path / "c.png").is_file()
    with pytest.raises(UsageError, match="duration"):
        cost_curves(table, duration_s=0, gpu_mem_gb=[16])


def _check_in_chromium(report: Path, tmp_path: Path, figures: list[str]) -> str:
    widths = image_widths(report, tmp_path)
    for name in figures:
        assert widths.get(name, 0) > 0, (name, widths)
    return dump_dom(report.as_uri())


@pytest.mark.slow
def test_report_of_a_simulated_run_shows_the_serverless_picture(sleep_workload, fcbench_run,
                                                               tmp_path):
    path = sleep_workload({"kind": "poisson", "rate": 8}, duration=120, sleep_ms=200,
                          startup_ms=300, concurrency=2, idle=5)
    doc = yaml.safe_load(path.read_text())
    doc["target"]["functions"][0]["gpuConfig"] = {"gpuMemorySize": 8192}
    path.write_text(yaml.safe_dump(doc))
    res = fcbench_run("simulate", str(path), "--out", str(tmp_path / "sim"), timeout=120)
    assert res.returncode == 0, res.stderr
    [run] = list((tmp_path / "sim").iterdir())
    dom = _check_in_chromium(run / "report.html", tmp_path, [
        "timeline.png", "in_flight.png", "latency.png", "latency_cdf.png", "cost.png"])
    for text in ('id="instances"', 'id="latency"', 'id="cost"', "fc-doc-simple",
                 "fc3-cu-2024-08", "GPU spec 8 GB"):
        assert text in dom, text
    # the FC-per-day cell is the cost model's number for this folder
    from fcbench.cost.model import usage_from_run
    usage, _ = usage_from_run(run)
    fc = compare(load_table("fc-doc-simple"), usage).fc_per_day
    assert f"{fc:,.2f} CNY" in dom


@pytest.mark.slow
def test_report_of_a_hand_written_run_in_chromium(tmp_path):
    run = write_run(tmp_path / "run")
    report = write_report(run)
    dom = _check_in_chromium(report, tmp_path, ["timeline.png", "in_flight.png",
                                                "latency_cdf.png", "cost.png"])
    assert "Cost per day" in dom and "not priced" not in dom and "GPU spec 4 GB" in dom
    # by hand: 2 + 2 busy seconds on 4 GB over a span of 8.5 s, scaled to a day, at 0.0007
    assert f"{4 * (2 + 2) * 0.0007 * 86400 / 8.5:,.2f} CNY" in dom


@pytest.mark.slow
@pytest.mark.parametrize("case", ["no-instances", "all-failed", "empty"])
def test_report_survives_missing_and_empty_files(tmp_path, case):
    if case == "no-instances":
        run = write_run(tmp_path / "run", instances=None)
    elif case == "all-failed":
        run = write_run(tmp_path / "run", [(f"r{k}", "", k, k + 1.0, 0, None)
                                           for k in range(5)], instances=[])
    else:
        run = write_run(tmp_path / "run", [], instances=[])
    report = write_report(run)
    html = report.read_text()
    assert "could not draw" not in html  # nothing raised
    assert 'id="fig-timeline"' in html and 'id="fig-latency_cdf"' in html
    if case == "no-instances":  # no instances.csv and no run.yaml: no GPU spec known, said so
        assert "no GPU spec to price" in html and "0.00 CNY" not in html
    else:
        assert "not priced" in html  # nothing answered: nothing to price, said so
    widths = image_widths(report, tmp_path)
    assert widths and all(w > 0 for w in widths.values()), widths


# --- issue #18: ordinals, an honest in-flight picture of a long run, sane latency axes ------

def test_ordinals():
    from fcbench.report.timeline import ordinal

    got = [ordinal(n) for n in (1, 2, 3, 4, 10, 11, 12, 13, 14, 21, 22, 23, 24, 101, 111, 112,
                                113, 121)]
    assert got == ["1st", "2nd", "3rd", "4th", "10th", "11th", "12th", "13th", "14th", "21st",
                   "22nd", "23rd", "24th", "101st", "111th", "112th", "113th", "121st"]


@pytest.mark.parametrize("total,every", [(100, "2nd"), (130, "3rd"), (170, "4th"),
                                         (440, "11th"), (840, "21st"), (880, "22nd")])
def test_the_lane_cap_note_says_every_kth_in_english(total, every):
    import pandas as pd

    from fcbench.report.timeline import busy_intervals

    inst = pd.DataFrame({"instance_id": [f"i{k}" for k in range(total)],
                         "created_ts": np.arange(total, dtype=float),
                         "ready_ts": np.arange(total) + 0.5,
                         "stopped_ts": np.arange(total) + 3.0})
    lanes = choose_lanes(inst, busy_intervals([], [], []), cap=40)
    assert f"about every {every} by start time" in lanes.note, lanes.note
    assert not any(f" {k}th " in lanes.note for k in (1, 2, 3, 21, 22)), lanes.note
    few = choose_lanes(inst.iloc[:41], busy_intervals([], [], []), cap=40)
    assert "40 of 41" in few.note and "every" not in few.note  # not "every 1st"


def test_step_mean_is_the_time_weighted_mean_per_bin():
    from fcbench.report.timeline import step_mean

    # level 2 on [0, 1), 0 on [1, 3), 1 on [3, 6), 0 from 6; bins of 2 s over [0, 8]
    t, level = np.array([0.0, 1.0, 3.0, 6.0]), np.array([2, 0, 1, 0])
    edges, mean = step_mean(t, level, t0=0.0, t1=8.0, bins=4)
    assert edges.tolist() == [0, 2, 4, 6, 8]
    assert mean.tolist() == pytest.approx([(2 * 1 + 0 * 1) / 2, (0 * 1 + 1 * 1) / 2, 1.0, 0.0])
    # at epoch-second magnitudes, with a bin that starts before the first step
    edges, mean = step_mean(t + 1.7e9, level, t0=1.7e9 - 1, t1=1.7e9 + 9, bins=5)
    assert mean.tolist() == pytest.approx([1.0, 0.0, 1.0, 0.5, 0.0])
    assert step_mean(np.zeros(0), np.zeros(0), t0=0, t1=1, bins=3)[1].tolist() == [0, 0, 0]


def _sparse_day(n: int = 3000, gap: float = 10.0, service: float = 0.5):
    """`n` requests, one every `gap` s, each `service` s long on one instance: busy
    service/gap of the time (5 %), so every bin of the plot holds a request."""
    import pandas as pd

    start = T + np.arange(n) * gap
    return pd.DataFrame({"start_ts": start, "end_ts": start + service,
                         "latency_ms": np.full(n, service * 1000), "status": 200,
                         "cold": np.r_[1, np.zeros(n - 1)], "instance_id": "a"})


@pytest.mark.slow
def test_in_flight_of_a_long_sparse_run_draws_time_weighted_means_not_a_full_band():
    from fcbench.report.plots import MAX_STEP_POINTS, STEP_BINS, _pyplot, in_flight_figure

    df = _sparse_day()
    assert 2 * len(df) > MAX_STEP_POINTS  # drawn per bin
    fig = in_flight_figure(df, None)
    try:
        top = fig.axes[0]
        patches = {p.get_gid(): p for p in top.patches}
        mean = patches["mean per bin"].get_data()
        peak = patches["max per bin"].get_data()
        edges = mean.edges + T + 0.0  # the plot's x is seconds since the first start
        assert len(mean.values) == STEP_BINS
        # by hand: requests in flight = the sum of the requests' indicators, so a bin's
        # time-weighted mean is the requests' overlap with it over its length
        s, e = df["start_ts"].to_numpy(), df["end_ts"].to_numpy()
        lo, hi = edges[:-1, None], edges[1:, None]
        overlap = np.clip(np.minimum(e, hi) - np.maximum(s, lo), 0, None).sum(axis=1)
        assert mean.values == pytest.approx(overlap / np.diff(edges), abs=1e-9)
        assert float(mean.values.mean()) == pytest.approx(0.05, rel=0.01)  # busy 5 %
        assert mean.values.max() < 0.2  # the real shape: mostly idle ...
        assert peak.values.max() == 1 and (peak.values == 1).mean() > 0.9  # ... peaks exact
        labels = top.get_legend_handles_labels()[1]
        assert labels == ["requests in flight (mean 0.05, max 1)"], labels
        assert any("time-weighted mean" in t.get_text() for t in fig.texts)
    finally:
        _pyplot().close(fig)


def test_in_flight_of_a_short_run_stays_exact(tmp_path):
    from fcbench.report.plots import _pyplot, in_flight_figure

    run = write_run(tmp_path / "run")
    df = load_requests(run / "requests.csv")
    fig = in_flight_figure(df, RunFolder(run).instances())
    try:
        top = fig.axes[0]
        assert not top.patches and not fig.texts  # steps, no bins, no binning note
        [line] = top.get_lines()
        assert max(line.get_ydata()) == 3
    finally:
        _pyplot().close(fig)


def _latency_frame(latency_ms, cold=None):
    import pandas as pd

    n = len(latency_ms)
    return pd.DataFrame({"start_ts": T + np.arange(n, dtype=float),
                         "end_ts": T + np.arange(n) + np.asarray(latency_ms) / 1000,
                         "latency_ms": np.asarray(latency_ms, dtype=float), "status": 200,
                         "cold": np.zeros(n) if cold is None else cold, "instance_id": "a"})


def _latency_axes(df):
    """(scale, (lo, hi)) of the latency axis of the latency-over-time plot and of the CDF."""
    from fcbench.report.plots import _pyplot, latency_cdf_figure, latency_figure

    out = []
    for build, axis in ((latency_figure, "y"), (latency_cdf_figure, "x")):
        fig = build(df)
        ax = fig.axes[0]
        out.append(((ax.get_yscale(), ax.get_ylim()) if axis == "y"
                    else (ax.get_xscale(), ax.get_xlim())))
        _pyplot().close(fig)
    return out


def test_latency_axes_start_a_bit_below_the_smallest_value_and_no_lower():
    lat = [5.0, 12.0, 30.0, 700.0, 8000.0]
    for scale, (lo, hi) in _latency_axes(_latency_frame(lat, cold=[0, 0, 0, 1, 1])):
        assert scale == "log"
        assert 5.0 / 2 <= lo < 5.0 and 8000.0 < hi <= 8000.0 * 2  # no empty decade either side
    # never below 0.1 ms unless the data is there ...
    for scale, (lo, hi) in _latency_axes(_latency_frame([0.12, 3.0, 40.0])):
        assert scale == "log" and lo == pytest.approx(0.1)
    # ... and when it is, the axis goes there
    for scale, (lo, hi) in _latency_axes(_latency_frame([0.03, 3.0, 40.0])):
        assert 0.03 / 2 <= lo < 0.03


def test_a_few_stray_tiny_latencies_add_no_empty_decades():
    """100,000 exponential service times (mean 20 ms, as `--service-ms exp:20`) reach down to
    ~10⁻⁴ ms; the axes start at the 0.1 % quantile, so at most 0.1 % is off the plot."""
    from fcbench.report.plots import LATENCY_LOW_QUANTILE, _pyplot, latency_figure

    rng = np.random.default_rng(1)
    lat = np.r_[rng.exponential(20.0, 100_000), np.full(20, 8000.0)]
    assert lat.min() < 1e-3
    q = np.quantile(lat, LATENCY_LOW_QUANTILE)
    for scale, (lo, hi) in _latency_axes(_latency_frame(lat, cold=np.r_[np.zeros(100_000),
                                                                        np.ones(20)])):
        assert scale == "log" and q / 2 <= lo < q and 8000 < hi <= 16000
        assert (lat < lo).mean() <= LATENCY_LOW_QUANTILE
    fig = latency_figure(_latency_frame(lat))
    try:  # the points left under the axis are counted on the plot
        assert any("below the axis" in t.get_text() for t in fig.axes[0].texts)
    finally:
        _pyplot().close(fig)


def test_lane_busy_share_is_the_busy_part_of_each_pixel(tmp_path):
    from fcbench.report.timeline import lane_busy_share

    run = write_run(tmp_path / "run")
    df, inst = load_requests(run / "requests.csv"), RunFolder(run).instances()
    busy = run_busy(df, inst)  # a: [1, 4], [6, 7]; b: [3, 5]
    lanes = choose_lanes(inst, busy)
    share = lane_busy_share(lanes, busy, t0=T, t1=T + 12, width=5)  # pixels of 2.4 s
    assert share[0] == pytest.approx([1.4 / 2.4, 1.6 / 2.4, 1.0 / 2.4, 0, 0])
    assert share[1] == pytest.approx([0, 1.8 / 2.4, 0.2 / 2.4, 0, 0])
    whole = lane_busy_share(lanes, busy, t0=T, t1=T + 12, width=12)  # pixels of 1 s
    assert whole[0].tolist() == [0, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0]


def test_timeline_of_a_long_sparse_run_reads_idle_not_busy():
    """One instance busy 5 % of the time, a request in every pixel: each pixel is shaded 5 %
    of the way from idle to busy, not painted busy."""
    import pandas as pd
    from matplotlib.colors import to_rgb

    from fcbench.report.plots import STATE_COLORS, _pyplot, timeline_figure

    df = _sparse_day()
    inst = pd.DataFrame({"instance_id": ["a"], "created_ts": [T - 1.0], "ready_ts": [T],
                         "stopped_ts": [np.nan]})
    fig = timeline_figure(df, inst)
    try:
        [image] = [im for im in fig.axes[0].get_images() if im.get_gid() == "lanes"]
        rgb = np.asarray(image.get_array())[0]
    finally:
        _pyplot().close(fig)
    idle, busy = np.array(to_rgb(STATE_COLORS[2])), np.array(to_rgb(STATE_COLORS[3]))
    alive = rgb[1:]  # the first pixel holds the start (starting, then the first request)
    weight = (alive - idle) @ (busy - idle) / ((busy - idle) @ (busy - idle))
    assert weight.mean() == pytest.approx(0.05, abs=0.005) and weight.max() < 0.2
