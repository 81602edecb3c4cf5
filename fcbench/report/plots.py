"""Plots of a load run (matplotlib, Agg backend, imported only when drawing).

Key names: `plot_latency` (latency over time, cold requests and errors marked),
`plot_timeline` (one lane per instance: starting / busy / idle / reclaimed, cold requests
marked), `plot_in_flight` (requests and instances in flight over time), `plot_latency_cdf`
(cold against warm). The data behind the last three: `fcbench.report.timeline`; what is cold:
`fcbench.measures`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["plot_in_flight", "plot_latency", "plot_latency_cdf", "plot_timeline", "run_busy",
           "run_outcomes", "run_span"]

#: Warm points drawn at most (a random, seeded sample beyond that); cold and errors: all.
MAX_WARM_POINTS = 200_000
MAX_MARKED_POINTS = 100_000


def plot_latency(records: str | Path | pd.DataFrame, out: str | Path, *, title: str = "",
                 seed: int = 0) -> Path:
    """Service latency of every request against its send time (seconds from the first).

    Cold requests are red circles, failed ones black crosses at the time they failed; an empty
    run gives a plot that says so.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from .summary import load_requests

    df = load_requests(records) if isinstance(records, (str, Path)) else records
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
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
        finite = y[np.isfinite(y) & (y > 0)]
        if finite.size and finite.max() / max(finite.min(), 1e-3) > 50:
            ax.set_yscale("log")
        ax.set_xlabel("time since first request (s)")
        ax.set_ylabel("latency (ms)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title or "Latency over time")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


#: Colours of the lane states (`timeline.STATES`) and of the marks, shared by the plots.
STATE_COLORS = ("#ffffff", "#f0a04b", "#d9dde3", "#3b6fb6")
COLD_COLOR, RECLAIM_COLOR = "#d62728", "#222222"
#: Lanes drawn at most, raster width of a lane, marks and step points drawn exactly.
MAX_LANES, LANE_PIXELS, MAX_COLD_MARKS, MAX_STEP_POINTS, STEP_BINS = 40, 1600, 5000, 5000, 1500


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _finish(fig, ax, out: str | Path, title: str):  # type: ignore[no-untyped-def]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out)
    _pyplot().close(fig)
    return out


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


def plot_timeline(df: pd.DataFrame, instances: pd.DataFrame | None, out: str | Path, *,
                  title: str = "", cap: int = MAX_LANES, seed: int = 0,
                  busy: pd.DataFrame | None = None, kinds=None) -> Path:  # type: ignore[no-untyped-def]
    """One lane per instance (at most `cap`, said on the plot): starting, busy and idle as
    coloured spans, a cross where it was reclaimed, a red triangle per cold request.
    `busy` (`run_busy`) and `kinds` (`run_outcomes`) may be passed when already computed."""
    import numpy as np
    from matplotlib.artist import Artist
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from .timeline import STATES, choose_lanes, lane_states

    plt = _pyplot()
    span = run_span(df, instances)
    busy = run_busy(df, instances) if busy is None else busy
    lanes = choose_lanes(instances, busy, cap=cap)
    n = len(lanes.ids)
    fig, ax = plt.subplots(figsize=(10, min(12.0, max(3.2, 1.4 + 0.24 * n))), dpi=100)
    if span is None or n == 0:
        _empty(ax, "no instance was started or named by a request")
        return _finish(fig, ax, out, title or "Instances over time")
    t0, t1 = span
    raster = lane_states(lanes, busy, t0=t0, t1=t1, width=LANE_PIXELS)
    ax.imshow(raster, cmap=ListedColormap(STATE_COLORS), vmin=0, vmax=len(STATES) - 1,
              aspect="auto", interpolation="nearest", extent=(0, t1 - t0, n - 0.5, -0.5))
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
    handles: list[Artist] = [Patch(color=STATE_COLORS[i], label=STATES[i]) for i in (1, 3, 2)]
    handles += [Line2D([], [], linestyle="none", marker="x", color=RECLAIM_COLOR,
                       label="reclaimed"),
                Line2D([], [], linestyle="none", marker="v", color=COLD_COLOR,
                       label=f"cold request ({cold_n})")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    if lanes.note:
        ax.text(0, -0.08 - 0.6 / max(n, 3), lanes.note, transform=ax.transAxes, fontsize=8,
                va="top", color="#57606a")
    return _finish(fig, ax, out, title or f"Instances over time ({lanes.total} instances)")


def _steps(ax, t, level, t0: float, t1: float, *, label: str, color: str) -> None:  # type: ignore[no-untyped-def]
    """A step function from t0 to t1: exact when small, else a min–max band per bin."""
    import numpy as np

    from .timeline import step_envelope

    if t.size <= MAX_STEP_POINTS:
        x = np.concatenate([[0.0], t - t0, [t1 - t0]])
        y = np.concatenate([[0], level, [level[-1] if level.size else 0]])
        ax.step(x, y, where="post", color=color, label=label, lw=1.2)
        return
    edges, lo, hi = step_envelope(t, level, t0=t0, t1=t1, bins=STEP_BINS)
    ax.stairs(hi, edges - t0, baseline=lo, fill=True, color=color, alpha=0.35)
    ax.stairs(hi, edges - t0, color=color, label=f"{label} (max per bin)", lw=1.0)


def plot_in_flight(df: pd.DataFrame, instances: pd.DataFrame | None, out: str | Path, *,
                   title: str = "", busy: pd.DataFrame | None = None) -> Path:
    """Requests in flight (above) and instances alive, ready and busy (below), over time;
    the peaks are exact (large runs are drawn as a band per time bin)."""
    import numpy as np

    from .timeline import in_flight

    plt = _pyplot()
    span = run_span(df, instances)
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(10, 5.5), dpi=100)
    if span is None:
        bottom.set_axis_off()
        _empty(top, "no requests or instances were recorded")
        return _finish(fig, top, out, title or "In flight over time")
    t0, t1 = span
    t, level = in_flight(_col(df, "start_ts"), _col(df, "end_ts"))
    _steps(top, t, level, t0, t1, label="requests in flight", color="#3b6fb6")
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
        _steps(bottom, ts, lv, t0, t1, label=f"{label} (max {int(lv.max()) if lv.size else 0})",
               color=color)
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
        bottom.text(0.01, 0.95, "no instances.csv: alive/ready unknown", fontsize=8,
                    transform=bottom.transAxes, va="top", color="#57606a")
    return _finish(fig, top, out, title or "In flight over time")


def plot_latency_cdf(df: pd.DataFrame, out: str | Path, *, summary: dict | None = None,
                     title: str = "", points: int = 2000, kinds=None) -> Path:  # type: ignore[no-untyped-def]
    """The latency distribution (CDF) of cold and of warm requests (`fcbench.measures`
    outcomes, or `kinds` from `run_outcomes`); throttled and failed requests are counted in a
    note, not drawn. The legend's p50s are the summary's."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=100)
    kinds = run_outcomes(df) if kinds is None else kinds
    lat = _col(df, "latency_ms")
    drawn = []
    for kind, color in (("warm", "#3b6fb6"), ("cold", COLD_COLOR)):
        values = np.sort(lat[(kinds == kind) & np.isfinite(lat)])
        if values.size == 0:
            continue
        idx = np.unique(np.linspace(0, values.size - 1, min(points, values.size))
                        .round().astype(int))
        p50 = ((summary or {}).get(f"latency_ms_{kind}") or {}).get("p50")
        label = f"{kind} ({values.size:,}" + (f"; p50 {p50:,.0f} ms)" if p50 is not None
                                               else ")")
        ax.step(values[idx], (idx + 1) / values.size, where="post", color=color, label=label)
        drawn.append(values)
    if not drawn:
        _empty(ax, "no answered request to draw")
        return _finish(fig, ax, out, title or "Latency: cold vs warm")
    both = np.concatenate(drawn)
    if both.min() > 0 and both.max() / both.min() > 20:
        ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("service latency (ms)")
    ax.set_ylabel("share of requests ≤ x")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    left = {k: int((kinds == k).sum()) for k in ("throttled", "failed")}
    if any(left.values()):
        ax.text(0.01, 0.97, "not drawn: " + ", ".join(f"{v} {k}" for k, v in left.items() if v),
                transform=ax.transAxes, fontsize=8, va="top", color="#57606a")
    return _finish(fig, ax, out, title or "Latency: cold vs warm")
