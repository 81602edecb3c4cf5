"""A sweep's levels: their figures (one row of sweep.csv each), what each one may claim, and
the verdict over them.

Key names: `SweepLevel`, `SWEEP_FIELDS`, `level_figures`, `level_line`, `sweep_verdict`,
`monotone_within_intervals`, `NOT_COMPARABLE_SHARE`, `INTERVALS_HELP`.

Every figure is read from a `summarize` summary, so it has the one definition of
`fcbench.measures`: P(cold) = cold / requests sent, its block-bootstrap interval shown only where
`measures.interval_known` (else "too few requests to tell"), the four outcome shares. P(cold)
counts throttled (429) and failed requests in its denominator, so a level that refuses much of
its traffic shows a low P(cold) because requests were refused, not because instances stayed warm:
a level with more than `NOT_COMPARABLE_SHARE` of its requests throttled or failed is marked not
comparable and is never counted as a fall.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..measures import MIN_BLOCKS, OUTCOMES
from ..results import layout

__all__ = ["INTERVALS_HELP", "NOT_COMPARABLE_SHARE", "SWEEP_FIELDS", "SweepLevel",
           "level_figures", "level_line", "monotone_within_intervals", "read_sweep_csv",
           "sweep_verdict", "write_sweep_csv"]

#: a level whose requests were more than this share throttled (429) or failed, in its steady
#: part or over the whole level, is not comparable: its P(cold) is low by refusal
NOT_COMPARABLE_SHARE = 0.02

TOO_FEW = "too few requests to tell"

#: what a sweep's P(cold) and its interval are, for --help, the docs and the plot alike
INTERVALS_HELP = (
    "P(cold) = cold / requests sent, with a 95 % block-bootstrap interval (blocks of "
    "consecutive requests, so the cold requests one start makes stay together; with fewer than "
    f"{MIN_BLOCKS} blocks of requests there is none: '{TOO_FEW}'); Wilson's interval "
    f"(independent requests) is kept in {layout.SWEEP} as p_cold_lo/p_cold_hi. A level with more "
    f"than {NOT_COMPARABLE_SHARE:.0%} of its requests throttled (429) or failed is marked not "
    "comparable and left out of the 'falls monotonically' verdict")


@dataclass
class SweepLevel:
    """One level's outcome (a row of sweep.csv); the figures are of its steady part (requests
    intended after the warm-up) unless named ``from_zero``."""

    level: float
    concurrency: float
    instance_concurrency: int
    rate_rps: float | None
    requests: int  # after the warm-up
    cold: int
    p_cold: float | None
    p_cold_lo: float  # Wilson (independent requests)
    p_cold_hi: float
    p50_ms: float | None
    p99_ms: float | None
    instances: int | None
    errors: int
    run_dir: str = ""
    #: the block-bootstrap interval (cold requests clustered by start): the one to trust;
    #: None when there were too few requests to tell
    p_cold_cluster_lo: float | None = None
    p_cold_cluster_hi: float | None = None
    #: over the whole level, ramp from zero included, with its cluster interval
    p_cold_from_zero: float | None = None
    p_cold_from_zero_lo: float | None = None
    p_cold_from_zero_hi: float | None = None
    level_s: float = 0.0
    steady: bool = True
    #: the four outcome shares of the steady requests (`measures.outcome`), adding up to 1
    warm_share: float | None = None
    cold_share: float | None = None
    throttled_share: float | None = None
    failed_share: float | None = None
    #: False when more than NOT_COMPARABLE_SHARE were throttled or failed; `note` says why
    comparable: bool = True
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def interval_known(self) -> bool:
        return self.p_cold_cluster_lo is not None and self.p_cold_cluster_hi is not None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SweepLevel:
        """A level from a sweep.csv row or a summary.json ``levels`` entry."""
        kinds = {f.name: f.type for f in fields(cls) if f.name != "extra"}
        out: dict[str, Any] = {}
        for name, kind in kinds.items():
            if name not in row:
                continue
            value = row[name]
            if value in ("", "None", "nan", None):
                out[name] = None if "None" in str(kind) else value
            elif kind == "bool":
                out[name] = value if isinstance(value, bool) else str(value) == "True"
            elif kind.startswith("int"):
                out[name] = int(float(value))
            elif kind.startswith("float"):
                out[name] = float(value)
            else:
                out[name] = str(value)
        return cls(**out)


#: sweep.csv's columns, measured and predicted alike
SWEEP_FIELDS = ["level", "concurrency", "instance_concurrency", "rate_rps", "requests", "cold",
                "p_cold", "p_cold_lo", "p_cold_hi", "p_cold_cluster_lo", "p_cold_cluster_hi",
                "p_cold_from_zero", "p_cold_from_zero_lo", "p_cold_from_zero_hi", "level_s",
                "steady", "warm_share", "cold_share", "throttled_share", "failed_share",
                "comparable", "note", "p50_ms", "p99_ms", "instances", "errors", "run_dir"]


def _round(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) else value


def level_row(lv: SweepLevel) -> dict[str, Any]:
    """The level as sweep.csv and summary.json hold it (`SWEEP_FIELDS`)."""
    return {k: _round(getattr(lv, k)) for k in SWEEP_FIELDS}


def write_sweep_csv(levels: list[SweepLevel], path: Path) -> Path:
    """One row per level, `SWEEP_FIELDS` columns (an unknown interval is left empty)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SWEEP_FIELDS)
        writer.writeheader()
        for lv in levels:
            writer.writerow({k: "" if v is None else v for k, v in level_row(lv).items()})
    return path


