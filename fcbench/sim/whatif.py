"""Priced what-ifs: a measured run's own traffic, simulated again under other settings.

Key names: `WHAT_IF_KEYS`, `parse_what_if`, `what_if`, `WhatIfRow`. Every combination of the
settings given is one simulation of the run's workload (its recorded arrival plan and function),
calibrated on the run itself (`fcbench.sim.calibrate`); each row carries P(cold) with its
interval and the p99 from intended time (`fcbench.report.summary.summarize`, as for any run), and
the day's bill with the bill per 1000 requests (`fcbench.cost.model`).
"""

from __future__ import annotations

import csv
import itertools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SpecError, UsageError

__all__ = ["WHAT_IF_KEYS", "WhatIfRow", "parse_what_if", "what_if", "write_what_if_csv"]

#: settings a what-if may vary: FC's field names -> (where in the function spec, type)
WHAT_IF_KEYS: dict[str, tuple[tuple[str, ...], type]] = {
    "minInstances": (("harness", "minInstances"), int),
    "idleTimeout": (("harness", "idleTimeout"), float),
    "instanceConcurrency": (("instanceConcurrency",), int),
    "maxInstances": (("harness", "maxInstances"), int),
}


def parse_what_if(texts: tuple[str, ...] | list[str]) -> dict[str, tuple[float, ...]]:
    """``("minInstances=0,1,2", "idleTimeout=60,300")`` -> ``{"minInstances": (0, 1, 2), ...}``.

    Raises:
        UsageError: an unknown key or a value that is not a number.
    """
    out: dict[str, tuple[float, ...]] = {}
    for text in texts:
        key, _, raw = text.partition("=")
        key = key.strip()
        if key not in WHAT_IF_KEYS:
            raise UsageError(f"--what-if {text!r}: cannot vary {key!r}; use one of "
                             f"{', '.join(WHAT_IF_KEYS)} (KEY=V1,V2,...)")
        if key in out:
            raise UsageError(f"--what-if {key} is given twice; list its values once: "
                             f"{key}=V1,V2,...")
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


#: CSV column names that carry their unit
_COLUMN = {"idleTimeout": "idleTimeout_s", "requests": "requests_sent",
           "throttled": "requests_throttled_429", "instances_started": "instances_started"}


@dataclass
class WhatIfRow:
    """One combination's simulated outcome and price."""

    settings: dict[str, float]
    as_run: bool
    requests: int
    p_cold: float | None
    p_cold_lo: float | None
    p_cold_hi: float | None
    p99_from_intended_ms: float | None
    throttled: int
    instances_started: int
    #: table name -> (currency, cost per day, cost per 1000 requests)
    costs: dict[str, tuple[str, float, float | None]] = field(default_factory=dict)

    def flat(self) -> dict[str, Any]:
        """The row as CSV columns: every unit and currency in its column name."""
        out: dict[str, Any] = {_COLUMN.get(k, k): v for k, v in self.settings.items()}
        out.update({_COLUMN.get(k, k): v for k, v in asdict(self).items()
                    if k not in ("settings", "costs")})
        for name, (currency, day, per_k) in self.costs.items():
            out[f"{name}_{currency}_per_day"] = round(day, 6)
            out[f"{name}_{currency}_per_1000_requests"] = None if per_k is None \
                else round(per_k, 6)
        return out


def what_if(run_dir: str | Path, grid: dict[str, tuple[float, ...]], *,
            tables: tuple[str, ...] = ("fc-doc-simple",), seed: int = 0) -> list[WhatIfRow]:
    """Simulate `run_dir`'s workload once per combination of `grid`, calibrated on the run.

    One row (`WhatIfRow.as_run`) is the run's own settings — first when they are not in the
    grid — so the simulation can be held against the measurement before its what-ifs are
    believed. Every combination is checked (as a function spec) before any is simulated.

    Raises:
        UsageError: not a harness or simulated run folder, or nothing to calibrate on.
    """
    from ..cost.model import (daily_cost, per_thousand_requests, usage_from_instances,
                              with_spec_shape)
    from ..cost.tables import load_table
    from ..load.workload import recorded_workload_doc, workload_from_dict
    from ..report.summary import summarize
    from .calibrate import calibrate
    from .run import SimulationSettings, run_simulation

    recorded = recorded_workload_doc(run_dir)
    name = str(recorded.get("name") or Path(run_dir).name)
    base = workload_from_dict(recorded, base_dir=Path(run_dir), name=name)
    cal = calibrate([run_dir], function=base.function_specs[0].name)
    loaded = [load_table(t) for t in tables]
    own = {k: _get(_spec_doc(recorded), WHAT_IF_KEYS[k][0]) for k in grid}
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    if own not in combos:
        combos.insert(0, own)
    workloads = []
    for combo in combos:  # all checked before the first simulation runs
        try:
            workloads.append(workload_from_dict(_with_settings(recorded, combo),
                                                base_dir=Path(run_dir), name=name))
        except SpecError as exc:
            shown = ", ".join(f"{k}={v:g}" for k, v in combo.items())
            where = f"{exc.path}: " if exc.path else ""
            raise UsageError(f"--what-if {shown}: {where}{exc.message}") from None
    rows = []
    for combo, workload in zip(combos, workloads):
        sim = run_simulation(workload, SimulationSettings(calibration=cal, seed=seed))
        summary = summarize(sim.frame())
        pc = summary.get("p_cold") or {}
        lfi = summary.get("latency_from_intended_ms") or {}
        row = WhatIfRow(settings=combo, as_run=combo == own, requests=int(summary.get("count") or 0),
                        p_cold=pc.get("value"),
                        p_cold_lo=(pc.get("cluster") or {}).get("lo"),
                        p_cold_hi=(pc.get("cluster") or {}).get("hi"),
                        p99_from_intended_ms=lfi.get("p99"),
                        throttled=int(((summary.get("outcomes") or {}).get("throttled")
                                       or {}).get("count") or 0),
                        instances_started=sim.result.instances_started)
        span = float(summary.get("duration_s") or 0.0)
        if span > 0 and sim.result.instances:
            usage, _ = usage_from_instances(sim.result.instances, requests=row.requests,
                                            span_s=span)
            usage = with_spec_shape(usage, sim.spec)
            for table in loaded:
                total = daily_cost(table, usage)["total"]
                row.costs[table.name] = (table.currency, total,
                                         per_thousand_requests(total, usage.invocations))
        rows.append(row)
    return rows


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


def _get(spec: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = spec
    for key in path:
        node = (node or {}).get(key)
    if node is None:  # not written: the schema's default
        from ..spec import function_spec_from_dict

        parsed = function_spec_from_dict(spec, source="run.yaml")
        return {("harness", "minInstances"): parsed.harness.min_instances,
                ("harness", "idleTimeout"): parsed.harness.idle_timeout,
                ("harness", "maxInstances"): parsed.harness.max_instances,
                ("instanceConcurrency",): parsed.instance_concurrency}[path]
    return node


def _with_settings(doc: dict[str, Any], combo: dict[str, float]) -> dict[str, Any]:
    import copy

    out = copy.deepcopy(doc)
    spec = _spec_doc(out)
    for key, value in combo.items():
        path = WHAT_IF_KEYS[key][0]
        node = spec
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out
