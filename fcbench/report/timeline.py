"""What the instances of a run did over time, from `instances.csv` and `requests.csv`.

Key names: `busy_intervals`, `in_flight`, `step_envelope`, `step_mean`, `choose_lanes`,
`lane_states`, `lane_busy_share`, `ordinal`, `STATES`. Pure numpy/pandas, vectorised so a
1,000,000-row run stays fast; the drawing is in `fcbench.report.plots`.

* **starting**: created → ready (an instance that never got ready starts until it stopped).
* **busy**: at least one request in flight on it (the union of its requests' start → end; a
  request sent before its instance was ready is busy from ``ready_ts`` on: it waited for the
  start).
* **idle**: alive and ready with nothing in flight; **reclaimed**: stopped (``stopped_ts``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..measures import busy_intervals
from ..results import layout

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["STATES", "Lanes", "busy_intervals", "choose_lanes", "in_flight",
           "lane_busy_share", "lane_states", "ordinal", "step_envelope",
           "step_mean"]

#: Lane state codes, by index (0: not alive).
STATES = ("", "starting", "idle", "busy")
_STARTING, _IDLE, _BUSY = 1, 2, 3


def in_flight(start_ts: Any, end_ts: Any) -> tuple[np.ndarray, np.ndarray]:
    """How many intervals are open over time, as a step function: times `t` and the level from
    each time on. An interval ending when another starts does not overlap it (ends go first at
    equal times). Pairs with a NaN are skipped; empty input gives empty arrays."""
    s = np.asarray(start_ts, dtype=float)
    e = np.asarray(end_ts, dtype=float)
    keep = np.isfinite(s) & np.isfinite(e)
    s, e = s[keep], np.maximum(e[keep], s[keep])
    if s.size == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    times = np.concatenate([s, e])
    deltas = np.concatenate([np.ones(s.size, np.int64), -np.ones(e.size, np.int64)])
    order = np.lexsort((deltas, times))
    times, level = times[order], np.cumsum(deltas[order])
    last = np.concatenate([times[1:] != times[:-1], [True]])  # one level per distinct time
    return times[last], level[last]


def step_envelope(t: np.ndarray, level: np.ndarray, *, t0: float, t1: float, bins: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A step function downsampled to `bins` equal bins over [t0, t1]: the bin edges and the
    lowest and highest level in force in each bin (so a one-instant peak is still drawn)."""
    edges = np.linspace(t0, t1, bins + 1)
    if t.size == 0:
        zero = np.zeros(bins, dtype=level.dtype if level.size else np.int64)
        return edges, zero, zero.copy()
    at_left = np.searchsorted(t, edges[:-1], side="right") - 1
    carry = np.where(at_left >= 0, level[np.clip(at_left, 0, None)], 0)
    lo, hi = carry.copy(), carry.copy()
    inside = (t >= t0) & (t <= t1)
    ti, li = t[inside], level[inside]
    if ti.size:
        b = np.clip(np.searchsorted(edges, ti, side="right") - 1, 0, bins - 1)
        starts = np.flatnonzero(np.concatenate([[True], b[1:] != b[:-1]]))
        hi[b[starts]] = np.maximum(hi[b[starts]], np.maximum.reduceat(li, starts))
        lo[b[starts]] = np.minimum(lo[b[starts]], np.minimum.reduceat(li, starts))
    return edges, lo, hi


