"""Plots of a load run (matplotlib, Agg backend, imported only when drawing).

Key names: `plot_latency` (latency over time, cold requests and errors marked),
`plot_timeline` (one lane per instance: starting / busy / idle / reclaimed, cold requests
marked), `plot_in_flight` (requests and instances in flight over time), `plot_latency_cdf`
(cold against warm), `plot_ttft_cdf` (time to first token, cold against warm), `latency_limits` (the log latency axes' range). `latency_figure`,
`timeline_figure`, `in_flight_figure` and `latency_cdf_figure` build the figures the `plot_*`
functions save, for a caller (a test) that reads the axes. The data behind the timeline and
in-flight plots: `fcbench.report.timeline`; what is cold: `fcbench.measures`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from ..results import layout

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["in_flight_figure", "latency_cdf_figure", "latency_figure", "latency_limits",
           "plot_in_flight", "plot_latency", "plot_latency_cdf", "plot_timeline", "plot_ttft_cdf",
           "run_busy",
           "run_outcomes", "run_span", "timeline_figure"]

#: Warm points drawn at most (a random, seeded sample beyond that); cold and errors: all.
MAX_WARM_POINTS = 200_000
MAX_MARKED_POINTS = 100_000
#: Latency axes: never below this (ms) unless the data is; the share of values allowed below
#: the axis (so that a handful of stray small ones add no empty decade); the margin (×) kept
#: beyond the lowest and the highest value.
LATENCY_FLOOR_MS, LATENCY_LOW_QUANTILE, LATENCY_MARGIN = 0.1, 0.001, 1.5


def latency_limits(values) -> tuple[float, float] | None:  # type: ignore[no-untyped-def]
    """Limits (lower, upper) of a log latency axis for `values` (ms): from a bit below the
    smallest positive value — the 0.1 % quantile once there are 1000 values, so a few stray
    ones do not add empty decades — to a bit above the largest; never below
    `LATENCY_FLOOR_MS` unless the data is. None when no value is positive."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return None
    low = float(np.quantile(v, LATENCY_LOW_QUANTILE)) if v.size >= 1000 else float(v.min())
    lower = low / LATENCY_MARGIN
    if low >= LATENCY_FLOOR_MS:
        lower = max(lower, LATENCY_FLOOR_MS)
    return lower, float(v.max()) * LATENCY_MARGIN