def read_sweep_csv(path: Path) -> list[SweepLevel]:
    """The levels of a sweep.csv (as `write_sweep_csv` wrote them)."""
    with open(path, newline="", encoding="utf-8") as f:
        return [SweepLevel.from_row(row) for row in csv.DictReader(f)]


def _pct(share: float | None) -> str:
    if share is None:
        return "–"
    v = share * 100.0
    return f"{v:.1f} %" if v < 10 else f"{v:.0f} %"


def _refused(summary: dict[str, Any]) -> str | None:
    """"throttled 85 %" (and/or "failed ..."), when more than NOT_COMPARABLE_SHARE of the
    summary's requests were throttled or failed; else None."""
    shares = summary.get("outcomes") or {}
    bad = {k: (shares.get(k) or {}).get("share") or 0.0 for k in ("throttled", "failed")}
    if sum(bad.values()) <= NOT_COMPARABLE_SHARE:
        return None
    return ", ".join(f"{k} {_pct(v)}" for k, v in bad.items() if v > 0)


def _interval(pc: dict[str, Any]) -> tuple[float | None, float | None]:
    cl = pc.get("cluster") or {}
    if not cl.get("known", False):
        return None, None
    return float(cl["lo"]), float(cl["hi"])


def level_figures(steady: dict[str, Any], whole: dict[str, Any]) -> dict[str, Any]:
    """The `SweepLevel` fields a level's two summaries give: its steady part and the whole
    level from zero (`summarize` of each)."""
    pc = steady.get("p_cold") or {}
    zero = whole.get("p_cold") or {}
    lat = steady.get("latency_ms") or {}
    shares = steady.get("outcomes") or {}
    lo, hi = _interval(pc)
    zlo, zhi = _interval(zero)
    notes = []
    refused = _refused(steady)
    if refused:
        notes.append(f"{refused}: P(cold) here is not comparable")
    refused_whole = _refused(whole)
    if refused_whole and not refused:
        notes.append(f"from zero {refused_whole}: P(cold) here is not comparable")
    return {
        "requests": int(steady.get("count", 0)), "cold": int(steady.get("cold_starts", 0)),
        "errors": int(steady.get("errors", 0)), "p_cold": pc.get("value"),
        "p_cold_lo": float(pc.get("lo", 0.0)), "p_cold_hi": float(pc.get("hi", 1.0)),
        "p_cold_cluster_lo": lo, "p_cold_cluster_hi": hi,
        "p_cold_from_zero": zero.get("value"), "p_cold_from_zero_lo": zlo,
        "p_cold_from_zero_hi": zhi, "p50_ms": lat.get("p50"), "p99_ms": lat.get("p99"),
        **{f"{k}_share": (shares.get(k) or {}).get("share") for k in OUTCOMES},
        "comparable": not notes, "note": "; ".join(notes)}


