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
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import UsageError

__all__ = ["write_report"]

log = logging.getLogger(__name__)


def _fmt(value: Any) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1 else f"{value:,.1f}"
    return str(value)


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
                       ("latency_from_intended_ms", "from intended send time (all requests)")):
        stats = summary.get(key)
        if isinstance(stats, dict):
            rows.append([label] + [_fmt(stats.get(q)) for q in ("p50", "p90", "p99", "max")])
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
    rows = [[name, _fmt(st.get("median")), f"{_fmt(st.get('p25'))} – {_fmt(st.get('p75'))}",
             f"{_fmt(st.get('min'))} – {_fmt(st.get('max'))}"] for name, st in phases.items()]
    share = summary.get("unattributed_pct_median")
    note = f"unattributed: median {share:.2f}% of e2e" if isinstance(share, (int, float)) else ""
    return {"title": "Cold-start phases (ms)", "header": ["phase", "median", "p25 – p75",
                                                          "min – max"], "rows": rows,
            "note": note}


def _csv_table(path: Path, title: str, limit: int = 50) -> dict[str, Any] | None:
    if not path.exists():
        return None
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        rows = [row for _, row in zip(range(limit), reader)]
    if header is None:
        return None
    return {"title": title, "header": header, "rows": rows, "note": ""}


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


def _draw_sections(run: Path, summary: dict[str, Any]) -> list[_Section]:
    """Draw the run's serverless plots into `run/plots` and return the sections showing them."""
    from .costs import cost_section, draw_cost_plot
    from .plots import plot_in_flight, plot_latency, plot_latency_cdf, plot_timeline
    from .plots import run_busy, run_outcomes
    from .summary import load_requests
    from .timeline import load_instances
    from .waterfall import plot_phase_waterfall

    plots = run / "plots"
    sections: list[_Section] = []
    has_requests = (run / "requests.csv").is_file()
    if has_requests:
        df = load_requests(run / "requests.csv")
        instances = load_instances(run / "instances.csv")
        busy, kinds = run_busy(df, instances), run_outcomes(df)  # shared by the plots
        inst = _Section("instances", "Instances over time",
                        intro="Each lane is one instance: starting (created → ready), busy (a "
                              "request in flight), idle (alive, nothing in flight); a cross "
                              "where it was reclaimed, a red triangle per cold request.")
        _draw(inst, "instance timeline",
              lambda: plot_timeline(df, instances, plots / "timeline.png", busy=busy,
                                    kinds=kinds))
        _draw(inst, "requests and instances in flight (exact peaks)",
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
    if has_requests or (run / "instances.csv").is_file():
        priced = cost_section(run)
        cost = _Section("cost", "Cost per day", notes=list(priced.notes))
        if priced.error:
            cost.notes.insert(0, f"not priced: {priced.error}")
        else:
            cost.table = {"header": priced.header, "rows": priced.rows}
            _draw(cost, "daily cost against calls per day, per GPU size, against a 24 h server",
                  lambda: draw_cost_plot(priced, plots / "cost.png"))
        sections.append(cost)
    if (run / "phases.csv").is_file():
        wf = _Section("waterfall", "Cold-start waterfall",
                      intro="Each phase starts where the previous one ended; a dotted gap is "
                            "a phase nothing measured (unknown, not zero).")
        _draw(wf, "phase waterfall per cold start and the medians",
              lambda: plot_phase_waterfall(run, plots / "waterfall.png"))
        if not wf.figures and not wf.notes:
            wf.notes.append("no kept cold start to draw")
        sections.append(wf)
    return sections


def _embed(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


#: Any of these makes a folder a run folder.
RUN_FILES = ("run.yaml", "summary.json", "requests.csv", "phases.csv", "sweep.csv")


def write_report(run_dir: str | Path, *, title: str | None = None) -> Path:
    """Write `run_dir/report.html` from what the folder holds; returns its path."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    run = Path(run_dir)
    if not run.is_dir() or not any((run / name).is_file() for name in RUN_FILES):
        raise UsageError(f"{run} is not a fcbench run folder: it holds none of "
                         f"{', '.join(RUN_FILES)}")
    summary: dict[str, Any] = {}
    if (run / "summary.json").exists():
        summary = json.loads((run / "summary.json").read_text())
    config = (run / "run.yaml").read_text() if (run / "run.yaml").exists() else ""
    if title is None and config:
        import yaml
        doc = yaml.safe_load(config)
        title = doc.get("title") if isinstance(doc, dict) else None
    tables = [t for t in (_latency_table(summary), _phase_table(summary),
                          _csv_table(run / "sweep.csv", "Sweep: cold-start probability vs "
                                     "concurrency"),
                          _csv_table(run / "predicted.csv", "Sweep: the simulator's prediction, "
                                     "calibrated on these levels"),
                          *(_csv_table(w, f"Priced what-ifs ({w.stem[len('whatif-'):]}): "
                                       "simulated, calibrated on this run; as_run = its own "
                                       "settings") for w in sorted(run.glob("whatif-*.csv"))))
              if t]
    sections = _draw_sections(run, summary)
    placed = {fig["name"] for sec in sections for fig in sec.figures}
    plots = [{"name": p.name, "data": _embed(p)}
             for p in sorted((run / "plots").glob("*.png")) if p.name not in placed] \
        if (run / "plots").is_dir() else []
    files = [{"name": p.name, "href": p.name, "size": _size(p.stat().st_size)}
             for p in sorted(run.glob("*")) if p.is_file() and p.suffix in (".csv", ".json",
                                                                             ".yaml", ".html")
             and p.name != "report.html"]
    env = Environment(loader=PackageLoader("fcbench.report", "templates"),
                      autoescape=select_autoescape(["html"]))
    html = env.get_template("report.html").render(
        title=title or f"fcbench run {run.name}", run_name=run.name,
        made=time.strftime("%Y-%m-%d %H:%M:%S"), version=__version__,
        cards=_summary_cards(summary), tables=tables, sections=sections, plots=plots,
        files=files, config=config)
    out = run / "report.html"
    tmp = out.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return out