def _latency_axis(ax, values, axis: str, *,  # type: ignore[no-untyped-def]
                  log_ratio: float) -> int:
    """Set a latency axis (``x`` or ``y``) of `ax` for `values`: log with `latency_limits`
    when they span more than `log_ratio`, else linear from 0. Returns how many values lie
    below it (non-positive ones on a log axis included)."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    limits = latency_limits(v)
    if limits is None:
        return 0
    lower, upper = limits
    setter = ax.set_xlim if axis == "x" else ax.set_ylim
    if upper / lower > log_ratio:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        setter(lower, upper)
        return int((v < lower).sum())
    setter(0, upper / LATENCY_MARGIN * 1.05)
    return 0


def latency_figure(records: str | Path | pd.DataFrame, *,  # type: ignore[no-untyped-def]
                   title: str = "", seed: int = 0):
    """The figure `plot_latency` saves (open: the caller closes it)."""
    import numpy as np

    from ..results.summary import load_requests

    plt = _pyplot()
    df = load_requests(records) if isinstance(records, (str, Path)) else records
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
    if len(df) == 0:
        ax.text(0.5, 0.5, "no requests were recorded", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
    else:
        rng = np.random.default_rng(seed)
        t = df["start_ts"].to_numpy()
        x = t - np.nanmin(t)
        y = df["latency_ms"].to_numpy()
        status = df["status"].to_numpy()
        ok = (status > 0) & (status < 400)
        cold = (df["cold"].to_numpy() > 0.5) if "cold" in df else np.zeros(len(df), bool)
        warm_idx = np.flatnonzero(ok & ~cold)
        if warm_idx.size > MAX_WARM_POINTS:
            warm_idx = np.sort(rng.choice(warm_idx, MAX_WARM_POINTS, replace=False))
        dense = warm_idx.size > 5000
        ax.plot(x[warm_idx], y[warm_idx], ".", ms=2 if dense else 5, color="#4c72b0",
                alpha=0.5 if dense else 0.8, rasterized=True,
                label=f"warm ({int((ok & ~cold).sum())})")
        for mask, style, label in (
                (ok & cold, {"marker": "o", "ms": 5, "mfc": "none", "mec": "#d62728",
                             "mew": 1.2}, "cold"),
                (~ok, {"marker": "x", "ms": 5, "color": "black", "mew": 1.0}, "error")):
            idx = np.flatnonzero(mask)
            if idx.size == 0:
                continue
            shown = np.sort(rng.choice(idx, MAX_MARKED_POINTS, replace=False)) \
                if idx.size > MAX_MARKED_POINTS else idx
            ax.plot(x[shown], y[shown], linestyle="none", rasterized=True,
                    label=f"{label} ({idx.size})", **style)
        below = _latency_axis(ax, y, "y", log_ratio=50)
        if below:
            ax.text(0.01, 0.02, f"{below:,} request(s) under {ax.get_ylim()[0]:.2g} ms lie "
                    "below the axis", transform=ax.transAxes, fontsize=8, color="#57606a",
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85})
        ax.set_xlabel("time since first request (s)")
        ax.set_ylabel("latency (ms)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title or "Latency over time")
    return fig


def plot_latency(records: str | Path | pd.DataFrame, out: str | Path, *, title: str = "",
                 seed: int = 0) -> Path:
    """Service latency of every request against its send time (seconds from the first).

    Cold requests are red circles, failed ones black crosses at the time they failed; an empty
    run gives a plot that says so. A log axis runs from a bit below the smallest latency
    (`latency_limits`) to a bit above the largest.
    """
    return _save(latency_figure(records, title=title, seed=seed), out)


#: Colours of the lane states (`timeline.STATES`) and of the marks, shared by the plots.
STATE_COLORS = ("#ffffff", "#f0a04b", "#d9dde3", "#3b6fb6")
COLD_COLOR, RECLAIM_COLOR = "#d62728", "#222222"
_BUSY_STATE = 3  # timeline.STATES.index("busy")
#: Lanes drawn at most, raster width of a lane, marks and step points drawn exactly.
MAX_LANES, LANE_PIXELS, MAX_COLD_MARKS, MAX_STEP_POINTS, STEP_BINS = 40, 1600, 5000, 5000, 1500


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, out: str | Path, rect=None) -> Path:  # type: ignore[no-untyped-def]
    """Save `fig` to `out` (its folder made; laid out within `rect`) and close it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(rect=rect)
    fig.savefig(out)
    _pyplot().close(fig)
    return out


def _titled(fig, ax, title: str):  # type: ignore[no-untyped-def]
    ax.set_title(title)
    return fig


def _empty(ax, text: str) -> None:  # type: ignore[no-untyped-def]
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def _col(df: pd.DataFrame, name: str):  # type: ignore[no-untyped-def]
    import numpy as np
    return df[name].to_numpy(dtype=float) if name in df else np.full(len(df), np.nan)


def run_span(df: pd.DataFrame, instances: pd.DataFrame | None) -> tuple[float, float] | None:
    """The time the run covers: first start or instance creation to last end or stop."""
    import numpy as np

    lo = [_col(df, "start_ts")] + ([instances["created_ts"].to_numpy(float)]
                                   if instances is not None else [])
    hi = [_col(df, "end_ts")] + ([instances[c].to_numpy(float) for c in
                                  ("ready_ts", "stopped_ts")] if instances is not None else [])
    a, b = np.concatenate(lo), np.concatenate(hi)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0:
        return None
    t0 = float(a.min())
    t1 = max(float(b.max()) if b.size else t0, t0)
    return t0, (t1 if t1 > t0 else t0 + 1.0)


def _ready_map(instances: pd.DataFrame | None) -> dict[str, float]:
    if instances is None or not len(instances):
        return {}
    ready = instances["ready_ts"].to_numpy(float)
    ids = instances["instance_id"].astype(str).to_numpy()
    return {i: float(r) for i, r in zip(ids, ready) if math.isfinite(r)}


def run_busy(df: pd.DataFrame, instances: pd.DataFrame | None) -> pd.DataFrame:
    """`timeline.busy_intervals` of a requests frame (requests sent before their instance was
    ready are busy from its ready time)."""
    from .timeline import busy_intervals

    if not len(df) or "instance_id" not in df:
        return busy_intervals([], [], [])
    return busy_intervals(df["instance_id"].to_numpy(), _col(df, "start_ts"),
                          _col(df, "end_ts"), ready_ts=_ready_map(instances))


def run_outcomes(df: pd.DataFrame):  # type: ignore[no-untyped-def]
    """`measures.outcomes` of every row of a requests frame."""
    import numpy as np

    from ..measures import outcomes

    return outcomes(df["status"].to_numpy(), _col(df, "cold")) if len(df) else \
        np.zeros(0, dtype=object)


