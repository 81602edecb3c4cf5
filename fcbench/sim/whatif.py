"""Priced what-ifs: a measured run's own traffic, simulated again under other settings.

Key names: `WHAT_IF_KEYS`, `parse_what_if`, `what_if`, `WhatIfRow`. Every combination of the
settings given is one simulation of the run's workload (its recorded arrival plan and function),
calibrated on the run itself (`fcbench.sim.calibrate`), with bootstrap replications of that
calibration for the intervals (`fcbench.sim.bootstrap`); each row carries P(cold), the p99
from intended time and the day's bill with the bill per 1000 requests, each with its 95 %
interval (and, for an LLM function, the bill per million output tokens). Besides the
function's settings, a what-if may scale every request's lengths in tokens (`TOKEN_KEYS`:
``outputTokens=1x,2x``), through the calibration's per-token fit (`fcbench.sim.tokens`). The
first row is the run as measured (its own summary and metering, priced exactly
as ``fcbench cost RUN_DIR`` prices it), beside the simulation of its own settings (``as_run``),
so the calibration error shows at a glance.
"""

from __future__ import annotations

import csv
import itertools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import SpecError, UsageError
from .settings import SETTINGS
from ..results import RunFolder, layout

__all__ = ["TOKEN_KEYS", "WHAT_IF_KEYS", "RowCost", "WhatIfRow", "parse_what_if", "what_if",
           "what_if_table", "write_what_if_csv"]

#: settings a what-if may vary: FC's field names -> (where in the function spec, type), from
#: the one definition in `fcbench.sim.settings`
WHAT_IF_KEYS: dict[str, tuple[tuple[str, ...], type]] = {
    k: (s.path, s.cast) for k, s in SETTINGS.items()}
#: token lengths a what-if may scale: key -> (the `SimulationSettings` field, the length)
TOKEN_KEYS: dict[str, tuple[str, str]] = {
    "outputTokens": ("output_tokens_scale", "output_tokens"),
    "promptTokens": ("prompt_tokens_scale", "input_tokens")}


def _scale_text(value: float) -> str:
    return f"{value:g}x"


def parse_what_if(texts: tuple[str, ...] | list[str]) -> dict[str, tuple[float, ...]]:
    """``("minInstances=0,1,2", "idleTimeout=60,300")`` -> ``{"minInstances": (0, 1, 2), ...}``;
    token keys take factors: ``outputTokens=1x,2x`` -> ``{"outputTokens": (1.0, 2.0)}``.

    Raises:
        UsageError: an unknown key or a value that is not a number.
    """
    out: dict[str, tuple[float, ...]] = {}
    for text in texts:
        key, _, raw = text.partition("=")
        key = key.strip()
        if key not in WHAT_IF_KEYS and key not in TOKEN_KEYS:
            raise UsageError(f"--what-if {text!r}: cannot vary {key!r}; use one of "
                             f"{', '.join([*WHAT_IF_KEYS, *TOKEN_KEYS])} (KEY=V1,V2,...; "
                             f"{' and '.join(TOKEN_KEYS)} take factors: 1x,2x)")
        if key in out:
            raise UsageError(f"--what-if {key} is given twice; list its values once: "
                             f"{key}=V1,V2,...")
        if key in TOKEN_KEYS:
            out[key] = _factors(text, key, raw)
            continue
        cast = WHAT_IF_KEYS[key][1]
        try:
            numbers = [float(v) for v in raw.split(",") if v.strip()]
            values = tuple(dict.fromkeys(cast(v) for v in numbers))  # once each, in order
        except (ValueError, OverflowError):
            numbers, values = [], ()
        if not values or any(not math.isfinite(v) or v < 0 for v in numbers):
            raise UsageError(f"--what-if {text!r}: give finite non-negative numbers, e.g. "
                             f"{key}=0,1,2")
        out[key] = values
    return out


def _factors(text: str, key: str, raw: str) -> tuple[float, ...]:
    """``1x,2x`` (the x may be left out) as factors above 0, once each, in order."""
    try:
        numbers = [float(v.strip().lower().removesuffix("x")) for v in raw.split(",")
                   if v.strip()]
    except ValueError:
        numbers = []
    if not numbers or any(not math.isfinite(v) or v <= 0 for v in numbers):
        raise UsageError(f"--what-if {text!r}: give factors above 0, e.g. {key}=1x,2x (2x: "
                         "every request's length in tokens doubled)")
    return tuple(dict.fromkeys(numbers))


