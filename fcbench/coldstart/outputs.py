"""Cold-start phase outputs: `phases.csv`, a stacked-bar PNG and a terminal table.

Key names: `write_phases_csv`, `plot_phases`, `phase_table`.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .profile import ProfileResult

__all__ = ["phase_table", "plot_phases", "write_phases_csv"]


def write_phases_csv(result: ProfileResult, path: Path) -> Path:
    """One row per sample (kept, warm-up, wrong and failed alike; `kind` tells them apart)."""
    rows = [s.row(result.phase_names) for s in result.samples]
    fields = list(rows[0]) if rows else ["index", "kind"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def plot_phases(result: ProfileResult, path: Path, title: str = "") -> Path:
    """Stacked bars, one per kept cold start plus the medians; warm latency as a marker."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kept = result.kept
    names = [n for n in result.phase_names
             if any(abs(s.phases.get(n) or 0.0) > 0.05 for s in kept)] or result.phase_names
    labels = [f"#{s.index}" for s in kept] + ["median"]
    columns = [[s.phases.get(n) or 0.0 for n in names] for s in kept]
    columns.append([result.stats.get(n, {}).get("median", 0.0) for n in names])
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(labels) + 3), 4.5))
    bottoms = [0.0] * len(labels)
    cmap = plt.get_cmap("tab20")  # more than ten phases with the platform's: no colour twice
    for j, name in enumerate(names):
        heights = [max(0.0, col[j]) for col in columns]
        ax.bar(labels, heights, bottom=bottoms, label=name, color=cmap(j % 20))
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    warm = [s.warm_ms for s in kept] + [result.stats.get("warm", {}).get("median")]
    ax.scatter(labels, [w if w is not None else float("nan") for w in warm], color="black",
               marker="_", s=300, zorder=3, label="warm request")
    ax.set_ylabel("ms")
    ax.set_title(title or f"Cold-start phases ({len(kept)} cold starts)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def phase_table(result: ProfileResult) -> str:
    """A plain-text table: median and spread (p25–p75, min–max) per phase."""
    names = [*result.phase_names, "e2e", "warm", "cold_penalty"]
    w = max(18, 1 + max(map(len, names)))  # platform_image_pull is 19 characters
    lines = [f"{'phase':<{w}}{'median ms':>11}{'p25–p75 ms':>20}{'min–max ms':>22}"]
    for name in names:
        st = result.stats.get(name)
        if st is None:
            if name in result.phase_names and result.kept:
                lines.append(f"{name:<{w}}{'unknown':>11}  (not measured: no such step on this "
                             "runtime, or nothing reported it)")
            continue
        lines.append(f"{name:<{w}}{st['median']:>11.1f}{st['p25']:>10.1f}–{st['p75']:<9.1f}"
                     f"{st['min']:>11.1f}–{st['max']:<10.1f}")
    counts = result.counts
    lines.append(f"samples: {counts['ok']} cold kept, {counts['warmup']} warm-up dropped, "
                 f"{counts['not_cold']} not cold, {counts['failed']} failed")
    pull = result.summary().get("pull")
    if pull:
        lines.append(f"image pull: median {pull['median_bytes'] / 1e6:.1f} MB at "
                     f"{pull['median_mb_s']:.1f} MB/s")
    share = result.unattributed_pct()
    if share is not None:
        ms = result.stats.get("unattributed", {}).get("median", 0.0)
        lines.append(f"unattributed: median {share:.2f}% of e2e ({ms:.2f} ms)")
    return "\n".join(lines)
