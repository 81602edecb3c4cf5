"""`fcbench report --compare`: two or more run folders side by side.

Key names: `load_run` (one folder's figures, read from its own files), `compare_runs`,
`Comparison`, `Figure`, `config_diff`, `write_comparison`, `terminal_table`. Nothing is
re-derived here: latency and P(cold) come from each folder's ``summary.json`` (made by
`fcbench.results.summary.summarize`, which uses `fcbench.measures`) and are recomputed through
that same function only where a figure is missing; phase medians come from the profile's own
processing; money from `fcbench.cost.model`. The first run is the baseline the others are
held against.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..tables import column_lines
from ..results import RunFolder, layout

__all__ = [
    "DEFAULT_TABLE",
    "Comparison",
    "ConfigDifference",
    "Figure",
    "RunData",
    "compare_runs",
    "config_diff",
    "load_run",
    "terminal_table",
    "write_comparison",
]

#: The price table figures are priced with unless `--table` says otherwise.
DEFAULT_TABLE = "fc-doc-simple"
#: summary.json blocks a run's figures are read from; missing ones are recomputed.
SUMMARY_KEYS = ("count", "errors", "outcomes", "p_cold", "latency_ms",
                "latency_from_intended_ms", "latency_ms_cold", "latency_ms_warm",
                "duration_s", "throughput_rps", "instances_started")
#: run.yaml keys that say when, where and under what name a run ran, not how it was set up.
BOOKKEEPING = ("title", "name", "started", "started_ts", "finished", "requests", "host.",
               "workload.name", "workload.source", "spec_file", "interrupted")
_ABSENT = object()


@dataclass(frozen=True)
class Figure:
    """One number of one run.

    Args:
        metric: a stable key (``latency_ms.p99``, ``p_cold``, ``phase.model_load.median``).
        label / unit: for people.
        value: None when the run does not have it.
        wilson / cluster: P(cold)'s 95 % intervals (Wilson; block bootstrap, the one the
            overlap flag uses because one start makes several requests cold).
        held: how another run is held against the baseline: ``ratio`` (B/A) or ``overlap``
            (whether the cluster intervals overlap).
    """

    metric: str
    label: str
    unit: str
    value: float | None
    wilson: tuple[float, float] | None = None
    cluster: tuple[float, float] | None = None
    held: str = "ratio"


@dataclass
class RunData:
    """What one run folder says: its configuration (run.yaml, secrets masked), summary, figures.

    `notes` say what could not be had (no metering to price, ...); `recomputed` names the
    summary blocks that were missing and recomputed from requests.csv.
    """

    path: Path
    label: str
    kind: str
    config: dict[str, Any]
    lines: dict[tuple, int]
    summary: dict[str, Any]
    figures: dict[str, Figure] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    recomputed: list[str] = field(default_factory=list)
    #: the folder it was read from (its files are read once, here and by the plots)
    folder: RunFolder | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ConfigDifference:
    """A run.yaml key (flattened: ``workload.target.functionSpecs[0].instanceConcurrency``)
    whose value is not the same in every run; `values` in run order (`None` where absent, with
    `present` False), `lines` where each run.yaml sets it."""

    key: str
    values: tuple[Any, ...]
    present: tuple[bool, ...]
    lines: tuple[int | None, ...]

    @property
    def bookkeeping(self) -> bool:
        """True for keys that record when/where a run ran rather than how it was set up."""
        return any(self.key == b or (b.endswith(".") and self.key.startswith(b))
                   for b in BOOKKEEPING)


@dataclass
class Comparison:
    """Runs side by side: the union of their metrics (in first-seen order) and the config diff."""

    runs: list[RunData]
    metrics: list[tuple[str, str, str]]  # (metric, label, unit)
    diff: list[ConfigDifference]
    table: str
    currency: str | None

    @property
    def baseline(self) -> RunData:
        return self.runs[0]

    def figure(self, metric: str, run: RunData) -> Figure | None:
        return run.figures.get(metric)

    def ratio(self, metric: str, run: RunData) -> float | None:
        """`run`'s value over the baseline's (None where either is missing or the base is 0)."""
        a, b = self.figure(metric, self.baseline), self.figure(metric, run)
        if a is None or b is None or a.value is None or b.value is None or a.value == 0:
            return None
        return b.value / a.value

    def overlaps(self, metric: str, run: RunData) -> bool | None:
        """Whether `run`'s cluster interval overlaps the baseline's (None: an interval missing).
        Apart means the difference is beyond chance at 95 %; overlapping does not prove
        sameness."""
        a, b = self.figure(metric, self.baseline), self.figure(metric, run)
        if a is None or b is None or a.cluster is None or b.cluster is None:
            return None
        return not (a.cluster[1] < b.cluster[0] or b.cluster[1] < a.cluster[0])


# -- reading one folder ---------------------------------------------------------------------------

def _phase_stats(folder: RunFolder) -> dict[str, Any]:
    """Phase statistics of a profile's phases.csv: `fcbench.measures.phase_stats` over its kept
    cold starts, the profile's own definition."""
    from ..measures import phase_stats

    names, samples = folder.phases() or ([], [])
    return phase_stats([s for s in samples if s.kind == "ok"], names)


