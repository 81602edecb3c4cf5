"""Daily cost against calls per day: one FC curve per GPU memory size, the flat 24 h server
line, and where they cross.

Key names: `cost_curves` (the numbers, all from `fcbench.cost.model`), `plot_cost_curves` (the
PNG). Each call keeps an instance busy `duration_s` (`usage_from_calls`); the x axis ends where
one instance is busy all day (or past a marked number of calls, with that point drawn); the
break-even is `compare()`'s, never a second formula.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from .model import DAY_S, compare, daily_cost, usage_from_calls
from .tables import CuTable, GbSecondTable

__all__ = ["CostCurve", "CostCurves", "cost_curves", "plot_cost_curves"]

#: GPU memory sizes (GB) drawn when none are given.
DEFAULT_GPU_MEM_GB = (4.0, 8.0, 16.0, 24.0)


@dataclass(frozen=True)
class CostCurve:
    """One GPU memory size: FC's daily cost at each of `CostCurves.calls`, and the break-even."""

    gpu_gb: float
    cost: list[float]
    break_even_calls: float | None  # None: no server, or FC cheaper even when busy all day
    break_even_utilisation: float | None


@dataclass(frozen=True)
class CostCurves:
    """What `plot_cost_curves` draws, in `currency` per day."""

    table: str
    currency: str
    duration_s: float
    calls: list[float]
    server_per_day: float | None
    curves: list[CostCurve]


def cost_curves(table: GbSecondTable | CuTable, *, duration_s: float,
                gpu_mem_gb: list[float] | tuple[float, ...] = DEFAULT_GPU_MEM_GB,
                server_price_per_day: float | None = None, points: int = 200,
                include_calls: float | None = None, vcpu: float = 0.0, memory_gb: float = 0.0,
                disk_gb: float = 0.0, gpu_family: str = "tesla") -> CostCurves:
    """FC's daily cost over calls per day (log-spaced, up to one instance busy all day, or past
    `include_calls` when that is more) for each size, and each size's break-even against the
    server (`server_price_per_day`, default the table's own hourly price × 24). vcpu,
    memory_gb, disk_gb and gpu_family describe the instance, as in `usage_from_calls`.

    Raises:
        UsageError: no positive duration or no GPU size.
    """
    import numpy as np

    if not duration_s or duration_s <= 0:
        raise UsageError("the cost plot needs a positive per-call duration (seconds)")
    if not gpu_mem_gb:
        raise UsageError("the cost plot needs at least one GPU memory size (GB)")
    full = DAY_S / duration_s  # calls a day that keep one instance busy all day
    low, high = max(1.0, full / 1e4), full
    if include_calls and include_calls > 0:
        low, high = min(low, include_calls / 10), max(high, include_calls * 2)
    calls = np.geomspace(min(low, full / 10), high, points).tolist()
    hourly = None if server_price_per_day is None else server_price_per_day / 24.0
    shape = {"vcpu": vcpu, "memory_gb": memory_gb, "disk_gb": disk_gb}
    curves = []
    for gb in gpu_mem_gb:
        cost = [daily_cost(table, usage_from_calls(c, duration_s, gb, gpu_family=gpu_family,
                                                   **shape))["total"] for c in calls]
        cmp = compare(table, usage_from_calls(full, duration_s, gb, gpu_family=gpu_family,
                                              **shape), server_per_hour=hourly)
        u = cmp.break_even_utilisation
        curves.append(CostCurve(gpu_gb=float(gb), cost=cost, break_even_utilisation=u,
                                break_even_calls=None if u is None else u * full))
    used = hourly if hourly is not None else table.server_per_hour
    server = None if used is None else used * 24.0
    return CostCurves(table=table.name, currency=table.currency, duration_s=duration_s,
                      calls=calls, server_per_day=server, curves=curves)


