"""The self-contained HTML report of a run folder (`report.html`), rebuilt by `fcbench report`.

Key names: `write_report`. It reads only what is in the folder (run.yaml, summary.json, the CSVs,
plots/*.png), so any experiment's folder gets a report; images are embedded, CSVs linked beside it.
It draws the serverless picture into plots/ first (`_draw_sections`): the instance timeline,
requests and instances in flight, the cold/warm latency CDF, the cost section with its plot,
and, for a cold-start profile, the phase waterfall. A plot that fails is named in the report
instead of losing it.
"""

from __future__ import annotations

import base64
import csv
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..results import RunFolder, layout
from .render import render_html

__all__ = ["column_header", "column_kind", "format_number", "format_table", "write_report",
           "write_run_report"]

log = logging.getLogger(__name__)


#: Column kinds `format_number` knows, and how each is written.
NUMBER_KINDS = ("probability", "ms", "money", "count", "seconds", "share", "number")
_CURRENCY = re.compile(r"^(?P<table>.+)_(?P<cur>[A-Z]{3})_per_(?P<per>day|1000_requests)$")
#: Columns (of what-if, sweep and prediction CSVs) that count things: written as integers.
_COUNTS = frozenset({
    "requests", "requests_sent", "requests_throttled_429", "throttled", "cold", "cold_starts",
    "instances", "instances_started", "instances_seen", "errors", "ok", "count", "n", "level",
    "concurrency", "instance_concurrency", "instanceConcurrency", "minInstances",
    "maxInstances", "censored", "samples"})
#: Header text of the columns whose name says nothing in plain words (units in brackets).
_HEADERS = {
    "p_cold": "P(cold)", "p_cold_lo": "P(cold) lo", "p_cold_hi": "P(cold) hi",
    "p_cold_cluster_lo": "P(cold) lo (clustered)", "p_cold_cluster_hi": "P(cold) hi (clustered)",
    "p_cold_from_zero": "P(cold from zero)", "p_cold_from_zero_lo": "P(cold from zero) lo",
    "p_cold_from_zero_hi": "P(cold from zero) hi", "as_run": "as run",
    "requests_throttled_429": "throttled (429)", "requests_sent": "requests sent",
    "p99_from_intended_ms": "p99 from intended send (ms)", "rate_rps": "rate (req/s)",
    "level_s": "level length (s)", "run_dir": "run folder"}


def _bound(name: str) -> tuple[str, str]:
    """``x_lo`` -> (``x``, `` lo``), ``x_hi`` -> (``x``, `` hi``): an interval's ends are
    numbers of the same kind as ``x``."""
    for suffix in ("_lo", "_hi"):
        if name.endswith(suffix) and len(name) > 3:
            return name[:-3], f" {suffix[1:]}"
    return name, ""


def column_kind(name: str) -> str:
    """The kind of number (`NUMBER_KINDS`) a column holds, from its name: ``p_cold*`` a
    probability, ``*_ms`` milliseconds, ``<table>_<CUR>_per_*`` money, known counters counts,
    ``*_s`` seconds, ``*share*`` a share; anything else a plain number. An interval's ends
    (``*_lo``, ``*_hi``) are of the kind of their column."""
    if name.startswith("p_cold") or name in ("probability", "p"):
        return "probability"
    name = _bound(name)[0]
    if name.endswith("_ms") or name.endswith("(ms)"):
        return "ms"
    if _CURRENCY.match(name):
        return "money"
    if name in _COUNTS or name.endswith("_replications"):
        return "count"
    if name.endswith("_s"):
        return "seconds"
    if "share" in name or "utilisation" in name:
        return "share"
    return "number"