#: CSV column names that carry their unit
_COLUMN = {"idleTimeout": "idleTimeout_s", "outputTokens": "outputTokens_scale",
           "promptTokens": "promptTokens_scale", "requests": "requests_sent",
           "throttled": "requests_throttled_429", "instances_started": "instances_started",
           "p99_ms": "p99_from_intended_ms", "p99_ms_lo": "p99_from_intended_ms_lo",
           "p99_ms_hi": "p99_from_intended_ms_hi",
           "replications": "bootstrap_replications"}


class RowCost(NamedTuple):
    """One row's price in one table: the day's bill, per 1000 requests and per million output
    tokens (None without token counts), each with its 95 % interval ((None, None): none)."""

    currency: str
    per_day: float
    per_day_ci: tuple[float | None, float | None]
    per_1000: float | None
    per_1000_ci: tuple[float | None, float | None]
    per_m_output: float | None = None
    per_m_output_ci: tuple[float | None, float | None] = (None, None)


@dataclass
class WhatIfRow:
    """One combination's outcome and price: simulated (with 95 % intervals over bootstrap
    replications of the calibration), or the run as measured (``source`` ``measured``; its
    P(cold) interval is the run's own block bootstrap, its bill has none)."""

    settings: dict[str, float]
    as_run: bool
    requests: int
    p_cold: float | None
    p_cold_lo: float | None
    p_cold_hi: float | None
    p99_ms: float | None
    p99_ms_lo: float | None
    p99_ms_hi: float | None
    throttled: int
    instances_started: int
    source: str = "simulated"
    replications: int = 0
    #: table name -> its price
    costs: dict[str, RowCost] = field(default_factory=dict)

    @property
    def p99_from_intended_ms(self) -> float | None:
        return self.p99_ms

    def flat(self) -> dict[str, Any]:
        """The row as CSV columns: every unit and currency in its column name."""
        out: dict[str, Any] = {_COLUMN.get(k, k): v for k, v in self.settings.items()}
        out["source"] = self.source
        out.update({_COLUMN.get(k, k): v for k, v in asdict(self).items()
                    if k not in ("settings", "costs", "source")})
        for name, c in self.costs.items():
            col = f"{name}_{c.currency}"
            out[f"{col}_per_day"] = round(c.per_day, 6)
            out[f"{col}_per_day_lo"], out[f"{col}_per_day_hi"] = map(_round, c.per_day_ci)
            out[f"{col}_per_1000_requests"] = _round(c.per_1000)
            out[f"{col}_per_1000_requests_lo"], out[f"{col}_per_1000_requests_hi"] = \
                map(_round, c.per_1000_ci)
            if c.per_m_output is not None:
                out[f"{col}_per_million_output_tokens"] = _round(c.per_m_output)
                out[f"{col}_per_million_output_tokens_lo"], \
                    out[f"{col}_per_million_output_tokens_hi"] = map(_round, c.per_m_output_ci)
        return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def what_if_table(rows: list[WhatIfRow], keys: list[str]) -> tuple[list[str], list[list[str]]]:
    """The header and cells of the what-if table `fcbench cost --what-if` prints: the row's
    source, the varied `keys` (``*`` marks the run's own settings; token keys as factors,
    ``2x``), P(cold) and p99 with their intervals, 429s, and per table the day's bill, the bill
    per 1000 requests and, where the rows carry token counts, per million output tokens."""
    from ..tables import money_cell, ranged

    cost_cols = [(name, c.currency) for name, c in rows[0].costs.items()] if rows else []
    tokens = [(n, c) for n, c in cost_cols
              if any(r.costs[n].per_m_output is not None for r in rows if n in r.costs)]
    head = ["row", *keys, "P(cold) [95%]", "p99 from intended ms [95%]", "429s",
            *[f"{n} {c}/day [95%]" for n, c in cost_cols],
            *[f"{c}/1000 req" for _, c in cost_cols],
            *[f"{c}/M output tokens [95%]" for _, c in tokens]]

    def setting(k: str, value: float) -> str:
        return _scale_text(value) if k in TOKEN_KEYS else f"{value:g}"

    def per_m(c: RowCost) -> str:
        return "-" if c.per_m_output is None else ranged(c.per_m_output, *c.per_m_output_ci,
                                                         ".4g")
    body = []
    for r in rows:
        pc = "-" if r.p_cold is None else ranged(r.p_cold, r.p_cold_lo, r.p_cold_hi, ".4f")
        p99 = "-" if r.p99_ms is None else ranged(r.p99_ms, r.p99_ms_lo, r.p99_ms_hi, ".0f")
        body.append([r.source, *(setting(k, r.settings[k]) + ("*" if r.as_run and i == 0
                                                              else "")
                                 for i, k in enumerate(keys)), pc, p99, str(r.throttled),
                     *[ranged(r.costs[n].per_day, *r.costs[n].per_day_ci, ".2f")
                       for n, _ in cost_cols],
                     *[money_cell(r.costs[n].per_1000) for n, _ in cost_cols],
                     *[per_m(r.costs[n]) for n, _ in tokens]])
    return head, body


