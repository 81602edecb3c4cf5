"""The self-contained HTML report of a run folder (`report.html`), rebuilt by `fcbench report`.

Key names: `write_report`. It reads only what is in the folder (run.yaml, summary.json, the CSVs,
plots/*.png), so any experiment's folder gets a report; images are embedded, CSVs linked beside it.
"""

from __future__ import annotations

import base64
import csv
import json
import time
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import UsageError

__all__ = ["write_report"]


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
                                     "concurrency")) if t]
    plots = [{"name": p.name, "data": base64.b64encode(p.read_bytes()).decode()}
             for p in sorted((run / "plots").glob("*.png"))] if (run / "plots").is_dir() else []
    files = [{"name": p.name, "href": p.name, "size": _size(p.stat().st_size)}
             for p in sorted(run.glob("*")) if p.is_file() and p.suffix in (".csv", ".json",
                                                                             ".yaml", ".html")
             and p.name != "report.html"]
    env = Environment(loader=PackageLoader("fcbench.report", "templates"),
                      autoescape=select_autoescape(["html"]))
    html = env.get_template("report.html").render(
        title=title or f"fcbench run {run.name}", run_name=run.name,
        made=time.strftime("%Y-%m-%d %H:%M:%S"), version=__version__,
        cards=_summary_cards(summary), tables=tables, plots=plots, files=files, config=config)
    out = run / "report.html"
    tmp = out.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return out
