"""`summary.json` from raw per-request records (never from Locust's bucketed statistics).

Key names: `load_requests`, `summarize`, `write_summary`, `summary_table`, `apply_slo`.
Latency and time-to-first-byte percentiles are over successful requests; P(cold) is over
requests whose cold/warm the target reported; a run with token data gets a ``tokens`` block
(`fcbench.measures.token_summary`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._io import atomic_write
from ..measures import (
    latency_from_intended,
    outcome_shares,
    outcomes,
    p_cold,
    percentiles,
    token_summary,
)

if TYPE_CHECKING:
    import pandas as pd

    from .folder import RunFolder

__all__ = ["SUMMARY_COLUMNS", "TOKEN_COLUMNS", "apply_slo", "load_requests", "summarize",
           "summary_table", "token_rows", "write_summary"]

#: The token columns of requests.csv (`fcbench.measures` "Tokens"), read when the file has them.
TOKEN_COLUMNS = ("ttft_ms", "tpot_ms", "itl_p50_ms", "itl_p99_ms", "input_tokens",
                 "output_tokens")
#: The requests.csv columns a summary or plot reads (others are skipped for speed).
SUMMARY_COLUMNS = ("intended_ts", "start_ts", "end_ts", "latency_ms", "status", "cold",
                   "instance_id", "error", "latency_from_intended_ms", "ttfb_ms",
                   *TOKEN_COLUMNS)


def load_requests(path: str | Path, *, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """The columns of a requests.csv that summaries and plots need, as a DataFrame, plus the
    numeric columns named in `extra` that the file has (e.g. ``queue_ms``, ``ready_ts``)."""
    import pandas as pd

    header = Path(path).open(encoding="utf-8").readline().strip().split(",")
    cols = [c for c in (*SUMMARY_COLUMNS, *extra) if c in header]
    dtypes = {c: "float64" for c in ("intended_ts", "start_ts", "end_ts", "latency_ms",
                                      "cold", "latency_from_intended_ms", "ttfb_ms",
                                      *TOKEN_COLUMNS, *extra)
              if c in cols}
    dtypes.update({c: "object" for c in ("instance_id", "error") if c in cols})
    if "status" in cols:
        dtypes["status"] = "float64"
    df = pd.read_csv(path, usecols=cols, dtype=dtypes, engine="c", keep_default_na=False,
                     na_values={c: [""] for c in dtypes if dtypes[c] == "float64"})
    if "status" in df:
        df["status"] = df["status"].fillna(0).astype("int32")
    return df


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def summarize(records: str | Path | pd.DataFrame, *, instances_csv: str | Path | None = None,
              instances_started: int | None = None, z: float = 1.96,
              slo: dict[str, float] | None = None) -> dict[str, Any]:
    """Counts, outcomes (warm / cold / throttled / failed), P(cold) over all requests with
    Wilson and block-bootstrap intervals, latency (service over successes; from intended over
    all, failures censored), time to first byte (over successes), throughput, and, when any
    request has token data, a ``tokens`` block (`fcbench.measures.token_summary`: TTFT, TPOT,
    ITL cold and warm, token totals and throughput, goodput against `slo`). Definitions:
    `fcbench.measures`.

    `records` is a requests.csv path or a DataFrame (measured or simulated, same columns).
    `instances_started` (or the rows of `instances_csv`) is how many instances the platform
    started; without either, the instances the requests saw. `slo` is
    `fcbench.measures.parse_slo`'s. Works on 0 rows.
    """
    import numpy as np

    df = load_requests(records) if isinstance(records, (str, Path)) else records
    n = int(len(df))

    def col(name: str) -> Any:
        return df[name].to_numpy() if n and name in df else np.full(n, np.nan)

    status = df["status"].to_numpy() if n else np.zeros(0, dtype=int)
    ok_mask = (status > 0) & (status < 400)
    ok = int(ok_mask.sum())
    errors = n - ok
    by_status: dict[str, int] = {}
    by_error: dict[str, int] = {}
    if errors:
        bad = df[~ok_mask]
        by_status = {str(k): int(v) for k, v in bad["status"].value_counts().sort_index().items()}
        if "error" in bad:
            kinds = bad["error"].fillna("").replace("", "unknown").value_counts().head(20)
            by_error = {str(k): int(v) for k, v in kinds.items()}
    # every figure below is defined once, in fcbench.measures
    order = np.argsort(col("intended_ts") if "intended_ts" in df and n and
                       not np.isnan(col("intended_ts")).all() else col("start_ts"), kind="stable")
    kinds = outcomes(status, col("cold"))
    lat = col("latency_ms")[ok_mask] if n else np.zeros(0)
    lag = (col("start_ts") - col("intended_ts")) * 1000.0
    pc = p_cold(kinds[order], col("instance_id")[order] if "instance_id" in df else None,
                z=z)
    cold_k = pc["cold"]
    first = float(np.nanmin(df["start_ts"])) if n else None
    last = float(np.nanmax(df["end_ts"])) if n else None
    span = (last - first) if first is not None and last is not None else 0.0
    seen = int(df.loc[df["instance_id"].fillna("") != "", "instance_id"].nunique()) \
        if n and "instance_id" in df else 0
    started = _instances_started(instances_csv) if instances_csv is not None \
        else instances_started
    summary = {
        "count": n,
        "ok": ok,
        "errors": errors,
        "errors_by_status": by_status,
        "errors_by_kind": by_error,
        "outcomes": outcome_shares(kinds),
        "cold_starts": cold_k,
        "p_cold": pc,
        "latency_ms": percentiles(lat),
        # time to first byte over the same successes (none recorded: count 0, values None)
        "ttfb_ms": percentiles(col("ttfb_ms")[ok_mask] if n else np.zeros(0)),
        "latency_from_intended_ms": latency_from_intended(col("intended_ts"), col("end_ts"),
                                                          status),
        "latency_ms_cold": percentiles(col("latency_ms")[kinds == "cold"]),
        "latency_ms_warm": percentiles(col("latency_ms")[kinds == "warm"]),
        "dispatch_lag_ms": percentiles(lag),
        "first_ts": first,
        "last_ts": last,
        "duration_s": round(span, 3),
        "throughput_rps": round(n / span, 3) if span > 0 else None,
        "ok_throughput_rps": round(ok / span, 3) if span > 0 else None,
        "instances_seen": seen,
        "instances_started": started if started is not None else seen,
    }
    tokens = token_summary(df, kinds, duration_s=span, slo=slo) if n else None
    if tokens is not None:
        summary["tokens"] = tokens
    return _clean(summary)


def apply_slo(folder: RunFolder, slo: dict[str, float]) -> dict[str, Any]:
    """Recount the ``tokens`` block of `folder`'s summary.json from its requests.csv against
    `slo` (`fcbench.measures.parse_slo`), write it back and return the summary; the rest of
    summary.json is kept as it was.

    Raises:
        UsageError: the folder has no requests.csv, or no request in it has token data.
    """
    from ..errors import UsageError
    from . import layout

    df = folder.requests()
    if df is None:
        raise UsageError(f"{folder.path} has no {layout.REQUESTS}, so there is nothing to "
                         "count goodput over; --slo needs a run folder of `fcbench run`")
    fresh = summarize(df, slo=slo)
    if "tokens" not in fresh:
        raise UsageError(f"no request in {folder.path / layout.REQUESTS} has token data "
                         "(ttft_ms, output_tokens), so --slo has nothing to count; it applies "
                         "to runs against an OpenAI-style server")
    summary = {**folder.summary(), "tokens": fresh["tokens"]}
    folder.write_summary(summary)
    return summary


def _instances_started(path: str | Path | None) -> int | None:
    if path is None or not Path(path).exists():
        return None
    import csv
    with open(path, newline="", encoding="utf-8") as f:
        return sum(1 for _ in csv.DictReader(f))


def write_summary(summary: dict[str, Any], path: str | Path) -> Path:
    """Write `summary` as JSON (atomically)."""
    return atomic_write(path, json.dumps(_clean(summary), indent=2) + "\n")


def summary_table(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs for a short terminal table."""
    def ms(block: dict[str, Any] | None) -> str:
        if not block or block.get("p50") is None:
            return "–"
        return f"p50 {block['p50']:.1f} · p90 {block['p90']:.1f} · p99 {block['p99']:.1f} · " \
               f"max {block['max']:.1f}"

    pc = _p_cold_text(summary.get("p_cold"), "sent")
    shares = summary.get("outcomes") or {}
    mix = " · ".join(f"{k} {v['count']}" for k, v in shares.items()) if shares else "–"
    lfi = summary.get("latency_from_intended_ms") or {}
    errs = ", ".join(f"{k}: {v}" for k, v in (summary.get("errors_by_status") or {}).items())
    tasks = summary.get("async_tasks")
    rows = [
        # an async run's requests are submissions (202 at once); its jobs are the task rows
        ("requests (submitted)" if tasks else "requests",
         f"{summary.get('count', 0)} ({summary.get('ok', 0)} ok)"),
        ("errors", f"{summary.get('errors', 0)}" + (f" ({errs})" if errs else "")),
        ("outcomes", mix),
        ("P(cold) [95% CI]", pc),
        ("service ms (ok)", ms(summary.get("latency_ms"))),
        *([("first byte ms (ok)", ms(summary["ttfb_ms"]))]
          if (summary.get("ttfb_ms") or {}).get("count") else []),
        ("from intended ms", ms(lfi) + (f" ({lfi['censored']} censored: lower bounds)"
                                        if lfi.get("censored") else "")),
        ("throughput", "–" if summary.get("throughput_rps") is None
         else f"{summary['throughput_rps']:.2f} req/s"),
        ("instances started", str(summary.get("instances_started", 0))),
    ]
    return rows + token_rows(summary.get("tokens")) + _async_rows(tasks)


