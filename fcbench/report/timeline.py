"""What the instances of a run did over time, from `instances.csv` and `requests.csv`.

Key names: `load_instances`, `busy_intervals`, `in_flight`, `step_envelope`, `choose_lanes`,
`lane_states`, `STATES`. Pure numpy/pandas, vectorised so a 1,000,000-row run stays fast; the
drawing is in `fcbench.report.plots`.

* **starting**: created → ready (an instance that never got ready starts until it stopped).
* **busy**: at least one request in flight on it (the union of its requests' start → end; a
  request sent before its instance was ready is busy from ``ready_ts`` on: it waited for the
  start).
* **idle**: alive and ready with nothing in flight; **reclaimed**: stopped (``stopped_ts``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..measures import busy_intervals

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["INSTANCE_COLUMNS", "STATES", "Lanes", "busy_intervals", "choose_lanes", "in_flight",
           "lane_states", "load_instances", "step_envelope"]

#: The instances.csv columns the timeline reads (others are skipped).
INSTANCE_COLUMNS = ("instance_id", "created_ts", "ready_ts", "stopped_ts")
#: Lane state codes, by index (0: not alive).
STATES = ("", "starting", "idle", "busy")
_STARTING, _IDLE, _BUSY = 1, 2, 3


def load_instances(path: str | Path) -> pd.DataFrame | None:
    """The lifecycle columns of an instances.csv (absent ones NaN), sorted by creation;
    None where there is no such file, an empty frame where it has no rows."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        return None
    header = path.open(encoding="utf-8").readline().strip().split(",")
    cols = [c for c in INSTANCE_COLUMNS if c in header]
    if "instance_id" not in cols:
        return pd.DataFrame({c: pd.Series(dtype=object if c == "instance_id" else float)
                             for c in INSTANCE_COLUMNS})
    df = pd.read_csv(path, usecols=cols, dtype={c: object if c == "instance_id" else float
                                                for c in cols},
                     keep_default_na=False, na_values={c: [""] for c in cols[1:]})
    for c in INSTANCE_COLUMNS:
        if c not in df:
            df[c] = np.nan
    return df.sort_values("created_ts", kind="stable").reset_index(drop=True)


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
        note = ("no instances.csv: start, idle and reclaim times are unknown; busy periods "
                "come from the requests")
    total = len(ids)
    if total > cap:
        pick = np.unique(np.linspace(0, total - 1, cap).round().astype(int))
        ids = [ids[i] for i in pick]
        created, ready, stopped = created[pick], ready[pick], stopped[pick]
        step = total / cap
        capped = f"showing {len(ids)} of {total} instances (about every {step:.0f}th by start time)"
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