def what_if(run_dir: str | Path, grid: dict[str, tuple[float, ...]], *,
            tables: tuple[str, ...] = ("fc-doc-simple",), seed: int = 0,
            replications: int | None = None, options: Any = None,
            inputs: dict[str, Any] | None = None) -> list[WhatIfRow]:
    """Simulate `run_dir`'s workload once per combination of `grid`, calibrated on the run,
    each with `replications` bootstrap replications of the calibration for its intervals.

    The first row is the run as measured; one simulated row (`WhatIfRow.as_run`) is the
    run's own settings — first among the simulations when they are not in the grid — so the
    simulation can be held against the measurement before its what-ifs are believed. Every
    combination is checked (as a function spec) before any is simulated. Every row is priced
    at the run's shape (`options`, a `fcbench.cost.usage.Shape`, over what it recorded) and
    scaled to a day by the run's own window.

    `inputs`, when given, receives what every simulated row was fed: ``calibration`` (its
    `Calibration.describe`), ``tokens`` (its per-token fit in a sentence, or why there is
    none; "" without token counts) and ``window`` (the `RunWindow` every row is scaled by).

    Raises:
        UsageError: not a harness or simulated run folder, nothing to calibrate on, no GPU
            spec to price, or a token key for a run without a per-token fit of that length.
    """
    from ..cost.metering import priced_run
    from ..cost.tables import load_table
    from ..load.loader import recorded_workload_doc, workload_from_dict
    from .bootstrap import DEFAULT_REPLICATIONS, predict
    from .calibrate import calibrate
    from .run import SimulationSettings

    recorded = recorded_workload_doc(run_dir)
    name = str(recorded.get("name") or Path(run_dir).name)
    base = workload_from_dict(recorded, base_dir=Path(run_dir), name=name)
    cal = calibrate([run_dir], function=base.function_specs[0].name)
    loaded = [load_table(t) for t in tables]
    measured = priced_run(run_dir, options)
    if inputs is not None:
        inputs.update(calibration=cal.describe(), window=measured.window,
                      tokens=cal.tokens_note)
    for key in (k for k in grid if k in TOKEN_KEYS):
        _check_scalable(cal, key, run_dir)
    own = {k: 1.0 if k in TOKEN_KEYS else _get(_spec_doc(recorded), k) for k in grid}
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    if own not in combos:
        combos.insert(0, own)
    workloads = []
    for combo in combos:  # all checked before the first simulation runs
        try:
            spec_part = {k: v for k, v in combo.items() if k not in TOKEN_KEYS}
            workloads.append(workload_from_dict(_with_settings(recorded, spec_part),
                                                base_dir=Path(run_dir), name=name))
        except SpecError as exc:
            shown = ", ".join(f"{k}={v:g}" for k, v in spec_part.items())
            where = f"{exc.path}: " if exc.path else ""
            raise UsageError(f"--what-if {shown}: {where}{exc.message}") from None
    rows = [_measured_row(run_dir, own, measured, loaded)]
    reps = DEFAULT_REPLICATIONS if replications is None else replications
    for combo, workload in zip(combos, workloads):
        scales = {TOKEN_KEYS[k][0]: v for k, v in combo.items() if k in TOKEN_KEYS}
        got = predict(workload, SimulationSettings(calibration=cal, seed=seed, **scales),
                      window_s=measured.window.seconds, shape=measured.shape, tables=loaded,
                      replications=reps)
        row = WhatIfRow(settings=combo, as_run=combo == own, requests=got.requests,
                        p_cold=got.p_cold.value, p_cold_lo=got.p_cold.lo,
                        p_cold_hi=got.p_cold.hi, p99_ms=got.p99_from_intended_ms.value,
                        p99_ms_lo=got.p99_from_intended_ms.lo,
                        p99_ms_hi=got.p99_from_intended_ms.hi, throttled=got.throttled,
                        instances_started=got.instances_started,
                        replications=got.replications)
        for table_name, (currency, day, per_k, per_m) in got.costs.items():
            row.costs[table_name] = RowCost(currency, day.value, (day.lo, day.hi), per_k.value,
                                            (per_k.lo, per_k.hi), per_m.value,
                                            (per_m.lo, per_m.hi))
        rows.append(row)
    return rows


