"""The comparison's HTML page (`compare.html`) and its overlaid plots (matplotlib, Agg).

Key names: `write_compare_html`, `plot_latency_cdfs`, `plot_p_cold`, `plot_phases`. Every
number drawn is one the comparison already holds (`fcbench.report.compare`), except the CDFs,
which draw each run's answered requests (`fcbench.measures.outcomes`) from its requests.csv.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..results import RunFolder, layout
from .render import render_html

if TYPE_CHECKING:
    from .compare import Comparison

__all__ = ["plot_latency_cdfs", "plot_p_cold", "plot_phases", "write_compare_html"]

#: Points a CDF line is drawn with at most (evenly spaced quantiles beyond that).
MAX_CDF_POINTS = 5000


def _pyplot() -> Any:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig: Any, out: Path) -> Path:
    """Lay out `fig`, write it to `out` (its folder made) and free it."""
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    _pyplot().close(fig)
    return out


def plot_latency_cdfs(c: Comparison, out: Path) -> Path | None:
    """Service latency CDFs of every run that has requests.csv, in one plot (None: none has)."""
    import numpy as np

    from ..measures import outcomes

    curves = []
    for run in c.runs:
        df = RunFolder.of(run.folder or run.path).requests()
        if df is None or not len(df):
            continue
        kinds = outcomes(df["status"].to_numpy(), df["cold"].to_numpy() if "cold" in df
                         else np.full(len(df), np.nan))
        answered = np.isin(kinds, ("warm", "cold"))
        lat = np.sort(df["latency_ms"].to_numpy()[answered])
        lat = lat[~np.isnan(lat)]
        if lat.size:
            curves.append((run.label, lat))
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
    for label, lat in curves:
        y = np.arange(1, lat.size + 1) / lat.size
        if lat.size > MAX_CDF_POINTS:
            idx = np.unique(np.linspace(0, lat.size - 1, MAX_CDF_POINTS).astype(int))
            lat, y = lat[idx], y[idx]
        ax.step(lat, y, where="post", label=f"{label} ({int(y.size)} pts)"
                if lat.size == MAX_CDF_POINTS else label)
    lo = min(float(lat[lat > 0].min()) if (lat > 0).any() else 1.0 for _, lat in curves)
    hi = max(float(lat.max()) for _, lat in curves)
    if lo > 0 and hi / lo > 50:
        ax.set_xscale("log")
    ax.set_xlabel("service latency (ms), answered requests")
    ax.set_ylabel("share of requests ≤ x")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Latency CDF (overlaid)")
    return _save(fig, out)


def plot_p_cold(c: Comparison, out: Path) -> Path | None:
    """P(cold) per run: the point, its block-bootstrap interval (thick) and Wilson interval
    (thin caps); for sweeps, P(cold) against the level, one line per run."""
    import numpy as np

    plt = _pyplot()
    level_metrics = [m for m, _, _ in c.metrics if m.startswith("p_cold[level=")]
    runs = [r for r in c.runs if (r.figures.get("p_cold") or
                                  any(m in r.figures for m in level_metrics))]
    if not runs:
        return None
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
    if level_metrics:
        for r in runs:
            pts = [(float(m[len("p_cold[level="):-1]), r.figures[m]) for m in level_metrics
                   if m in r.figures and r.figures[m].value is not None]
            if not pts:
                continue
            pts.sort(key=lambda p: p[0])
            x = np.array([p[0] for p in pts])
            y = np.array([p[1].value for p in pts])
            err = np.array([[v - (f.cluster or (v, v))[0] for (_, f), v in zip(pts, y)],
                            [(f.cluster or (v, v))[1] - v for (_, f), v in zip(pts, y)]])
            ax.errorbar(x, y, yerr=np.clip(err, 0, None), marker="o", capsize=4,
                        label=r.label)
        ax.set_xscale("log")
        levels = sorted({float(m[len("p_cold[level="):-1]) for m in level_metrics})
        ax.set_xticks(levels, [f"{lv:g}" for lv in levels])
        ax.minorticks_off()
        ax.set_xlabel("level")
        ax.legend(fontsize=8)
    else:
        for i, r in enumerate(runs):
            f = r.figures["p_cold"]
            if f.value is None:
                continue
            if f.wilson:
                ax.errorbar([i], [f.value], yerr=[[f.value - f.wilson[0]],
                                                  [f.wilson[1] - f.value]],
                            fmt="none", ecolor="#888888", capsize=10, lw=1,
                            label="Wilson 95%" if i == 0 else None)
            if f.cluster:
                ax.errorbar([i], [f.value], yerr=[[max(0.0, f.value - f.cluster[0])],
                                                  [max(0.0, f.cluster[1] - f.value)]],
                            fmt="o", color=f"C{i}", lw=4, capsize=0,
                            label="block bootstrap 95%" if i == 0 else None)
            else:
                ax.plot([i], [f.value], "o", color=f"C{i}")
        ax.set_xticks(range(len(runs)), [r.label for r in runs], rotation=10, fontsize=8)
        ax.set_xlim(-0.6, len(runs) - 0.4)
        ax.legend(fontsize=8)
    ax.set_ylabel("P(cold) = cold / requests sent")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.set_title("P(cold) with 95% intervals")
    return _save(fig, out)


def plot_phases(c: Comparison, out: Path) -> Path | None:
    """Median cold-start phases, one bar per run in each phase (None: no run has phases)."""
    import numpy as np

    names = [m[len("phase."):-len(".median")] for m, _, _ in c.metrics
             if m.startswith("phase.") and m.endswith(".median")]
    runs = [r for r in c.runs if any(f"phase.{n}.median" in r.figures for n in names)]
    if not runs:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, max(3.0, 0.45 * len(names) * max(1, len(runs)) / 2)),
                           dpi=100)
    height = 0.8 / len(runs)
    y = np.arange(len(names))
    for i, r in enumerate(runs):
        vals = [(r.figures.get(f"phase.{n}.median") or None) for n in names]
        ax.barh(y + i * height, [f.value or 0.0 if f else 0.0 for f in vals], height=height,
                label=r.label)
    ax.set_yticks(y + height * (len(runs) - 1) / 2, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("median (ms)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Cold-start phases (medians)")
    return _save(fig, out)


def _rows(c: Comparison) -> list[dict[str, Any]]:
    from .compare import format_value, held_text

    rows = []
    for metric, label, unit in c.metrics:
        cells = []
        for run in c.runs:
            fig = c.figure(metric, run)
            held = held_text(c, metric, run)
            cells.append({"value": format_value(fig, unit), "held": held,
                          "apart": held == "APART",
                          "wilson": (f"Wilson [{fig.wilson[0]:.3f}, {fig.wilson[1]:.3f}]"
                                     if fig is not None and fig.wilson else "")})
        rows.append({"metric": metric, "label": label, "unit": unit, "cells": cells})
    return rows


def _shown(value: Any, present: bool) -> str:
    import json

    if not present:
        return "(absent)"
    return json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)


def write_compare_html(c: Comparison, out_dir: str | Path) -> Path:
    """Draw the plots into `out_dir/plots/` and write `out_dir/compare.html` (images embedded,
    CSVs and each run's own report linked); returns its path."""
    out_dir = Path(out_dir)
    pngs = [p for p in (plot_latency_cdfs(c, out_dir / "plots" / "latency_cdf.png"),
                        plot_p_cold(c, out_dir / "plots" / "p_cold.png"),
                        plot_phases(c, out_dir / "plots" / "phases.png")) if p is not None]
    plots = [{"name": p.name, "data": base64.b64encode(p.read_bytes()).decode()} for p in pngs]
    runs = []
    for r in c.runs:
        report = r.path / layout.REPORT
        runs.append({"label": r.label, "kind": r.kind, "folder": str(r.path.resolve()),
                     "report": os.path.relpath(report.resolve(), out_dir.resolve())
                     if report.is_file() else None,
                     "notes": r.notes, "recomputed": r.recomputed})
    diff = [{"key": d.key, "bookkeeping": d.bookkeeping,
             "cells": [{"text": _shown(v, p), "present": p, "line": ln} for v, p, ln in
                        zip(d.values, d.present, d.lines)]}
            for d in sorted(c.diff, key=lambda d: d.bookkeeping)]
    # the template is named after the page it renders
    return render_html(
        layout.COMPARE_HTML, out_dir / layout.COMPARE_HTML,
        title="Comparison: " + " vs ".join(r.label for r in c.runs), runs=runs,
        baseline=c.baseline.label, rows=_rows(c), diff=diff, plots=plots, table=c.table,
        files=[n for n in (layout.COMPARE_CSV, layout.CONFIG_DIFF) if (out_dir / n).is_file()])
