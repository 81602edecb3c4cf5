"""Predictions with the calibration's own sampling error: every simulated figure with an
interval from bootstrap replications of the calibration.

Key names: `Interval`, `Prediction`, `predict`, `simulated_figures`. A replication draws the
measured service, cold-service and start-up samples again with replacement
(`Calibration.resample`) and simulates the same arrivals with them; the 95 % interval of a
figure is the 2.5th to 97.5th percentile over the replications, the point is the simulation
with the calibration as measured. Figures are the run's own definitions: P(cold) and latency
from intended time (`fcbench.measures`), the day's bill (`fcbench.cost.metering` over the same
window and day scale as the measured run, priced by `fcbench.cost.billing.bill`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from ..results import layout

__all__ = ["DEFAULT_REPLICATIONS", "Interval", "Prediction", "predict", "simulated_figures"]

#: bootstrap replications of the calibration per prediction
DEFAULT_REPLICATIONS = 100


@dataclass(frozen=True)
class Interval:
    """A figure and its 95 % interval (None where a figure is missing)."""

    value: float | None
    lo: float | None = None
    hi: float | None = None

    def text(self, fmt: str = ".4f") -> str:
        if self.value is None:
            return "-"
        if self.lo is None or self.hi is None:
            return format(self.value, fmt)
        return f"{self.value:{fmt}} [{self.lo:{fmt}}, {self.hi:{fmt}}]"


@dataclass
class Prediction:
    """One setting's simulated figures with their intervals."""

    requests: int
    p_cold: Interval
    p99_from_intended_ms: Interval
    throttled: int
    instances_started: int
    replications: int
    #: table name -> (currency, the day's bill, the bill per 1000 requests, the bill per
    #: million output tokens: an Interval of None without token counts)
    costs: dict[str, tuple[str, Interval, Interval, Interval]] = field(default_factory=dict)


def simulated_figures(sim: Any, *, window_s: float, shape: Any, tables: list[Any]
                      ) -> dict[str, Any]:
    """One simulation's figures: P(cold), p99 from intended (ms), 429s, and per table the
    day's bill, the bill per 1000 requests and per million output tokens (where the requests
    carry token counts), the run scaled to a day by `window_s` (the measured run's own
    window, so both are scaled alike) at `shape`."""
    import numpy as np

    from ..cost.billing import bill
    from ..cost.metering import RunWindow, output_tokens, usage_from_instances
    from ..cost.model import per_million_output_tokens, per_thousand_requests
    from ..measures import latency_from_intended, outcomes

    frame = sim.frame()
    kinds = outcomes(frame["status"], frame["cold"])
    n = int(kinds.size)
    out: dict[str, Any] = {
        "requests": n, "p_cold": float((kinds == "cold").sum()) / n if n else None,
        "p99": latency_from_intended(frame["intended_ts"], frame["end_ts"],
                                     frame["status"]).get("p99"),
        "throttled": int(np.sum(kinds == "throttled")),
        "instances_started": sim.result.instances_started, "costs": {}}
    if sim.result.instances and window_s > 0:
        window = RunWindow(window_s, "planned", "the measured run's window",
                           end=max(window_s, sim.result.end_s))
        usage, _ = usage_from_instances(sim.result.instances, requests=n, window=window,
                                        tokens=output_tokens(frame))
        usage = usage.with_shape(shape)
        for table in tables:
            total = bill(table, usage).total
            out["costs"][table.name] = (table.currency, total,
                                        per_thousand_requests(total, usage.invocations),
                                        per_million_output_tokens(total, usage.output_tokens))
    return out


def _interval(point: float | None, values: list[float | None]) -> Interval:
    import numpy as np

    known = [v for v in values if v is not None]
    if point is None or not known:
        return Interval(point)
    lo, hi = np.percentile(np.asarray(known, dtype=float), [2.5, 97.5])
    return Interval(point, float(lo), float(hi))


