"""`fcbench run WORKLOAD.yaml`: drive a workload with Locust and write a results folder."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ._base import SLO_HELP, first_failure, plan_gpus, slo_value
from ..results import layout

__all__ = ["first_failure", "run"]


def all_failed(summary: dict[str, Any]) -> bool:
    """True when a run sent requests and none succeeded."""
    return int(summary.get("count") or 0) > 0 and int(summary.get("ok") or 0) == 0


def _positive(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and value <= 0:
        raise click.BadParameter("must be greater than 0 seconds")
    return value


@click.command()
@click.argument("workload", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--ui", is_flag=True, help="Serve Locust's web UI (127.0.0.1) with a Cold starts "
              "tab; the run starts when you press Start.")
@click.option("--autostart", is_flag=True, help="With --ui: start at once.")
@click.option("--web-port", default=8089, show_default=True, help="Port of the web UI.")
@click.option("--ui-linger", default=30.0, show_default=True,
              help="With --ui: seconds the UI stays up after the run ends.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Parent folder of the run folder (default: the workload's output).")
@click.option("--processes", default=1, show_default=True, type=click.IntRange(min=1),
              help="Locust processes on this machine; one plan is split across them.")
@click.option("--master", is_flag=True, help="Be the Locust master for workers on other "
              "machines (they run `fcbench run ... --worker --master-host THIS_HOST`).")
@click.option("--expect-workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="With --master: workers to wait for before starting.")
@click.option("--worker", is_flag=True, help="Be a Locust worker of --master-host.")
@click.option("--master-host", default=None, help="With --worker: the master's address.")
@click.option("--master-port", default=5557, show_default=True, help="Master's port.")
@click.option("--master-bind-host", default="127.0.0.1", show_default=True,
              help="With --master: the address workers connect to (e.g. 0.0.0.0).")
@click.option("--duration", type=float, default=None, callback=_positive,
              help="Override the workload's duration (seconds).")
@click.option("--no-progress", is_flag=True, help="No live progress line.")
@click.option("--async-wait", type=float, default=None, callback=_positive,
              help="With request.invocationType: Async: seconds to wait after the load for the "
              "tasks to end (default: the workload's request.asyncWait, else its timeout).")
@click.option("--target", "target_url", default=None, metavar="TARGET",
              help="Send to this target instead of the workload's: fc://REGION/FUNCTION"
              "[?qualifier=Q] (FC through its SDK), fc://127.0.0.1:PORT/FUNCTION (the harness "
              "through the SDK) or an HTTP-trigger URL. An fc URL without a function takes the "
              "workload's.")
@click.option("--slo", default=None, callback=slo_value, metavar="ttft=MS,tpot=MS",
              help=SLO_HELP)
def run(workload: Path, ui: bool, autostart: bool, web_port: int, ui_linger: float,
        out_dir: Path | None, processes: int, master: bool, expect_workers: int, worker: bool,
        master_host: str | None, master_port: int, master_bind_host: str,
        duration: float | None, no_progress: bool, async_wait: float | None,
        target_url: str | None, slo: dict[str, float] | None) -> None:
    """Send WORKLOAD's requests with Locust and write results/<time>-<name>/.

    Exit code 130 when interrupted (Ctrl-C; the partial results are still written), 1 when
    Locust itself failed or every request failed (the first error is printed).
    """
    from ..load.runner import RunOptions, locust_failure_reason, run_workload
    from ..report.html import write_run_report
    from ..results.summary import summary_table
    from ..load.loader import load_workload
    from ..load.workload import with_target
    from ..tables import print_labels

    wl = load_workload(workload)
    if target_url is not None:
        wl = with_target(wl, target_url)
    gpu_plan = None
    if wl.target.kind == "local" and not worker:
        gpu_plan = plan_gpus(wl.function_specs, virtual_gpus=wl.target.virtual_gpus, require_gpu=False,
                  choose_hint="set target.virtualGpus in the workload to choose",
                  size_hint="set target.virtualGpus in the workload (e.g. 1x48GB) to choose the "
                            "virtual GPUs")
    opts = RunOptions(out_dir=out_dir, ui=ui, autostart=autostart, web_port=web_port,
                      ui_linger_s=ui_linger, processes=processes, master=master,
                      expect_workers=expect_workers, worker=worker, master_host=master_host,
                      master_port=master_port, master_bind_host=master_bind_host,
                      duration_s=duration, progress=not no_progress,
                      report=write_run_report, gpu_plan=gpu_plan, async_wait_s=async_wait,
                      slo=slo)
    if ui:
        click.echo(f"web UI: http://127.0.0.1:{web_port}/" +
                   ("" if autostart else "  (press Start to begin the run)"), err=True)
    click.echo(f"{wl.name}: {wl.describe_load()}", err=True)
    result = run_workload(wl, options=opts)
    print_labels(summary_table(result.summary))
    state = "interrupted; partial results in" if result.interrupted else "results:"
    click.echo(f"{state} {result.run_dir}")
    if result.failed:
        reason = locust_failure_reason(result.run_dir)
        click.echo(f"error: Locust exited with code {result.locust_exit_code}"
                   f"{f' ({reason})' if reason else ''}; its log is "
                   f"{result.run_dir / layout.LOCUST_LOG}", err=True)
    if result.exit_code:
        sys.exit(result.exit_code)
    if all_failed(result.summary):
        first = first_failure(result.requests_csv) or "unknown error"
        click.echo(f"error: all {result.summary.get('count')} requests failed; the first: "
                   f"{first}", err=True)
        sys.exit(1)