def column_header(name: str) -> str:
    """A CSV column name as a table header, its unit in brackets: ``idleTimeout_s`` ->
    ``idleTimeout (s)``, ``fc-doc-simple_CNY_per_day`` -> ``fc-doc-simple (CNY/day)``,
    ``..._per_day_lo`` -> ``... (CNY/day) lo``."""
    if name in _HEADERS:
        return _HEADERS[name]
    base, bound = _bound(name)
    if bound and base in _HEADERS:
        return _HEADERS[base] + bound
    money = _CURRENCY.match(base)
    if money:
        per = "day" if money["per"] == "day" else "1000 requests"
        return f"{money['table']} ({money['cur']}/{per}){bound}"
    for suffix, unit in (("_ms", "ms"), ("_s", "s"), ("_rps", "req/s")):
        if base.endswith(suffix) and len(base) > len(suffix):
            return f"{base[:-len(suffix)].replace('_', ' ')} ({unit}){bound}"
    return name.replace("_", " ")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def format_number(value: Any, kind: str = "number") -> str:
    """`value` written for a reader: probabilities with 4 decimals, ms with 1, money with 2
    (amounts under 0.1, such as a price per 1000 requests, to 2 significant digits rather
    than ``0.01``), counts and seconds
    as integers where they are whole, shares as percentages, other numbers to 3 significant
    digits (1 decimal from 100 up). ``None``, ``""`` and NaN are ``–``; booleans ``yes``/``no``;
    text that is not a number is returned as it is."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "nan", "NaN")):
        return "–"
    if isinstance(value, bool) or (isinstance(value, str) and value in ("True", "False")):
        return "yes" if value in (True, "True") else "no"
    x = _number(value)
    if x is None:
        return str(value)
    if math.isnan(x):
        return "–"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if kind == "probability":
        return f"{x:.4f}"
    if kind == "ms":
        return f"{x:,.1f}" if x == 0 or abs(x) >= 0.05 else f"{x:.2g}"
    if kind == "money":
        return f"{x:,.2f}" if x == 0 or abs(x) >= 0.1 else f"{x:.2g}"
    if kind == "share":
        return f"{x:.1%}"
    if kind == "count" or (x == round(x) and abs(x) < 1e15):
        return f"{round(x):,}"
    return f"{x:,.3g}" if abs(x) < 100 else f"{x:,.1f}"


def format_table(header: list[str], rows: list[list[Any]], *, title: str = "",
                 note: str = "", kinds: list[str] | None = None,
                 intervals: bool = True) -> dict[str, Any]:
    """A table for the report template (``{title, header, rows, note}``) from raw cells:
    each column's numbers written by `format_number` for its kind (`column_kind` of the
    column name unless `kinds` says), the names made headers with units (`column_header`).
    With `intervals`, a column ``x`` followed somewhere by ``x_lo`` and ``x_hi`` becomes one
    column ``x [lo, hi]`` with cells ``v [lo, hi]`` (``v`` alone where the row has no
    interval), which keeps a what-if table narrow. Any section (costs, what-ifs, sweeps) can
    lay its numbers out with it."""
    kinds = kinds or [column_kind(h) for h in header]
    kinds = kinds + ["number"] * (len(header) - len(kinds))
    index = {h: i for i, h in enumerate(header)}
    bounds = {i: (index[f"{h}_lo"], index[f"{h}_hi"]) for i, h in enumerate(header)
              if intervals and f"{h}_lo" in index and f"{h}_hi" in index}
    dropped = {j for pair in bounds.values() for j in pair}
    keep = [i for i in range(len(header)) if i not in dropped]

    def cell(row: list[Any], i: int) -> str:
        text = format_number(row[i] if i < len(row) else None, kinds[i])
        if i in bounds:
            lo, hi = (format_number(row[j] if j < len(row) else None, kinds[i])
                      for j in bounds[i])
            if (lo, hi) != ("–", "–"):
                text += f" [{lo}, {hi}]"
        return text

    return {"title": title,
            "header": [column_header(header[i]) + (" [lo, hi]" if i in bounds else "")
                       for i in keep],
            "rows": [[cell(row, i) for i in keep] for row in rows], "note": note}


def _fmt(value: Any, kind: str = "number") -> str:
    return format_number(value, kind)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _summary_cards(summary: dict[str, Any]) -> list[tuple[str, str]]:
    cards: list[tuple[str, str]] = []
    for key, label in (("requests", "requests"), ("count", "requests"), ("ok", "ok"),
                       ("errors", "errors"), ("cold_starts", "cold starts"),
                       ("instances_started", "instances started"),
                       ("throughput_rps", "throughput (req/s)")):
        if key in summary and not isinstance(summary[key], (dict, list)):
            cards.append((label, _fmt(summary[key])))
    p = summary.get("p_cold")
    if isinstance(p, dict) and p.get("value") is None:
        cards.append(("P(cold)", "unknown (no request said)"))
    elif isinstance(p, dict) and "value" in p:
        cards.append(("P(cold) [95% CI]",
                      f"{p['value']:.3f} [{p.get('lo') or 0:.3f}, {p.get('hi') or 0:.3f}]"))
    elif isinstance(p, (int, float)):
        cards.append(("P(cold)", f"{p:.3f}"))
    for kind, block in (summary.get("outcomes") or {}).items():
        if isinstance(block, dict) and block.get("count") is not None:
            share = block.get("share")
            cards.append((kind, f"{block['count']}" + (f" ({share:.1%})" if share is not None
                                                       else "")))
    counts = summary.get("counts")
    if isinstance(counts, dict):
        cards += [(f"samples: {k}", _fmt(v)) for k, v in counts.items()]
    return cards


def _latency_table(summary: dict[str, Any]) -> dict[str, Any] | None:
    rows = []
    for key, label in (("latency_ms", "service latency (answered requests)"),
                       ("ttfb_ms", "time to first byte (answered requests)"),
                       ("latency_from_intended_ms", "from intended send time (all requests)")):
        stats = summary.get(key)
        if isinstance(stats, dict) and (key != "ttfb_ms" or stats.get("count")):
            rows.append([label] + [_fmt(stats.get(q), "ms") for q in ("p50", "p90", "p99",
                                                                        "max")])
    if not rows:
        return None
    censored = (summary.get("latency_from_intended_ms") or {}).get("censored")
    note = (f"{censored} request(s) got no answer: they enter at the time the client gave up, "
            "so those values are lower bounds") if censored else ""
    return {"title": "Latency (ms, from raw records)", "header": ["", "p50", "p90", "p99", "max"],
            "rows": rows, "note": note}


def _phase_table(summary: dict[str, Any]) -> dict[str, Any] | None:
    phases = summary.get("phases_ms")
    if not isinstance(phases, dict) or not phases:
        return None
    def ms(key: str) -> str:
        return _fmt(st.get(key), "ms")

    rows = []
    for name, st in phases.items():
        rows.append([name, ms("median"), f"{ms('p25')} – {ms('p75')}",
                     f"{ms('min')} – {ms('max')}"])
    share = summary.get("unattributed_pct_median")
    note = f"unattributed: median {share:.2f}% of e2e" if isinstance(share, (int, float)) else ""
    return {"title": "Cold-start phases (ms)", "header": ["phase", "median", "p25 – p75",
                                                          "min – max"], "rows": rows,
            "note": note}


def _csv_table(path: Path, title: str, limit: int = 50) -> dict[str, Any] | None:
    """The first `limit` rows of a CSV (what-ifs, sweeps, predictions) as a `format_table`:
    numbers rounded by column kind, units in the headers."""
    if not path.exists():
        return None
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        rows = [row for _, row in zip(range(limit), reader)]
    if header is None:
        return None
    return format_table(header, rows, title=title)


@dataclass
class _Section:
    """One titled part of the report: an optional table, notes and figures (plots/ names)."""

    id: str
    title: str
    intro: str = ""
    table: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    figures: list[dict[str, str]] = field(default_factory=list)  # name, caption, data (base64)

    def add(self, png: Path, caption: str) -> None:
        """Embed the image `png` with `caption`."""
        self.figures.append({"name": png.name, "caption": caption, "data": _embed(png)})


def _draw(section: _Section, caption: str, draw: Any) -> None:
    """Run `draw()` (it returns the PNG path, or None for nothing to draw) and embed what it
    drew; a failure becomes a note, since a plot must not lose the report."""
    try:
        png = draw()
    except Exception as exc:  # noqa: BLE001 - one bad plot must not lose the report
        log.warning("could not draw %s: %s", caption, exc)
        section.notes.append(f"could not draw the {caption}: {exc}")
        return
    if png is not None:
        section.add(Path(png), caption)


def _draw_sections(folder: RunFolder) -> list[_Section]:
    """Draw the run's serverless plots into `run/plots` and return the sections showing them."""
    from .costs import cost_section, draw_cost_plot
    from .plots import plot_in_flight, plot_latency, plot_latency_cdf, plot_timeline
    from .plots import run_busy, run_outcomes
    from .waterfall import plot_phase_waterfall

    summary = folder.summary()
    plots = folder.plots
    sections: list[_Section] = []
    has_requests = folder.has(layout.REQUESTS)
    if has_requests:
        df = folder.requests()
        instances = folder.instances()
        busy, kinds = run_busy(df, instances), run_outcomes(df)  # shared by the plots
        inst = _Section("instances", "Instances over time",
                        intro="Each lane is one instance: starting (created → ready), busy (a "
                              "request in flight), idle (alive, nothing in flight); each pixel "
                              "is shaded from idle to busy by the share of its time that was "
                              "busy; a cross where it was reclaimed, a red triangle per cold "
                              "request.")
        _draw(inst, "instance timeline",
              lambda: plot_timeline(df, instances, plots / "timeline.png", busy=busy,
                                    kinds=kinds))
        _draw(inst, "requests and instances in flight: exact steps; a long run per time bin, "
                    "the time-weighted mean filled and the bin's max as a thin line (exact "
                    "peaks)",
              lambda: plot_in_flight(df, instances, plots / "in_flight.png", busy=busy))
        lat = _Section("latency", "Latency: cold vs warm")
        if (plots / "latency.png").is_file():  # fcbench run drew it with the run's title
            lat.add(plots / "latency.png", "latency over time")
        else:
            _draw(lat, "latency over time", lambda: plot_latency(df, plots / "latency.png"))
        _draw(lat, "latency distribution of cold and of warm requests",
              lambda: plot_latency_cdf(df, plots / "latency_cdf.png", summary=summary,
                                       kinds=kinds))
        sections += [inst, lat]
        tokens = summary.get("tokens")
        if isinstance(tokens, dict):
            sections.append(_token_section(tokens, df, kinds, plots))
    if has_requests or folder.has(layout.INSTANCES):
        priced = cost_section(folder)
        cost = _Section("cost", "Cost per day", notes=list(priced.notes))
        if priced.error:
            cost.notes.insert(0, f"not priced: {priced.error}")
        else:
            cost.table = {"header": priced.header, "rows": priced.rows}
            _draw(cost, "daily cost against calls per day, per GPU size, against a 24 h server",
                  lambda: draw_cost_plot(priced, plots / "cost.png"))
        sections.append(cost)
    if folder.has(layout.PHASES):
        wf = _Section("waterfall", "Cold-start waterfall",
                      intro="Each phase starts where the previous one ended; a dotted gap is "
                            "a phase nothing measured (unknown, not zero).")
        _draw(wf, "phase waterfall per cold start and the medians",
              lambda: plot_phase_waterfall(folder, plots / "waterfall.png"))
        if not wf.figures and not wf.notes:
            wf.notes.append("no kept cold start to draw")
        sections.append(wf)
    return sections


