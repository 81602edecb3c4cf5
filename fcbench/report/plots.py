"""Plots of a load run (matplotlib, Agg backend, imported only when drawing).

Key names: `plot_latency` — latency over time, cold requests and errors marked.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["plot_latency"]

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
                (ok & cold, dict(marker="o", ms=5, mfc="none", mec="#d62728", mew=1.2),
                 "cold"),
                (~ok, dict(marker="x", ms=5, color="black", mew=1.0), "error")):
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