def ordinal(n: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``, ..., ``11th``, ``12th``, ``13th``, ..., ``21st``,
    ``22nd``, ``101st``, ``111th``."""
    n = int(n)
    if abs(n) % 100 in (11, 12, 13):
        return f"{n}th"
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(abs(n) % 10, "th")
    return f"{n}{suffix}"


def step_mean(t: np.ndarray, level: np.ndarray, *, t0: float, t1: float, bins: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """A step function averaged over `bins` equal bins of [t0, t1]: the bin edges and the
    time-weighted mean level in each bin (its integral over the bin / the bin's length), so a
    bin busy for a tenth of its time at level 1 reads 0.1. Before ``t[0]`` the level is 0."""
    edges = np.linspace(t0, t1, bins + 1)
    t = np.asarray(t, dtype=float)
    level = np.asarray(level, dtype=float)
    if t.size == 0 or t1 <= t0:
        return edges, np.zeros(bins)
    x = t - t0  # relative times keep the integral exact at epoch-second magnitudes
    e = edges - t0
    area = np.concatenate([[0.0], np.cumsum(level[:-1] * np.diff(x))])  # integral up to x[i]
    k = np.searchsorted(x, e, side="right") - 1
    at = np.where(k >= 0, area[np.clip(k, 0, None)] + level[np.clip(k, 0, None)]
                  * (e - x[np.clip(k, 0, None)]), 0.0)
    return edges, np.diff(at) / np.diff(e)


@dataclass(frozen=True)
class Lanes:
    """The instances drawn as lanes (at most `cap`), in start order."""

    ids: list[str]
    created: np.ndarray
    ready: np.ndarray
    stopped: np.ndarray
    total: int
    note: str  # says how lanes were capped, and what is unknown; "" when nothing to say


def choose_lanes(instances: pd.DataFrame | None, busy: pd.DataFrame, *, cap: int = 40
                 ) -> Lanes:
    """One lane per instance of instances.csv (else per instance the requests name, with
    unknown lifetimes); beyond `cap`, every k-th instance by start time, so the lanes still
    span the whole run."""
    if instances is not None and len(instances):
        ids = instances["instance_id"].astype(str).tolist()
        created, ready, stopped = (instances[c].to_numpy(dtype=float)
                                   for c in ("created_ts", "ready_ts", "stopped_ts"))
        note = ""
    else:
        first = busy.groupby("instance_id", sort=False)["start"].min().sort_values()
        ids = first.index.astype(str).tolist()
        created = ready = stopped = np.full(len(ids), np.nan)
        note = (f"no {layout.INSTANCES}: start, idle and reclaim times are unknown; busy periods "
                "come from the requests")
    total = len(ids)
    if total > cap:
        pick = np.unique(np.linspace(0, total - 1, cap).round().astype(int))
        ids = [ids[i] for i in pick]
        created, ready, stopped = created[pick], ready[pick], stopped[pick]
        every = round(total / len(ids))
        spread = f"about every {ordinal(every)} by start time" if every >= 2 else \
            "spread evenly by start time"
        capped = f"showing {len(ids)} of {total} instances ({spread})"
        note = "; ".join(x for x in (capped, note) if x)
    return Lanes(ids=ids, created=created, ready=ready, stopped=stopped, total=total, note=note)


def lane_states(lanes: Lanes, busy: pd.DataFrame, *, t0: float, t1: float, width: int
                ) -> np.ndarray:
    """A (lanes × `width`) raster of state codes (`STATES`) over [t0, t1]; a busy period
    shorter than a pixel still takes one."""
    n = len(lanes.ids)
    out = np.zeros((n, width), dtype=np.int8)
    if n == 0 or t1 <= t0:
        return out
    dt = (t1 - t0) / width

    def px(t: np.ndarray) -> np.ndarray:
        return np.clip(np.floor((t - t0) / dt), 0, width).astype(np.int64)

    cols = np.arange(width)
    known = np.isfinite(lanes.created)
    end = np.where(np.isfinite(lanes.stopped), lanes.stopped, t1)
    ready = np.where(np.isfinite(lanes.ready), lanes.ready, end)  # never ready: starting
    a, r, z = px(np.where(known, lanes.created, t1)), px(ready), px(end)
    starting = (cols >= a[:, None]) & (cols < r[:, None])
    idle = (cols >= r[:, None]) & (cols < z[:, None]) & known[:, None]
    out[starting] = _STARTING
    out[idle] = _IDLE
    lane_of = {name: i for i, name in enumerate(lanes.ids)}
    lane = busy["instance_id"].map(lane_of).to_numpy()
    shown = ~np.isnan(lane.astype(float))
    if shown.any():
        li = lane[shown].astype(np.int64)
        bs = px(busy["start"].to_numpy()[shown])
        be = np.maximum(bs + 1, np.ceil((busy["end"].to_numpy()[shown] - t0) / dt)
                        ).astype(np.int64).clip(0, width)
        stride = width + 1
        cover = np.bincount(li * stride + bs, minlength=n * stride) \
            - np.bincount(li * stride + be, minlength=n * stride)
        busy_px = np.cumsum(cover.reshape(n, stride), axis=1)[:, :width] > 0
        out[busy_px] = _BUSY
    return out


def lane_busy_share(lanes: Lanes, busy: pd.DataFrame, *, t0: float, t1: float, width: int
                    ) -> np.ndarray:
    """A (lanes × `width`) raster of the share of each pixel's time [t0 + k·dt, t0 + (k+1)·dt)
    that the lane's instance was busy (0 to 1): exact, so one 20 ms request in a 1 min pixel
    reads 0.0003, not "busy". Busy periods of one instance do not overlap
    (`busy_intervals`)."""
    n = len(lanes.ids)
    out = np.zeros((n, width))
    if n == 0 or t1 <= t0 or not len(busy):
        return out
    lane_of = {name: i for i, name in enumerate(lanes.ids)}
    lane = busy["instance_id"].map(lane_of).to_numpy(dtype=float)
    shown = np.isfinite(lane)
    if not shown.any():
        return out
    li = lane[shown].astype(np.int64)
    dt = (t1 - t0) / width
    u = np.clip((busy["start"].to_numpy(float)[shown] - t0) / dt, 0, width)
    v = np.clip((busy["end"].to_numpy(float)[shown] - t0) / dt, 0, width)
    v = np.maximum(u, v)
    a = np.minimum(np.floor(u).astype(np.int64), width - 1)
    b = np.minimum(np.floor(v).astype(np.int64), width - 1)
    stride = width + 1
    size = n * stride

    def add(at: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return np.bincount(at, weights=weights, minlength=size)

    same, d = a == b, a != b
    # a period inside one pixel; else its partial first and last pixels ...
    part = add(li[same] * stride + a[same], v[same] - u[same]) \
        + add(li[d] * stride + a[d], (a[d] + 1) - u[d]) + add(li[d] * stride + b[d], v[d] - b[d])
    # ... and the whole pixels between, through a difference array
    steps = add(li[d] * stride + a[d] + 1, np.ones(int(d.sum()))) \
        - add(li[d] * stride + b[d], np.ones(int(d.sum())))
    whole = np.cumsum(steps.reshape(n, stride), axis=1)
    out = part.reshape(n, stride)[:, :width] + whole[:, :width]
    return np.clip(out, 0.0, 1.0)