def _token_section(tokens: dict[str, Any], df: Any, kinds: Any, plots: Path) -> _Section:
    """TTFT, TPOT and ITL percentiles cold vs warm, token throughput and goodput (the summary's
    ``tokens`` block: `fcbench.measures.token_summary`), and the TTFT CDF."""
    from .plots import plot_ttft_cdf

    rows = []
    for key, label in (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"),
                       ("itl_ms", "ITL, each request's median gap"),
                       ("itl_p99_ms", "ITL, each request's p99 gap")):
        for kind in ("", "_cold", "_warm"):
            block = tokens.get(f"{key}{kind}") or {}
            if block.get("count"):
                rows.append([label, kind.strip("_") or "all", block["count"],
                             *(block.get(q) for q in ("p50", "p90", "p99"))])
    sec = _Section("tokens", "Tokens: cold vs warm",
                   intro="Per request from its stream (definitions: fcbench.measures): TTFT = "
                         "send → first content token; TPOT = (last − first content token) / "
                         "(output tokens − 1); ITL = the gaps between content tokens, of which "
                         "each request keeps its median and p99 (the rows give percentiles of "
                         "those over requests).")
    sec.table = format_table(["figure", "requests", "count", "p50_ms", "p90_ms", "p99_ms"],
                             rows, kinds=["number", "number", "count", "ms", "ms", "ms"])
    rate = tokens.get("output_tokens_per_s")
    sec.notes.append(f"output tokens {_fmt(tokens.get('output_tokens'), 'count')} "
                     f"({_fmt(rate)} tokens/s over the run), input tokens "
                     f"{_fmt(tokens.get('input_tokens'), 'count')}, over "
                     f"{_fmt(tokens.get('requests'), 'count')} requests with token data "
                     f"({_fmt(tokens.get('streamed'), 'count')} streamed)")
    good, slo = tokens.get("goodput"), tokens.get("slo")
    if isinstance(good, dict) and slo:
        objectives = ", ".join(f"{k.removesuffix('_ms')} ≤ {v:g} ms" for k, v in slo.items())
        missed = ", ".join(f"{k.removesuffix('_ms')} {v}" for k, v in
                           (good.get("missed") or {}).items())
        sec.notes.append(f"goodput {_fmt(good.get('share'), 'share')}: {good.get('good')} of "
                         f"{good.get('n')} requests sent succeeded and met {objectives} "
                         f"({_fmt(good.get('good_rps'))} good req/s; answered but missed: "
                         f"{missed})")
    else:
        sec.notes.append("no goodput: no SLO was given (fcbench report RUN --slo "
                         "ttft=MS,tpot=MS counts it)")
    if (tokens.get("ttft_ms") or {}).get("count"):
        _draw(sec, "time to first token of cold and of warm requests",
              lambda: plot_ttft_cdf(df, plots / "ttft_cdf.png", summary=tokens, kinds=kinds))
    return sec


