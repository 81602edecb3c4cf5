"""`plots/p_cold.png`: a sweep's P(cold) per level over its outcome shares.

Key names: `plot_p_cold`. The top panel is P(cold) with its 95 % block-bootstrap bars (the
simulator's curve and band over it, when given; a 1/c line for concurrency sweeps); a level with
too few requests to tell has no bar, and one that is not comparable (throttled or failed, see
`levels.NOT_COMPARABLE_SHARE`) is drawn apart, crossed, and joins no line. The bottom panel
stacks each level's four outcome shares (warm, cold, throttled, failed), so refusals show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..measures import OUTCOMES
from .levels import TOO_FEW, SweepLevel

__all__ = ["VARY_LABELS", "plot_p_cold"]

#: what a sweep's levels set, as the x axis and messages name it
VARY_LABELS = {"concurrency": "concurrency (mean requests in flight)",
               "instance-concurrency": "instanceConcurrency", "idle-timeout": "idleTimeout (s)",
               "min-instances": "minInstances"}

_COLOURS = {"warm": "tab:green", "cold": "tab:blue", "throttled": "tab:red", "failed": "0.3"}


def _split(levels: list[SweepLevel]) -> tuple[list[SweepLevel], list[SweepLevel],
                                             list[SweepLevel]]:
    """(comparable with an interval, comparable without one, not comparable) levels."""
    pts = [lv for lv in levels if lv.p_cold is not None]
    return ([lv for lv in pts if lv.comparable and lv.interval_known],
            [lv for lv in pts if lv.comparable and not lv.interval_known],
            [lv for lv in pts if not lv.comparable])


def plot_p_cold(levels: list[SweepLevel], path: Path, *, vary: str, title: str,
                points_label: str = "measured", predicted: list[SweepLevel] | None = None,
                predicted_label: str = "simulator") -> Path:
    """Draw the sweep (module docstring) into `path`. `points_label` says what the levels are
    ("measured", or "simulated" for a sweep run on simulated time)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, shares) = plt.subplots(2, 1, figsize=(6.5, 5.6), sharex=True,
                                     gridspec_kw={"height_ratios": [3, 1.2]})
    log_x = vary != "min-instances" and all(lv.level > 0 for lv in levels + (predicted or []))
    xs_all: list[float] = [lv.level for lv in levels]
    good, few, refused = _split(levels)
    if good:
        xs = [lv.level for lv in good]
        ys = [float(lv.p_cold) for lv in good]  # type: ignore[arg-type]
        err = [[max(0.0, y - float(lv.p_cold_cluster_lo)) for y, lv in zip(ys, good)],
               [max(0.0, float(lv.p_cold_cluster_hi) - y) for y, lv in zip(ys, good)]]
        ax.errorbar(xs, ys, yerr=err, fmt="o-", capsize=4, color="tab:blue",
                    label=f"{points_label} P(cold) = cold / requests sent, 95% block-bootstrap")
        if vary == "concurrency" and ys[0] and len(xs) > 1:
            ref = [ys[0] * xs[0] / x for x in xs]
            ax.plot(xs, ref, ":", color="0.4", label=f"∝ 1/c through c = {xs[0]:g}")
    if few:
        ax.plot([lv.level for lv in few], [lv.p_cold for lv in few], "o", mfc="none",
                color="tab:blue", label=f"{points_label}, no interval: {TOO_FEW}")
    if refused:
        ax.plot([lv.level for lv in refused], [lv.p_cold for lv in refused], "x", ms=9,
                color="tab:red", label=f"{points_label}, not comparable (throttled/failed)")
    for lv in good + few + refused:
        why = lv.note.split(":")[0]  # "throttled 55 %"
        text = f"{lv.cold}/{lv.requests}" + ("" if lv.comparable else f"\n{why}")
        ax.annotate(text, (lv.level, lv.p_cold), fontsize=7, textcoords="offset points",
                    xytext=(0, 7), ha="center",
                    color="tab:red" if not lv.comparable else "black")
    sim_good, _, sim_refused = _split(predicted or [])
    if sim_good:
        sx = [lv.level for lv in sim_good]
        xs_all += sx
        ax.fill_between(sx, [float(lv.p_cold_cluster_lo) for lv in sim_good],
                        [float(lv.p_cold_cluster_hi) for lv in sim_good], color="tab:orange",
                        alpha=0.2, label=f"{predicted_label}: 95% block-bootstrap")
        ax.plot(sx, [lv.p_cold for lv in sim_good], "s--", color="tab:orange",
                label=f"{predicted_label} P(cold)")
    if sim_refused:
        ax.plot([lv.level for lv in sim_refused], [lv.p_cold for lv in sim_refused], "x",
                color="tab:orange", label=f"{predicted_label}, not comparable")
    _draw_shares(shares, levels, log_x)
    if xs_all:
        ticks = sorted(set(xs_all))
        if log_x:
            ax.set_xscale("log", base=2)
        shares.set_xticks(ticks, [f"{x:g}" for x in ticks])
    ax.set_ylim(bottom=0)
    ax.margins(x=0.08)
    ax.set_ylabel("cold-start probability")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    shares.set_xlabel(VARY_LABELS.get(vary, vary))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _draw_shares(ax: Any, levels: list[SweepLevel], log_x: bool) -> None:
    """Stacked bars of each level's warm / cold / throttled / failed shares."""
    rows = [lv for lv in levels if lv.warm_share is not None]
    if log_x:
        lefts = [lv.level * 2 ** -0.3 for lv in rows]
        widths = [lv.level * (2 ** 0.3 - 2 ** -0.3) for lv in rows]
    else:
        lefts = [lv.level - 0.3 for lv in rows]
        widths = [0.6] * len(rows)
    bottoms = [0.0] * len(rows)
    for kind in OUTCOMES:
        heights = [getattr(lv, f"{kind}_share") or 0.0 for lv in rows]
        ax.bar(lefts, heights, width=widths, bottom=bottoms, align="edge",
               color=_COLOURS[kind], label=kind)
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of requests")
    ax.legend(fontsize=6, ncol=4, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