def token_rows(tokens: dict[str, Any] | None) -> list[tuple[str, str]]:
    """A run with token data: TTFT and TPOT cold / warm, ITL, tokens per second, goodput."""
    if not tokens:
        return []

    def p50(block: dict[str, Any] | None) -> str:
        return "–" if not block or block.get("p50") is None else \
            f"p50 {block['p50']:.1f} · p99 {block['p99']:.1f}"

    rows = []
    for key, label in (("ttft_ms", "TTFT ms"), ("tpot_ms", "TPOT ms")):
        if (tokens.get(key) or {}).get("count"):
            split = f"{p50(tokens.get(f'{key}_cold'))} / {p50(tokens.get(f'{key}_warm'))}"
            rows += [(label, p50(tokens.get(key))), ("  cold / warm", split)]
    if (tokens.get("itl_ms") or {}).get("count"):
        rows.append(("ITL ms (per-request median)", p50(tokens.get("itl_ms"))))
    rate = tokens.get("output_tokens_per_s")
    rows.append(("output tokens", f"{tokens.get('output_tokens', 0)} ("
                 + ("–" if rate is None else f"{rate:.1f} tok/s") + f"); input "
                 f"{tokens.get('input_tokens', 0)}"))
    good, slo = tokens.get("goodput"), tokens.get("slo")
    if good and slo:
        objectives = ", ".join(f"{k.removesuffix('_ms')} ≤ {v:g} ms" for k, v in slo.items())
        share = "–" if good.get("share") is None else f"{good['share']:.3f}"
        rows.append(("goodput", f"{share} ({good['good']}/{good['n']} sent met {objectives})"))
    return rows


