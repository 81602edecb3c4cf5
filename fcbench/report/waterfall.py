"""The cold-start phase waterfall of a `fcbench coldstart profile` folder (`phases.csv`).

Key names: `read_phases`, `waterfall`, `plot_phase_waterfall`. Each phase is a horizontal bar
starting where the previous one ended, one row per kept cold start and one for the medians
(those of `summary.json`, the profile's own statistics). A phase with no source is NaN
("unknown", see docs/coldstart.md): it is drawn as a marked gap of no length and named as
unknown, never as a zero-length measurement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..results import RunFolder
from ..results.folder import NOT_PHASES

__all__ = ["PhaseRows", "plot_phase_waterfall", "read_phases", "waterfall"]

#: Cold starts drawn at most (the first ones), besides the medians.
MAX_ROWS = 20


@dataclass(frozen=True)
class PhaseRows:
    """Phase names in order and, per row label, each phase's ms (NaN: unknown) and e2e."""

    names: list[str]
    rows: list[tuple[str, list[float], float]]
    kept: int  # cold starts in the folder (rows may show fewer)


def _float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def read_phases(run_dir: str | Path | RunFolder, *, limit: int = MAX_ROWS) -> PhaseRows | None:
    """The kept cold starts (``kind == ok``) of `run_dir/phases.csv` and the medians; None
    when the folder has no phases.csv or it holds no kept cold start."""
    folder = RunFolder.of(run_dir)
    read = folder.phase_rows()
    if read is None:
        return None
    columns, all_rows = read
    names = [c[:-3] for c in columns if c.endswith("_ms") and c not in NOT_PHASES]
    kept = [r for r in all_rows if r.get("kind") == "ok"]
    if not kept or not names:
        return None
    rows = [(f"#{r.get('index', i)}", [_float(r.get(f"{n}_ms")) for n in names],
             _float(r.get("e2e_ms"))) for i, r in enumerate(kept[:limit])]
    stats: dict[str, dict[str, float | None]] = folder.summary().get("phases_ms") or {}
    if stats:
        def median(name: str) -> float:
            value = (stats.get(name) or {}).get("median")
            return math.nan if value is None else float(value)
        rows.append(("median", [median(n) for n in names], median("e2e")))
    return PhaseRows(names=names, rows=rows, kept=len(kept))


def waterfall(values: list[float]) -> list[tuple[float, float | None]]:
    """(start, width) per phase, each starting where the previous known phase ended; width
    None for an unknown (NaN) phase, which takes no time on the axis. A negative phase (two
    clocks disagree) is drawn as zero long."""
    out: list[tuple[float, float | None]] = []
    at = 0.0
    for v in values:
        if v is None or math.isnan(v):
            out.append((at, None))
            continue
        width = max(0.0, float(v))
        out.append((at, width))
        at += width
    return out


def plot_phase_waterfall(run_dir: str | Path | RunFolder, out: str | Path, *, title: str = ""
                         ) -> Path | None:
    """Draw the waterfall of `run_dir`'s phases.csv to `out`; None when there is nothing to
    draw (no phases.csv, no kept cold start)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.artist import Artist
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    data = read_phases(run_dir)
    if data is None:
        return None
    cmap = plt.get_cmap("tab20")
    n = len(data.rows)
    fig, ax = plt.subplots(figsize=(10, min(10.0, 1.8 + 0.42 * n)), dpi=100)
    unknown_any: set[str] = set()
    for y, (_, values, e2e) in enumerate(data.rows):
        gaps: set[float] = set()
        for j, (start, width) in enumerate(waterfall(values)):
            if width is None:
                unknown_any.add(data.names[j])
                if start not in gaps:  # several unknowns in a row share one mark
                    gaps.add(start)
                    ax.plot([start, start], [y - 0.45, y + 0.45], color="#57606a", lw=1.2,
                            linestyle=":")
                    ax.text(start, y - 0.45, "?", ha="center", va="bottom", fontsize=8,
                            color="#57606a")
                continue
            ax.barh(y, width, left=start, height=0.7, color=cmap(j % 20),
                    edgecolor="white", linewidth=0.5)
        if not math.isnan(e2e):
            ax.plot([e2e, e2e], [y - 0.42, y + 0.42], color="black", lw=1.5)
    ax.set_yticks(range(n))
    ax.set_yticklabels([r[0] for r in data.rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ms since the request was sent")
    ax.grid(True, axis="x", alpha=0.3)
    always_unknown = [nm for j, nm in enumerate(data.names)
                      if all(math.isnan(r[1][j]) for r in data.rows)]
    handles: list[Artist] = [Patch(color=cmap(j % 20), label=nm + (" (unknown in some)"
                                                      if nm in unknown_any else ""))
               for j, nm in enumerate(data.names) if nm not in always_unknown]
    handles.append(Line2D([], [], color="black", lw=1.5, label="e2e"))
    if unknown_any:
        handles.append(Line2D([], [], color="#57606a", lw=1, linestyle=":",
                              label="? unknown phase (no source)"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    if always_unknown:
        ax.text(0, -0.12 - 0.5 / max(n, 3), "unknown (not measured: no such step, or "
                "nothing reported it): " + ", ".join(always_unknown),
                transform=ax.transAxes, fontsize=8, va="top", color="#57606a")
    shown = n - (1 if data.rows[-1][0] == "median" else 0)
    ax.set_title(title or f"Cold-start waterfall ({shown} of {data.kept} cold starts"
                 + (" and the medians)" if shown < n else ")"))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