def timeline_figure(df: pd.DataFrame, instances: pd.DataFrame | None, *, title: str = "",
                    cap: int = MAX_LANES, seed: int = 0, busy: pd.DataFrame | None = None,
                    kinds=None):  # type: ignore[no-untyped-def]
    """The figure `plot_timeline` saves (open: the caller closes it); its image (gid
    ``lanes``) holds one RGB row per lane."""
    import numpy as np
    from matplotlib.artist import Artist
    from matplotlib.colors import to_rgb
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from .timeline import STATES, choose_lanes, lane_busy_share, lane_states

    plt = _pyplot()
    span = run_span(df, instances)
    busy = run_busy(df, instances) if busy is None else busy
    lanes = choose_lanes(instances, busy, cap=cap)
    n = len(lanes.ids)
    fig, ax = plt.subplots(figsize=(10, min(12.0, max(3.2, 1.4 + 0.24 * n))), dpi=100)
    if span is None or n == 0:
        _empty(ax, "no instance was started or named by a request")
        return _titled(fig, ax, title or "Instances over time")
    t0, t1 = span
    # each pixel: its state without the requests (starting / idle / not alive), shaded
    # toward the busy colour by the share of its time the instance was busy
    base = lane_states(lanes, busy.iloc[:0], t0=t0, t1=t1, width=LANE_PIXELS)
    share = lane_busy_share(lanes, busy, t0=t0, t1=t1, width=LANE_PIXELS)[..., None]
    colors = np.array([to_rgb(c) for c in STATE_COLORS])
    rgb = colors[base] * (1.0 - share) + colors[_BUSY_STATE] * share
    ax.imshow(rgb, aspect="auto", interpolation="nearest", extent=(0, t1 - t0, n - 0.5, -0.5),
              gid="lanes")
    for y in np.arange(n - 1) + 0.5:
        ax.axhline(y, color="white", lw=1.5)
    stopped = np.flatnonzero(np.isfinite(lanes.stopped))
    ax.plot(lanes.stopped[stopped] - t0, stopped, linestyle="none", marker="x", ms=6,
            color=RECLAIM_COLOR, mew=1.5)
    lane_of = {name: i for i, name in enumerate(lanes.ids)}
    cold_n = 0
    if len(df):
        cold = (run_outcomes(df) if kinds is None else kinds) == "cold"
        lane = df["instance_id"].map(lane_of).to_numpy(dtype=float) if "instance_id" in df \
            else np.full(len(df), np.nan)
        idx = np.flatnonzero(cold & np.isfinite(lane))
        cold_n = int(cold.sum())
        if idx.size > MAX_COLD_MARKS:
            idx = np.sort(np.random.default_rng(seed).choice(idx, MAX_COLD_MARKS, replace=False))
        ax.plot(_col(df, "start_ts")[idx] - t0, lane[idx] - 0.28, linestyle="none", marker="v",
                ms=5, color=COLD_COLOR)
    ax.set_xlim(0, t1 - t0)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_yticks(range(n))
    ax.set_yticklabels(lanes.ids, fontsize=7 if n > 12 else 8)
    ax.set_xlabel("time since the run began (s)")
    pixel = (t1 - t0) / LANE_PIXELS
    handles: list[Artist] = [Patch(color=STATE_COLORS[1], label=STATES[1]),
                             Patch(color=STATE_COLORS[3], label="busy (paler: busy part of "
                                   f"each {_bin_width(pixel)})" if pixel >= 0.5 else "busy"),
                             Patch(color=STATE_COLORS[2], label=STATES[2])]
    handles += [Line2D([], [], linestyle="none", marker="x", color=RECLAIM_COLOR,
                       label="reclaimed"),
                Line2D([], [], linestyle="none", marker="v", color=COLD_COLOR,
                       label=f"cold request ({cold_n})")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    if lanes.note:
        ax.text(0, -0.08 - 0.6 / max(n, 3), lanes.note, transform=ax.transAxes, fontsize=8,
                va="top", color="#57606a")
    return _titled(fig, ax, title or f"Instances over time ({lanes.total} instances)")


def plot_timeline(df: pd.DataFrame, instances: pd.DataFrame | None, out: str | Path, *,
                  title: str = "", cap: int = MAX_LANES, seed: int = 0,
                  busy: pd.DataFrame | None = None, kinds=None) -> Path:  # type: ignore[no-untyped-def]
    """One lane per instance (at most `cap`, said on the plot): starting, busy and idle as
    coloured spans, a cross where it was reclaimed, a red triangle per cold request. A pixel
    (1/1600 of the run) is shaded from idle to busy by the share of its time the instance was
    busy (`timeline.lane_busy_share`), so an instance that served one short request a minute
    reads as idle, not busy. `busy` (`run_busy`) and `kinds` (`run_outcomes`) may be passed
    when already computed."""
    return _save(timeline_figure(df, instances, title=title, cap=cap, seed=seed, busy=busy,
                                 kinds=kinds), out)


def _bin_width(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.2g} h"
    if seconds >= 60:
        return f"{seconds / 60:.2g} min"
    return f"{seconds:.2g} s"


def _steps(ax, t, level, t0: float, t1: float, *,  # type: ignore[no-untyped-def]
           label: str, color: str) -> bool:
    """A step function from t0 to t1: exact when small; else, per time bin, the time-weighted
    mean (`timeline.step_mean`, filled) and the max (`timeline.step_envelope`, a thin line, so
    a one-instant peak is still drawn). Returns whether it was binned. The label gets the
    time-weighted mean over [t0, t1] and the exact max."""
    import numpy as np

    from .timeline import step_envelope, step_mean

    peak = int(level.max()) if level.size else 0
    if t.size <= MAX_STEP_POINTS:
        x = np.concatenate([[0.0], t - t0, [t1 - t0]])
        y = np.concatenate([[0], level, [level[-1] if level.size else 0]])
        ax.step(x, y, where="post", color=color, label=f"{label} (max {peak})", lw=1.2)
        return False
    edges, mean = step_mean(t, level, t0=t0, t1=t1, bins=STEP_BINS)
    _, _, hi = step_envelope(t, level, t0=t0, t1=t1, bins=STEP_BINS)
    ax.stairs(hi, edges - t0, color=color, lw=0.5, alpha=0.3, gid="max per bin")
    ax.stairs(mean, edges - t0, fill=True, color=color, alpha=0.45, lw=0,
              gid="mean per bin")
    ax.stairs(mean, edges - t0, color=color, lw=1.0,
              label=f"{label} (mean {float(mean.mean()):.2g}, max {peak})")
    return True


def in_flight_figure(df: pd.DataFrame, instances: pd.DataFrame | None, *, title: str = "",
                     busy: pd.DataFrame | None = None):  # type: ignore[no-untyped-def]
    """The figure `plot_in_flight` saves (open: the caller closes it). A binned series is
    three `stairs` artists: gid ``max per bin``, gid ``mean per bin`` (filled) and its outline
    (labelled)."""
    import numpy as np

    from .timeline import in_flight

    plt = _pyplot()
    span = run_span(df, instances)
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(10, 5.5), dpi=100)
    if span is None:
        bottom.set_axis_off()
        _empty(top, "no requests or instances were recorded")
        return _titled(fig, top, title or "In flight over time")
    t0, t1 = span
    t, level = in_flight(_col(df, "start_ts"), _col(df, "end_ts"))
    binned = _steps(top, t, level, t0, t1, label="requests in flight", color="#3b6fb6")
    if level.size:
        at = int(np.argmax(level))
        top.annotate(f"max {int(level[at])}", (t[at] - t0, level[at]), xytext=(4, 2),
                     textcoords="offset points", fontsize=8)
        top.set_ylim(0, level[at] * 1.15 + 0.5)
    top.set_ylabel("requests")
    series = []
    if instances is not None and len(instances):
        end = np.where(np.isfinite(instances["stopped_ts"].to_numpy(float)),
                       instances["stopped_ts"].to_numpy(float), t1)
        series += [("instances alive", instances["created_ts"].to_numpy(float), end,
                    "#f0a04b"),
                   ("instances ready", instances["ready_ts"].to_numpy(float), end, "#8a8f98")]
    busy = run_busy(df, instances) if busy is None else busy
    if len(busy):
        series.append(("instances busy", busy["start"].to_numpy(), busy["end"].to_numpy(),
                       "#3b6fb6"))
    for label, a, b, color in series:
        ts, lv = in_flight(a, b)
        binned |= _steps(bottom, ts, lv, t0, t1, label=label, color=color)
    bottom.set_ylabel("instances")
    bottom.set_xlabel("time since the run began (s)")
    for ax in (top, bottom):
        ax.set_xlim(0, t1 - t0)
        ax.set_ylim(bottom=0, top=max(ax.get_ylim()[1], 1))
        ax.grid(True, alpha=0.3)
        ax.yaxis.get_major_locator().set_params(integer=True)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", fontsize=8)
    if instances is None:
        bottom.text(0.01, 0.95, f"no {layout.INSTANCES}: alive/ready unknown", fontsize=8,
                    transform=bottom.transAxes, va="top", color="#57606a")
    if binned:
        fig.text(0.01, 0.005, f"Per {_bin_width((t1 - t0) / STEP_BINS)} bin: filled = "
                 "time-weighted mean, thin line = max in the bin (exact peaks); the legend's "
                 "mean is over the whole run.", fontsize=8, color="#57606a", va="bottom")
    return _titled(fig, top, title or "In flight over time")