def plot_cost_curves(table: GbSecondTable | CuTable, *, duration_s: float,
                     gpu_mem_gb: list[float] | tuple[float, ...] = DEFAULT_GPU_MEM_GB,
                     server_price_per_day: float | None = None, out: str | Path,
                     mark_calls: float | None = None, title: str = "", vcpu: float = 0.0,
                     memory_gb: float = 0.0, disk_gb: float = 0.0,
                     gpu_family: str = "tesla") -> Path:
    """Draw `cost_curves` to the PNG `out` (log x), break-even points marked and labelled;
    `mark_calls` adds a vertical line (e.g. a run's own calls a day); the instance's shape is
    passed on to `cost_curves`. Returns the path. The break-even marks are also written into
    the PNG's ``fcbench`` text chunk as JSON, so what was drawn can be checked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = cost_curves(table, duration_s=duration_s, gpu_mem_gb=gpu_mem_gb,
                       server_price_per_day=server_price_per_day,
                       include_calls=mark_calls, vcpu=vcpu, memory_gb=memory_gb,
                       disk_gb=disk_gb, gpu_family=gpu_family)
    fig, ax = plt.subplots(figsize=(9, 5), dpi=100)
    cmap = plt.get_cmap("viridis")
    marks: list[dict[str, float]] = []
    for i, curve in enumerate(data.curves):
        color = cmap(i / max(1, len(data.curves) - 1) * 0.85)
        ax.plot(data.calls, curve.cost, color=color, lw=1.8,
                label=f"FC, {curve.gpu_gb:g} GB GPU")
        if curve.break_even_calls is not None and data.server_per_day is not None:
            x, y = curve.break_even_calls, data.server_per_day
            ax.plot([x], [y], "o", color=color, ms=7, mec="black", zorder=4)
            ax.annotate(f"{curve.gpu_gb:g} GB: {x:,.0f} calls/day "
                        f"({curve.break_even_utilisation:.0%} busy)", (x, y),
                        xytext=(-12, 14 + 16 * len(marks)), textcoords="offset points",
                        ha="right", fontsize=8, color="black",
                        arrowprops={"arrowstyle": "-", "color": color, "lw": 0.8})
            marks.append({"gpu_gb": curve.gpu_gb, "calls": x, "cost": y})
    c = data.currency
    if data.server_per_day is not None:
        ax.axhline(data.server_per_day, color="#d62728", lw=1.6, linestyle="--",
                   label=f"GPU server 24 h ({data.server_per_day:,.2f} {c}/day)")
        never = [f"{cv.gpu_gb:g} GB" for cv in data.curves if cv.break_even_calls is None]
        if never:
            ax.text(0.01, 0.97, f"FC cheaper even when busy all day: {', '.join(never)}",
                    transform=ax.transAxes, fontsize=8, va="top", color="#57606a")
    else:
        ax.text(0.01, 0.97, f"{data.table} has no server price (pass one to compare)",
                transform=ax.transAxes, fontsize=8, va="top", color="#57606a")
    full = DAY_S / duration_s
    if data.calls[-1] > full * 1.001:  # past here FC runs several instances, a server saturates
        ax.axvline(full, color="#8a8f98", lw=1, linestyle="-.",
                   label="one instance busy all day")
    if mark_calls:
        ax.axvline(mark_calls, color="#57606a", lw=1, linestyle=":",
                   label=f"this run: {mark_calls:,.0f} calls/day")
    ax.set_xscale("log")
    ax.set_xlim(data.calls[0], data.calls[-1])
    if data.server_per_day:  # keep the crossing readable: the curves leave the top
        ax.set_ylim(0, data.server_per_day * 3)
    else:
        ax.set_ylim(bottom=0)
    ax.set_xlabel(f"calls per day ({duration_s:.3g} s of instance time each)")
    ax.set_ylabel(f"cost per day ({c})")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, 0.92), fontsize=8)
    ax.set_title(title or f"Daily cost on FC against a GPU server ({data.table}; as "
                 "published, check your console)", fontsize=10)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, metadata={"fcbench": json.dumps({"table": data.table,
                                                      "break_even": marks})})
    plt.close(fig)
    return out