def _check_scalable(cal: Any, key: str, run_dir: str | Path) -> None:
    """Refuse a token key the calibration cannot scale, saying why.

    Raises:
        UsageError: no token counts, no fit, or that length did not vary.
    """
    what = TOKEN_KEYS[key][1]
    if cal.tokens is None:
        why = cal.tokens_note or (f"its {layout.REQUESTS} carries no input_tokens / "
                                  "output_tokens (no OpenAI-style answer was measured: not an "
                                  "LLM function, or answers that were not streamed)")
        raise UsageError(f"--what-if {key}: {run_dir} has no per-token service time to scale: "
                         f"{why}")
    refused = cal.tokens.scalable(what)
    if refused is not None:
        raise UsageError(f"--what-if {key}: cannot scale {what}: {refused}")


def _measured_row(run_dir: str | Path, own: dict[str, float], measured: Any,
                  tables: list[Any]) -> WhatIfRow:
    """The run as measured: its summary's figures, its metering priced as `fcbench cost`."""
    from ..cost.billing import bill
    from ..cost.model import per_million_output_tokens, per_thousand_requests

    summary = RunFolder(run_dir).summary()
    pc = summary.get("p_cold") or {}
    cluster = pc.get("cluster") or {}
    lfi = summary.get("latency_from_intended_ms") or {}
    row = WhatIfRow(settings=dict(own), as_run=False, requests=int(summary.get("count") or 0),
                    p_cold=pc.get("value"), p_cold_lo=cluster.get("lo"),
                    p_cold_hi=cluster.get("hi"), p99_ms=lfi.get("p99"), p99_ms_lo=None,
                    p99_ms_hi=None,
                    throttled=int(((summary.get("outcomes") or {}).get("throttled")
                                   or {}).get("count") or 0),
                    instances_started=int(summary.get("instances_started") or 0),
                    source="measured")
    for table in tables:
        total = bill(table, measured.usage).total
        row.costs[table.name] = RowCost(
            table.currency, total, (None, None),
            per_thousand_requests(total, measured.usage.invocations), (None, None),
            per_million_output_tokens(total, measured.usage.output_tokens))
    return row


def write_what_if_csv(rows: list[WhatIfRow], path: Path) -> Path:
    """The rows as CSV (`WhatIfRow.flat` columns) at `path`, or beside it with ``-2``, ``-3``...
    when that name is taken: an earlier table is never overwritten. Returns the path written."""
    flat = [r.flat() for r in rows]
    fields = list(dict.fromkeys(k for r in flat for k in r))
    stem, n = path.stem, 1
    while True:
        try:
            f = open(path, "x", newline="", encoding="utf-8")
            break
        except FileExistsError:
            n += 1
            path = path.with_name(f"{stem}-{n}{path.suffix}")
    with f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(flat)
    return path


def _spec_doc(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["target"]["functions"][0]


def _get(spec: dict[str, Any], key: str) -> Any:
    node: Any = spec
    for part in SETTINGS[key].path:
        node = (node or {}).get(part)
    if node is None:  # not written: the schema's default
        from ..spec import function_spec_from_dict

        return SETTINGS[key].get(function_spec_from_dict(spec, source=layout.RUN_YAML))
    return node


def _with_settings(doc: dict[str, Any], combo: dict[str, float]) -> dict[str, Any]:
    import copy

    out = copy.deepcopy(doc)
    spec = _spec_doc(out)
    for key, value in combo.items():
        SETTINGS[key].put(spec, value)
    return out