def plot_in_flight(df: pd.DataFrame, instances: pd.DataFrame | None, out: str | Path, *,
                   title: str = "", busy: pd.DataFrame | None = None) -> Path:
    """Requests in flight (above) and instances alive, ready and busy (below), over time;
    the peaks are exact. A large run is drawn per time bin: the time-weighted mean (the
    real shape: a bin busy a tenth of its time reads 0.1) and the max in the bin."""
    fig = in_flight_figure(df, instances, title=title, busy=busy)
    return _save(fig, out, rect=(0, 0.03, 1, 1) if fig.texts else None)  # room for the note


def latency_cdf_figure(df: pd.DataFrame, *, summary: dict | None = None, title: str = "",
                       points: int = 2000, kinds=None, column: str = "latency_ms",  # type: ignore[no-untyped-def]
                       xlabel: str = "service latency (ms)"):
    """The figure `plot_latency_cdf` saves (open: the caller closes it); `column` is the
    requests.csv column drawn (``ttft_ms`` for `plot_ttft_cdf`), whose cold and warm blocks
    (``{column}_cold``) in `summary` give the legend's p50s."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=100)
    kinds = run_outcomes(df) if kinds is None else kinds
    lat = _col(df, column)
    drawn = []
    default_title = "Latency: cold vs warm"
    for kind, color in (("warm", "#3b6fb6"), ("cold", COLD_COLOR)):
        values = np.sort(lat[(kinds == kind) & np.isfinite(lat)])
        if values.size == 0:
            continue
        idx = np.unique(np.linspace(0, values.size - 1, min(points, values.size))
                        .round().astype(int))
        p50 = ((summary or {}).get(f"{column}_{kind}") or {}).get("p50")
        label = f"{kind} ({values.size:,}" + (f"; p50 {p50:,.0f} ms)" if p50 is not None
                                               else ")")
        ax.step(values[idx], (idx + 1) / values.size, where="post", color=color, label=label,
                marker="o" if values.size < 3 else None)  # a step of one value has no length
        drawn.append(values)
    if not drawn:
        _empty(ax, "no answered request to draw")
        return _titled(fig, ax, title or default_title)
    _latency_axis(ax, np.concatenate(drawn), "x", log_ratio=20)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of requests ≤ x")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    left = {k: int((kinds == k).sum()) for k in ("throttled", "failed")}
    if any(left.values()):
        ax.text(0.01, 0.97, "not drawn: " + ", ".join(f"{v} {k}" for k, v in left.items() if v),
                transform=ax.transAxes, fontsize=8, va="top", color="#57606a")
    return _titled(fig, ax, title or default_title)


def plot_latency_cdf(df: pd.DataFrame, out: str | Path, *, summary: dict | None = None,
                     title: str = "", points: int = 2000, kinds=None) -> Path:  # type: ignore[no-untyped-def]
    """The latency distribution (CDF) of cold and of warm requests (`fcbench.measures`
    outcomes, or `kinds` from `run_outcomes`); throttled and failed requests are counted in a
    note, not drawn. The legend's p50s are the summary's. A log axis is limited as in
    `latency_limits` (the curve at its left edge reads the share below it)."""
    return _save(latency_cdf_figure(df, summary=summary, title=title, points=points,
                                    kinds=kinds), out)


def plot_ttft_cdf(df: pd.DataFrame, out: str | Path, *, summary: dict | None = None,
                  title: str = "", kinds=None) -> Path:  # type: ignore[no-untyped-def]
    """Time to first token (``ttft_ms``) of cold and of warm requests as CDFs, like
    `plot_latency_cdf`; `summary` is the summary's ``tokens`` block (the legend's p50s)."""
    return _save(latency_cdf_figure(df, summary=summary, kinds=kinds, column="ttft_ms",
                                    title=title or "Time to first token: cold vs warm",
                                    xlabel="time to first token (ms)"), out)