def _p_cold_text(p: dict[str, Any] | None, of: str) -> str:
    """P(cold) with both intervals, as the terminal shows it (`measures.p_cold`'s fields)."""
    p = p or {}
    cl = p.get("cluster") or {}
    if p.get("value") is None:
        return "–"
    return f"{p['value']:.3f} ({p['cold']}/{p['n']} {of}); Wilson [{p['lo']:.3f}, " \
        f"{p['hi']:.3f}]" + ("" if not cl else f", clustered [{cl['lo']:.3f}, {cl['hi']:.3f}]"
                             if cl.get("known", True) else ", clustered: too few requests to tell")


def _async_rows(tasks: dict[str, Any] | None) -> list[tuple[str, str]]:
    """An asynchronous run's lines: the requests above were submissions; the jobs are here."""
    if not tasks:
        return []
    if tasks.get("wait", {}).get("error"):
        return [("async tasks", f"not collected: {tasks['wait']['error']}")]

    def p50(block: dict[str, Any] | None) -> str:
        return "–" if not block or block.get("p50") is None else \
            f"p50 {block['p50']:.0f} · p90 {block['p90']:.0f} · max {block['max']:.0f}"

    states = " · ".join(f"{k} {v['count']}" for k, v in (tasks.get("statuses") or {}).items())
    return [
        ("async tasks", f"{tasks.get('count', 0)}: {states or 'none'}" +
         (f" ({tasks['unfinished']} not ended)" if tasks.get("unfinished") else "")),
        ("task P(cold) [95% CI]", _p_cold_text(tasks.get("p_cold"), "tasks")),
        ("task queue ms", p50(tasks.get("queue_ms"))),
        ("  cold / warm", f"{p50(tasks.get('queue_ms_cold'))} / {p50(tasks.get('queue_ms_warm'))}"),
        ("task run ms", p50(tasks.get("run_ms"))),
    ]