def load_run(path: str | Path, *, label: str | None = None,
             table: str = DEFAULT_TABLE) -> RunData:
    """Read one run folder (a measured or simulated run, a coldstart profile or sweep).

    Raises:
        UsageError: `path` is not a run folder (named in the message), or is a comparison.
        SpecError: its run.yaml does not parse (file:line).
    """
    folder = RunFolder.open(path)
    run = folder.path
    config, lines = folder.config_located()
    if folder.kind() == "compare":
        raise UsageError(f"{run} is a comparison, not a run; compare the run folders it names")
    summary = dict(folder.summary())
    data = RunData(path=run, label=label or run.name, kind=folder.kind(), config=config,
                   lines=lines, summary=summary, folder=folder)
    missing = [k for k in SUMMARY_KEYS if k not in summary]
    if missing and folder.has(layout.REQUESTS):
        from ..results.summary import summarize

        fresh = summarize(folder.requests(), instances_started=folder.instances_started())
        for key in missing:
            if key in fresh:
                summary[key] = fresh[key]
                data.recomputed.append(key)
    if "phases_ms" not in summary and folder.has(layout.PHASES):
        summary["phases_ms"] = _phase_stats(folder)
        data.recomputed.append("phases_ms")
    for fig in _figures(summary):
        data.figures[fig.metric] = fig
    for fig in _cost_figures(folder, table, data.notes):
        data.figures[fig.metric] = fig
    return data


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value  # counts stay whole numbers in compare.csv
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def _pair(lo: Any, hi: Any) -> tuple[float, float] | None:
    lo, hi = _num(lo), _num(hi)
    return None if lo is None or hi is None else (lo, hi)


_LATENCY = (("latency_ms", "service latency", ("p50", "p90", "p99", "max", "mean")),
            ("latency_from_intended_ms", "latency from intended send", ("p50", "p90", "p99",
                                                                         "max")),
            ("latency_ms_warm", "service latency, warm", ("p50", "p99")),
            ("latency_ms_cold", "service latency, cold", ("p50", "p99")))


def _figures(s: dict[str, Any]) -> Iterator[Figure]:
    """The figures a summary holds, in display order (absent blocks give nothing)."""
    for key, label, unit in (("count", "requests sent", "requests"),
                             ("errors", "errors", "requests")):
        if key in s:
            yield Figure(key, label, unit, _num(s[key]))
    for kind, block in (s.get("outcomes") or {}).items():
        if isinstance(block, dict):
            yield Figure(f"outcomes.{kind}", f"outcome: {kind}", "requests",
                         _num(block.get("count")))
    p = s.get("p_cold")
    if isinstance(p, dict):
        cl = p.get("cluster") or {}
        yield Figure("p_cold", "P(cold) = cold / sent", "share", _num(p.get("value")),
                     wilson=_pair(p.get("lo"), p.get("hi")),
                     cluster=_pair(cl.get("lo"), cl.get("hi")), held="overlap")
    for key, label, qs in _LATENCY:
        block = s.get(key)
        if isinstance(block, dict):
            for q in qs:
                yield Figure(f"{key}.{q}", f"{label} {q}", "ms", _num(block.get(q)))
            if block.get("censored"):
                yield Figure(f"{key}.censored", f"{label}: no answer (lower bounds)",
                             "requests", _num(block["censored"]))
    for key, label, unit in (("throughput_rps", "throughput", "req/s"),
                             ("duration_s", "span of the run", "s"),
                             ("instances_started", "instances started", "instances")):
        if key in s:
            yield Figure(key, label, unit, _num(s[key]))
    for lv in s.get("levels") or []:  # a coldstart sweep: one set per level
        if not isinstance(lv, dict):
            continue
        at = f"[level={lv.get('level'):g}]" if _num(lv.get("level")) is not None else \
            f"[level={lv.get('level')}]"
        yield Figure(f"p_cold{at}", f"P(cold) at level {at[7:-1]}", "share",
                     _num(lv.get("p_cold")), wilson=_pair(lv.get("p_cold_lo"),
                                                          lv.get("p_cold_hi")),
                     cluster=_pair(lv.get("p_cold_cluster_lo"), lv.get("p_cold_cluster_hi")),
                     held="overlap")
        for q in ("p50_ms", "p99_ms"):
            yield Figure(f"latency_ms.{q[:3]}{at}", f"service latency {q[:3]} at level "
                         f"{at[7:-1]}", "ms", _num(lv.get(q)))
    for name, st in (s.get("phases_ms") or {}).items():
        if isinstance(st, dict):
            yield Figure(f"phase.{name}.median", f"cold-start phase {name} (median)", "ms",
                         _num(st.get("median")))