def level_line(lv: SweepLevel, label: str = "level") -> str:
    """The console line of one level: requests and their four outcome shares, steady P(cold)
    with its interval (or why there is none), from zero, instances, p99, and any warning."""
    mix = " · ".join(f"{k} {_pct(getattr(lv, f'{k}_share'))}" for k in OUTCOMES)
    if lv.p_cold is None:
        p = "-"
    elif lv.interval_known:
        p = f"{lv.p_cold:.3f} [{lv.p_cold_cluster_lo:.3f}, {lv.p_cold_cluster_hi:.3f}]"
    else:
        p = f"{lv.p_cold:.3f} ({lv.cold}/{lv.requests}: {TOO_FEW})"
    zero = "-" if lv.p_cold_from_zero is None else f"{lv.p_cold_from_zero:.3f}"
    p99 = "-" if lv.p99_ms is None else f"{lv.p99_ms:.1f} ms"
    line = (f"  {label} {lv.level:g}: {lv.requests} requests ({mix}), {lv.cold} cold, steady "
            f"P(cold) {p} (from zero {zero}), {lv.instances} instances, p99 {p99}")
    return line + (f"  !! {lv.note}" if lv.note else "")


def _left_out(lv: SweepLevel) -> str | None:
    """Why a level cannot take part in the verdict, or None."""
    if lv.p_cold is None:
        return "no request"
    if not lv.comparable:
        return lv.note
    if not lv.interval_known:
        return TOO_FEW
    return None


def sweep_verdict(levels: list[SweepLevel]) -> dict[str, Any]:
    """What the levels that can tell say of P(cold) against the level, in three parts:

    * ``monotone``: no level's 95 % block-bootstrap interval lies wholly above that of a lower
      one (no significant rise) — True / False, None with fewer than two levels;
    * ``falls``: besides, the highest level's interval lies wholly below the lowest's (a
      significant fall from first to last); False when the curve may as well be flat;
    * ``factor`` (lowest level's P(cold) / highest's) beside ``proportional`` (highest level /
      lowest: what "falls in proportion to concurrency", 1/c, would give).

    Levels not comparable (throttled or failed), with too few requests, or with none are left
    out and named."""
    usable = [lv for lv in levels if _left_out(lv) is None]
    left_out = [{"level": lv.level, "why": _left_out(lv)} for lv in levels
                if _left_out(lv) is not None]
    monotone: bool | None = None
    falls: bool | None = None
    factor = proportional = None
    if len(usable) >= 2:
        monotone = not any(high.p_cold_cluster_lo > low.p_cold_cluster_hi  # type: ignore[operator]
                           for i, low in enumerate(usable) for high in usable[i + 1:])
        first, last = usable[0], usable[-1]
        falls = bool(monotone and last.p_cold_cluster_hi < first.p_cold_cluster_lo)  # type: ignore[operator]
        factor = first.p_cold / last.p_cold if last.p_cold else None
        if first.level and all(lv.level == lv.concurrency for lv in usable):  # a load sweep
            proportional = last.level / first.level
    over = ", ".join(f"{lv.level:g}" for lv in usable)
    if monotone is None:
        text = (f"P(cold) cannot be compared across levels: {len(usable)} level(s) can tell"
                + (f" ({over})" if usable else ""))
    elif not monotone:
        text = (f"P(cold) does NOT fall over levels {over}: a higher level's 95 % "
                "block-bootstrap interval lies wholly above a lower one's")
    else:
        first, last = usable[0], usable[-1]
        how = (f"{first.p_cold:.4f} at {first.level:g} -> {last.p_cold:.4f} at "
               f"{last.level:g}" + (f" (÷{factor:.1f}; in proportion to 1/c: "
                                    f"÷{proportional:g})" if factor and proportional else ""))
        text = (f"P(cold) falls over levels {over}: {how}; no level is above a lower one "
                "within the 95 % block-bootstrap intervals" if falls else
                f"P(cold) does not fall significantly over levels {over} ({how}): no level is "
                "above a lower one, but the highest level's 95 % interval overlaps the "
                "lowest's")
    if left_out:
        text += "; left out: " + ", ".join(f"{d['level']:g} ({d['why']})" for d in left_out)
    return {"monotone": monotone, "falls": falls, "factor": factor,
            "proportional": proportional, "levels": [lv.level for lv in usable],
            "left_out": left_out, "text": text}


def monotone_within_intervals(levels: list[SweepLevel]) -> bool | None:
    """`sweep_verdict`'s answer alone: True / False, None when it cannot tell."""
    return sweep_verdict(levels)["monotone"]
