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
@click.option("--duration", type=float, default=None, help="Override the workload's duration (s).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Parent folder of run folders (default: the workload's output).")
def simulate(workload: str, service_ms: str | None, startup_ms: str | None,
             duration: float | None, seed: int, out: Path | None) -> None:
    """Run WORKLOAD's arrivals through the harness's own scheduler on simulated time.

    Writes a run folder like a measured run (requests.csv, instances.csv, summary.json,
    report.html), marked simulated, so `fcbench report` and `fcbench cost` read it unchanged.
    """
    from ..load.workload import load_workload
    from ..report.summary import summary_table
    from ..sim.run import SimulationSettings, simulate_workload

    wl = load_workload(workload)
    if duration is not None:
        wl = wl.model_copy(update={"duration": float(duration)})
    run_dir, summary = simulate_workload(wl, SimulationSettings(service_ms, startup_ms, seed),
                                         out_dir=out)
    rows = summary_table(summary)
    width = max(len(k) for k, _ in rows)
    for label, value in rows:
        click.echo(f"  {label:<{width}}  {value}")
    click.echo(f"simulated {summary['count']} requests in {summary['simulation_s']:.2f} s")
    click.echo(f"results: {run_dir}")
