"""`fcbench simulate WORKLOAD.yaml`: the workload through the scheduler on simulated time."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["simulate"]


@click.command()
@click.argument("workload", type=click.Path(dir_okay=False))
@click.option("--service-ms", default=None, metavar="DIST",
              help="Service time per request in ms: 120, exp:120, uniform:80:160, normal:120:10 "
              "(default: a sleep function's FCBENCH_SLEEP_MS).")
@click.option("--startup-ms", default=None, metavar="DIST",
              help="Instance start-up time in ms, same forms (default: process start + a sleep "
              "function's FCBENCH_STARTUP_MS).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Override the workload's duration (s).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--calibrate", "calibrate_from", multiple=True, metavar="RUN_DIR",
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Draw service and start-up times from a measured run folder's warm requests "
              "and instance starts (repeat to pool several); --service-ms/--startup-ms still win.")
@click.option("--sweep", "sweep_spec", default=None, metavar="KEY=V1,V2,...",
              help="Simulate one level per value and write sweep.csv like `fcbench coldstart "
              "sweep`: concurrency (Poisson at level / service time), instanceConcurrency, "
              "idleTimeout or minInstances (the workload's own arrivals).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Parent folder of run folders (default: the workload's output).")
def simulate(workload: str, service_ms: str | None, startup_ms: str | None,
             duration: float | None, seed: int, calibrate_from: tuple[Path, ...],
             sweep_spec: str | None, out: Path | None) -> None:
    """Run WORKLOAD's arrivals through the harness's own scheduler on simulated time.

    Writes a run folder like a measured run (requests.csv, instances.csv, summary.json,
    report.html), marked simulated, so `fcbench report` and `fcbench cost` read it unchanged.
    """
    from ..load.workload import load_workload
    from ..report.summary import summary_table
    from ..sim.calibrate import calibrate
    from ..sim.run import SimulationSettings, simulate_workload

    wl = load_workload(workload)
    if duration is not None:
        wl = wl.model_copy(update={"duration": float(duration)})
    cal = None
    if calibrate_from:
        cal = calibrate(calibrate_from)
        d = cal.describe()
        click.echo(f"calibrated on {len(calibrate_from)} run(s): {d['service_samples']} warm "
                   f"service times (median {d['service_median_ms']:g} ms), "
                   f"{d['startup_samples']} start-ups (median {d['startup_median_ms']:g} ms, "
                   f"from {d['startup_from']})")
    settings = SimulationSettings(service_ms, startup_ms, seed, calibration=cal)
    if sweep_spec is not None:
        _sweep(wl, sweep_spec, settings, out)
        return
    run_dir, summary = simulate_workload(wl, settings, out_dir=out)
    rows = summary_table(summary)
    width = max(len(k) for k, _ in rows)
    for label, value in rows:
        click.echo(f"  {label:<{width}}  {value}")
    click.echo(f"simulated {summary['count']} requests in {summary['simulation_s']:.2f} s")
    click.echo(f"results: {run_dir}")


def _sweep(wl, text: str, settings, out: Path | None) -> None:  # noqa: ANN001
    from ..coldstart.predict import SWEEP_KEYS, simulate_sweep

    key, _, raw = text.partition("=")
    try:
        values = tuple(float(v) for v in raw.split(",") if v.strip())
    except ValueError:
        values = ()
    if key.strip() not in SWEEP_KEYS or not values:
        raise click.BadParameter(f"write KEY=V1,V2,... with KEY one of {', '.join(SWEEP_KEYS)}"
                                 f" (got {text!r})", param_hint="--sweep")
    run_dir, summary = simulate_sweep(wl, key.strip(), values, settings,
                                      out=out or wl.output_dir())
    for lv in summary["levels"]:
        p = "-" if lv["p_cold"] is None else \
            f"{lv['p_cold']:.4f} [{lv['p_cold_cluster_lo']:.4f}, {lv['p_cold_cluster_hi']:.4f}]"
        click.echo(f"  {key.strip()} {lv['level']:g}: {lv['requests']} requests, {lv['cold']} "
                   f"cold, steady P(cold) {p}, {lv['instances']} instances, p99 {lv['p99_ms']} ms")
    click.echo(f"results: {run_dir}")