def _embed(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_run_report(folder: RunFolder, name: str, interrupted: bool = False) -> Path:
    """A load run's plots (latency over time; GPU telemetry when ``gpu.csv`` was sampled) and its
    report.html, titled by the workload's `name`; a plot that fails is logged, the report is
    still written. The `fcbench.load.RunOptions.report` of ``fcbench run`` and of sweep levels."""
    from ..telemetry import plot_gpu
    from .plots import plot_latency

    try:
        plot_latency(folder.requests(), folder.plots / "latency.png",
                     title=f"{name}: latency over time")
        if folder.has(layout.GPU):
            plot_gpu(folder.file(layout.GPU), folder.plots / "gpu.png")
    except Exception as exc:  # noqa: BLE001 - a plot must not lose the report
        log.warning("could not draw the plots: %s", exc)
    return write_report(folder, title=f"fcbench run: {name}"
                        + (" (interrupted)" if interrupted else ""))


def write_report(run_dir: str | Path | RunFolder, *, title: str | None = None) -> Path:
    """Write `run_dir/report.html` from what the folder holds; returns its path."""
    folder = RunFolder.open(run_dir)
    run = folder.path
    config = folder.config_text()
    if title is None and config:
        title = folder.config().get("title")
    whatifs = sorted(run.glob(layout.WHATIF_GLOB))
    tables = [t for t in (_latency_table(folder.summary()), _phase_table(folder.summary()),
                          _csv_table(folder.file(layout.SWEEP), "Sweep: cold-start probability "
                                     "vs concurrency"),
                          _csv_table(folder.file(layout.PREDICTED), "Sweep: the simulator's "
                                     "prediction, calibrated on these levels"),
                          *(_csv_table(w, f"Priced what-ifs ({w.stem[len(layout.WHATIF_PREFIX):]}"
                                       "): simulated, calibrated on this run; “as run” = its "
                                       "own settings") for w in whatifs))
              if t]
    sections = _draw_sections(folder)
    placed = {fig["name"] for sec in sections for fig in sec.figures}
    plots = [{"name": p.name, "data": _embed(p)}
             for p in sorted(folder.plots.glob("*.png")) if p.name not in placed] \
        if folder.plots.is_dir() else []
    files = [{"name": p.name, "href": p.name, "size": _size(p.stat().st_size)}
             for p in sorted(run.glob("*")) if p.is_file() and p.suffix in (".csv", ".json",
                                                                             ".yaml", ".html")
             and p.name != layout.REPORT]
    return render_html(layout.REPORT, folder.file(layout.REPORT),
                       title=title or f"fcbench run {run.name}", run_name=run.name,
                       cards=_summary_cards(folder.summary()), tables=tables, sections=sections,
                       plots=plots, files=files, config=config)
