"""A held-out check of the priced what-ifs: calibrate on one measured harness run, predict other
settings, then measure those settings on the same arrivals and see how close the predictions
came and whether their intervals held the measurement.

    python -m fcbench.sim.heldout [--seed 7] [--duration 90] [--out /tmp/heldout]

Key names: `BASE`, `SETTINGS`, `heldout`. It runs real harness runs (``fcbench run``, the sleep
model: a service time drawn from uniform(100, 400) ms, a 300 ms model load, Poisson arrivals at
1.5/s, idle reclaim after 3 s, a 4 GB GPU spec on a virtual card) — about a minute and a half
each — so it is an experiment, not a test. docs/cost.md quotes its figures.
"""

from __future__ import annotations

import argparse
import copy
import csv
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..results import RunFolder, layout

__all__ = ["BASE", "SETTINGS", "heldout"]

#: the calibration run's workload (its function's settings are what the what-ifs vary)
BASE: dict[str, Any] = {
    "name": "heldout",
    "target": {"kind": "local", "virtualGpus": "1x16GB", "functions": [{
        "functionName": "f", "instanceConcurrency": 1,
        "gpuConfig": {"gpuMemorySize": 4096},
        "environmentVariables": {"FCBENCH_MODEL": "sleep", "FCBENCH_SLEEP_MS": "uniform:100:400",
                                 "FCBENCH_STARTUP_MS": "300"},
        "harness": {"idleTimeout": 3, "maxInstances": 8}}]},
    "request": {"timeout": 30},
    "duration": 90,
    "plan": {"kind": "poisson", "rate": 1.5},
}
#: the held-out settings, one what-if key each
SETTINGS: list[tuple[str, float]] = [("idleTimeout", 1.0), ("minInstances", 1),
                                     ("instanceConcurrency", 2)]


def _run(doc: dict[str, Any], out: Path) -> Path:
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    path = out / "workload.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    res = subprocess.run([sys.executable, "-m", "fcbench", "run", str(path), "--no-progress",
                          "--out", str(out / "runs")], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"fcbench run failed:\n{res.stderr[-3000:]}")
    [run] = [p for p in (out / "runs").iterdir() if p.is_dir()]
    return run


def _with(doc: dict[str, Any], key: str, value: float) -> dict[str, Any]:
    from .whatif import WHAT_IF_KEYS

    out = copy.deepcopy(doc)
    node = out["target"]["functions"][0]
    *parents, leaf = WHAT_IF_KEYS[key][0]
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = WHAT_IF_KEYS[key][1](value)
    return out


def heldout(out: Path, *, seed: int = 7, duration: float = 90.0,
            replications: int = 200) -> list[dict[str, Any]]:
    """Measure the base and every held-out setting on the same arrivals (one seed), predict
    each from the base run alone; returns one row per setting (the base first: its own
    settings simulated, the calibration's self-check)."""
    from ..cost.metering import priced_run
    from ..cost.billing import bill
    from ..cost.tables import load_table
    from .whatif import what_if

    base_doc = {**copy.deepcopy(BASE), "seed": seed, "duration": duration}
    base_run = _run(base_doc, out / "base")
    table = load_table("fc-doc-simple")
    rows = []
    for key, value in [(None, None), *SETTINGS]:
        measured_run = base_run if key is None else \
            _run(_with(base_doc, key, value), out / f"{key}-{value:g}")
        grid = {"idleTimeout": (BASE["target"]["functions"][0]["harness"]["idleTimeout"],)} \
            if key is None else {key: (value,)}
        predicted = [r for r in what_if(base_run, grid, seed=seed, replications=replications)
                     if r.source == "simulated" and (key is None or not r.as_run)][0]
        summary = RunFolder(measured_run).summary()
        p = summary["p_cold"]["value"]
        cost = bill(table, priced_run(measured_run).usage).total
        priced = predicted.costs[table.name]
        day, (lo, hi) = priced.per_day, priced.per_day_ci
        p99 = summary["latency_from_intended_ms"]["p99"]
        rows.append({
            "setting": "as calibrated" if key is None else f"{key}={value:g}",
            "requests": summary["count"], "p_cold_measured": round(p, 4),
            "p_cold_predicted": round(predicted.p_cold, 4),
            "p_cold_lo": round(predicted.p_cold_lo, 4), "p_cold_hi": round(predicted.p_cold_hi, 4),
            "p_cold_error_pp": round(100 * (predicted.p_cold - p), 1),
            "p_cold_covered": predicted.p_cold_lo <= p <= predicted.p_cold_hi,
            "cost_day_measured_CNY": round(cost, 2), "cost_day_predicted_CNY": round(day, 2),
            "cost_day_lo_CNY": round(lo, 2), "cost_day_hi_CNY": round(hi, 2),
            "cost_error_pct": round(100 * (day - cost) / cost, 1),
            "cost_covered": lo <= cost <= hi,
            "p99_ms_measured": round(p99), "p99_ms_predicted": round(predicted.p99_ms),
            "p99_ms_lo": round(predicted.p99_ms_lo), "p99_ms_hi": round(predicted.p99_ms_hi),
            "p99_covered": predicted.p99_ms_lo <= p99 <= predicted.p99_ms_hi,
            "run": str(measured_run)})
    with open(out / layout.HELDOUT, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--duration", type=float, default=90.0)
    parser.add_argument("--replications", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("results/heldout"))
    args = parser.parse_args(argv)
    rows = heldout(args.out, seed=args.seed, duration=args.duration,
                   replications=args.replications)
    print("| setting | P(cold) measured | predicted [95 %] | error | bill CNY/day measured | "
          "predicted [95 %] | error | p99 ms measured | predicted [95 %] |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        mark = lambda ok: "" if ok else " (outside)"  # noqa: E731
        print(f"| {r['setting']} | {r['p_cold_measured']:.3f} | {r['p_cold_predicted']:.3f} "
              f"[{r['p_cold_lo']:.3f}, {r['p_cold_hi']:.3f}]{mark(r['p_cold_covered'])} | "
              f"{r['p_cold_error_pp']:+.1f} pp | {r['cost_day_measured_CNY']:.2f} | "
              f"{r['cost_day_predicted_CNY']:.2f} [{r['cost_day_lo_CNY']:.2f}, "
              f"{r['cost_day_hi_CNY']:.2f}]{mark(r['cost_covered'])} | "
              f"{r['cost_error_pct']:+.1f} % | {r['p99_ms_measured']} | "
              f"{r['p99_ms_predicted']} [{r['p99_ms_lo']}, {r['p99_ms_hi']}]"
              f"{mark(r['p99_covered'])} |")
    print(f"written: {args.out / layout.HELDOUT}")


if __name__ == "__main__":
    main()