def _cost_figures(folder: RunFolder, table_name: str, notes: list[str]) -> Iterator[Figure]:
    """Cost per day and per 1000 requests, as `fcbench cost RUN_DIR` prices the run (its
    planned duration, its recorded shape, `fcbench.cost.billing.bill`); a run that cannot be
    priced (no GPU spec recorded, a CPU function in a GB·s table) has none, and a note says
    why — never a cost of 0."""
    from ..cost.billing import bill
    from ..cost.metering import priced_run
    from ..cost.model import per_thousand_requests
    from ..cost.tables import load_table

    table = load_table(table_name)
    try:
        priced = priced_run(folder)
        total = bill(table, priced.usage).total
    except UsageError as exc:
        notes.append(f"cost: {exc}")
        return
    c = table.currency
    yield Figure("cost.per_day", f"FC cost per day ({table.name})", f"{c}/day", total)
    yield Figure("cost.per_1000_requests", f"FC cost per 1000 requests ({table.name})",
                 f"{c}/1000 requests", per_thousand_requests(total, priced.usage.invocations))


# -- the comparison --------------------------------------------------------------------------------

def _flatten(value: Any, loc: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """(location, leaf) pairs; empty mappings and lists are leaves so they still differ."""
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from _flatten(v, (*loc, k))
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            yield from _flatten(v, (*loc, i))
    else:
        yield loc, value


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def config_diff(runs: Sequence[RunData]) -> list[ConfigDifference]:
    """Every flattened run.yaml key whose value is not the same in all `runs` (absent counts as
    a value of its own), in the order the keys first appear."""
    flats = [dict(_flatten(r.config)) if r.config else {} for r in runs]
    order: dict[tuple, None] = {}
    for flat in flats:
        order.update(dict.fromkeys(flat))
    out = []
    for loc in order:
        values = [flat.get(loc, _ABSENT) for flat in flats]
        if all(v == values[0] and type(v) is type(values[0]) for v in values[1:]):
            continue
        lines = tuple((r.lines.get(loc) if v is not _ABSENT else None)
                      for r, v in zip(runs, values))
        out.append(ConfigDifference(
            key=_dotted(loc), values=tuple(None if v is _ABSENT else v for v in values),
            present=tuple(v is not _ABSENT for v in values), lines=lines))
    return out


def _labels(paths: Sequence[Path]) -> list[str]:
    """Folder names; where two share a name, the parent folder too."""
    names = [p.name for p in paths]
    return [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in paths]


def compare_runs(paths: Sequence[str | Path], *, table: str = DEFAULT_TABLE) -> Comparison:
    """Load every folder in `paths` (the first is the baseline) and line their figures up.

    Raises:
        UsageError: fewer than two folders, one given twice, or one that is not a run folder.
    """
    folders = [Path(p) for p in paths]
    if len(folders) < 2:
        raise UsageError("a comparison needs two or more run folders")
    seen: set[Path] = set()
    for folder in folders:
        if folder.resolve() in seen:
            raise UsageError(f"{folder} is given twice; name each run folder once")
        seen.add(folder.resolve())
    runs = [load_run(p, label=label, table=table) for p, label in zip(folders, _labels(folders))]
    metrics: dict[str, tuple[str, str, str]] = {}
    for run in runs:
        for fig in run.figures.values():
            metrics.setdefault(fig.metric, (fig.metric, fig.label, fig.unit))
    from ..cost.tables import load_table

    return Comparison(runs=runs, metrics=list(metrics.values()), diff=config_diff(runs),
                      table=table, currency=load_table(table).currency)


# -- output ----------------------------------------------------------------------------------------

#: compare.csv's columns (long format: one row per metric and run).
CSV_COLUMNS = ("metric", "unit", "run", "value", "wilson_lo", "wilson_hi", "cluster_lo",
               "cluster_hi", "ratio_to_baseline", "overlaps_baseline", "label", "folder")


def comparison_rows(c: Comparison) -> Iterator[dict[str, Any]]:
    """compare.csv's rows: every metric of every run (value empty where a run lacks it)."""
    for metric, label, unit in c.metrics:
        for run in c.runs:
            fig = c.figure(metric, run)
            held = fig.held if fig else "ratio"
            ratio = c.ratio(metric, run) if held == "ratio" else None
            overlap = c.overlaps(metric, run) if held == "overlap" else None
            yield {"metric": metric, "unit": unit, "run": run.label,
                   "value": "" if fig is None or fig.value is None else fig.value,
                   "wilson_lo": fig.wilson[0] if fig and fig.wilson else "",
                   "wilson_hi": fig.wilson[1] if fig and fig.wilson else "",
                   "cluster_lo": fig.cluster[0] if fig and fig.cluster else "",
                   "cluster_hi": fig.cluster[1] if fig and fig.cluster else "",
                   "ratio_to_baseline": "" if ratio is None else round(ratio, 6),
                   "overlaps_baseline": "" if overlap is None else str(overlap).lower(),
                   "label": label, "folder": str(run.path.resolve())}


def _diff_rows(c: Comparison) -> Iterator[dict[str, Any]]:
    for d in c.diff:
        for run, value, present, line in zip(c.runs, d.values, d.present, d.lines):
            yield {"key": d.key, "run": run.label, "present": str(present).lower(),
                   "value": json.dumps(value, default=str) if present else "",
                   "line": line or "", "bookkeeping": str(d.bookkeeping).lower()}


def write_comparison(c: Comparison, parent: str | Path = "results") -> Path:
    """A fresh ``parent/<time>-compare/`` (never an existing folder) with compare.csv,
    config-diff.csv, compare.html (+ plots/) and run.yaml; returns the folder."""
    from .compare_html import write_compare_html

    folder = RunFolder.create(parent, "compare")
    folder.write_csv(layout.COMPARE_CSV, CSV_COLUMNS, comparison_rows(c))
    folder.write_csv(layout.CONFIG_DIFF, ("key", "run", "present", "value", "line",
                                          "bookkeeping"), _diff_rows(c))
    folder.finish(config={"title": "fcbench comparison: " + " vs ".join(r.label for r in c.runs),
                          "baseline": c.baseline.label,
                          "runs": [{"label": r.label, "folder": str(r.path.resolve()),
                                    "kind": r.kind, "recomputed": r.recomputed,
                                    "notes": r.notes} for r in c.runs],
                          "table": c.table},
                  kind="compare", report=lambda f: write_compare_html(c, f.path))
    return folder.path


def format_value(fig: Figure | None, unit: str) -> str:
    """A figure for a table cell (P(cold) with its cluster interval)."""
    if fig is None or fig.value is None:
        return "–"
    v = fig.value
    if fig.cluster is not None:
        return f"{v:.3f} [{fig.cluster[0]:.3f}, {fig.cluster[1]:.3f}]"
    if unit in ("requests", "instances"):
        return f"{v:.0f}"
    if fig.metric == "cost.per_day":
        return f"{v:,.2f}"  # money to the cent, as `fcbench cost` prints it
    if fig.metric.startswith("cost."):
        return f"{v:.4g}"
    if unit == "share":
        return f"{v:.3f}"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.3g}"