def predict(workload: Any, settings: Any, *, window_s: float, shape: Any, tables: list[Any],
            replications: int = DEFAULT_REPLICATIONS) -> Prediction:
    """`workload` simulated with `settings` (a `SimulationSettings` with a calibration) as
    measured (the point) and `replications` times with a bootstrap replicate of its
    calibration and another draw seed (the interval), the same arrivals each time.

    Raises:
        UsageError: see `fcbench.sim.run.run_simulation`.
    """
    from dataclasses import replace

    from .run import run_simulation

    base = simulated_figures(run_simulation(workload, settings), window_s=window_s,
                             shape=shape, tables=tables)
    reps = []
    for r in range(max(0, int(replications)) if settings.calibration is not None else 0):
        rng = random.Random(f"bootstrap-{settings.seed}-{r}")
        again = replace(settings, calibration=settings.calibration.resample(rng),
                        seed=settings.seed + 1 + r)
        reps.append(simulated_figures(run_simulation(workload, again), window_s=window_s,
                                      shape=shape, tables=tables))
    out = Prediction(requests=base["requests"],
                     p_cold=_interval(base["p_cold"], [x["p_cold"] for x in reps]),
                     p99_from_intended_ms=_interval(base["p99"], [x["p99"] for x in reps]),
                     throttled=base["throttled"], instances_started=base["instances_started"],
                     replications=len(reps))
    for name, (currency, *points) in base["costs"].items():
        out.costs[name] = (currency, *(  # type: ignore[assignment]
            _interval(point, [x["costs"][name][k] for x in reps if name in x["costs"]])
            for k, point in enumerate(points, start=1)))
    return out


def predict_folder(workload: Any, settings: Any, run_dir: Any, *,
                   replications: int = DEFAULT_REPLICATIONS,
                   tables: tuple[str, ...] = ("fc-doc-simple",)) -> list[str]:
    """`fcbench simulate --calibrate`'s intervals: `predict` for the simulation just written
    to `run_dir` (its own window, day scale and shape, so the point is the folder's own bill,
    what ``fcbench cost`` prints for it), written to ``run_dir/prediction.json``; returns the
    lines to print."""
    import json
    from pathlib import Path

    from ..cost.metering import priced_run
    from ..cost.tables import load_table
    from ..errors import UsageError

    folder = Path(run_dir)
    notes: list[str] = []
    try:
        priced = priced_run(folder)
        shape, window_s = priced.shape, priced.window.seconds
        loaded = [load_table(t) for t in tables]
        for table in loaded:  # a table that cannot price this function is left out, said
            try:
                from ..cost.billing import bill

                bill(table, priced.usage)
            except UsageError as exc:
                notes.append(f"not priced in {table.name}: {exc}")
        loaded = [t for t in loaded if not any(n.startswith(f"not priced in {t.name}:")
                                               for n in notes)]
    except UsageError as exc:
        notes.append(f"not priced: {exc}")
        shape, window_s, loaded = None, 0.0, []
    got = predict(workload, settings, window_s=window_s, shape=shape, tables=loaded,
                  replications=replications)
    doc = {"replications": got.replications, "method": "bootstrap of the calibration samples "
           "(service, cold service, start-up), the same arrivals; 95 % percentile intervals",
           "requests": got.requests,
           "p_cold": vars(got.p_cold), "p99_from_intended_ms": vars(got.p99_from_intended_ms),
           "costs": {name: {"currency": cur, "per_day": vars(day), "per_1000_requests":
                            vars(per_k), "per_million_output_tokens": vars(per_m)}
                     for name, (cur, day, per_k, per_m) in got.costs.items()},
           "notes": notes}
    (folder / layout.PREDICTION).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    lines = [f"prediction ({got.replications} bootstrap replications of the calibration, the "
             "same arrivals; 95 % intervals):",
             f"  P(cold)                   {got.p_cold.text('.4f')}",
             f"  p99 from intended ms      {got.p99_from_intended_ms.text('.0f')}"]
    for name, (cur, day, per_k, per_m) in got.costs.items():
        tokens = f", per million output tokens {per_m.text('.4g')}" \
            if per_m.value is not None else ""
        lines.append(f"  {name} {cur}/day{'':<{max(0, 9 - len(name) - len(cur))}} "
                     f"{day.text('.2f')}  (per 1000 requests {per_k.text('.4f')}{tokens})")
    lines += [f"  {n}" for n in notes]
    lines.append(f"written: {folder / layout.PREDICTION}")
    return lines