def held_text(c: Comparison, metric: str, run: RunData) -> str:
    """How `run` stands against the baseline: ``×1.23``, ``overlaps`` / ``apart``, or ''."""
    if run is c.baseline:
        return ""
    fig = c.figure(metric, run) or c.figure(metric, c.baseline)
    if fig is not None and fig.held == "overlap":
        o = c.overlaps(metric, run)
        return "" if o is None else ("overlaps" if o else "APART")
    r = c.ratio(metric, run)
    return "" if r is None else f"×{r:.2f}"


def _show(value: Any, present: bool) -> str:
    if not present:
        return "(absent)"
    text = json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def terminal_table(c: Comparison) -> list[str]:
    """The comparison as lines of text: one column per run (the first is the baseline; the
    others carry B/A or whether P(cold) intervals overlap), then the configuration diff."""
    head = ["metric", *(r.label for r in c.runs)]
    rows = []
    for metric, label, unit in c.metrics:
        cells = []
        for run in c.runs:
            text = format_value(c.figure(metric, run), unit)
            extra = held_text(c, metric, run)
            cells.append(f"{text} {extra}".rstrip() if text != "–" else text)
        rows.append([f"{label} ({unit})", *cells])
    lines = _columns(head, rows)
    lines.append("")
    settings = [d for d in c.diff if not d.bookkeeping]
    other = [d for d in c.diff if d.bookkeeping]
    if not c.diff:
        lines.append(f"configuration: {layout.RUN_YAML} is the same in every run")
    for title, group in ((f"configuration differences ({layout.RUN_YAML})", settings),
                         ("also differ (when, where, names)", other)):
        if group:
            lines.append(f"{title}:")
            lines += _columns(["key", *(r.label for r in c.runs)],
                              [[d.key, *(_show(v, p) for v, p in zip(d.values, d.present))]
                               for d in group])
    for run in c.runs:
        for note in run.notes:
            lines.append(f"{run.label}: {note}")
        if run.recomputed:
            lines.append(f"{run.label}: recomputed from its records: "
                         f"{', '.join(run.recomputed)}")
    return lines


def _columns(head: list[str], rows: list[list[str]]) -> list[str]:
    return column_lines(head, rows, align="first-left", rule=True)
