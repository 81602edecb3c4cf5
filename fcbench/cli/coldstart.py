"""`fcbench coldstart ...`: forced cold-start profiles and probability-vs-concurrency sweeps."""

from __future__ import annotations

from pathlib import Path

import click

from .invoke import read_data

__all__ = ["coldstart"]


@click.group()
def coldstart() -> None:
    """Cold-start experiments: where the time goes, and how often it hits."""


@coldstart.command("profile")
@click.argument("spec", required=False, type=click.Path(dir_okay=False))
@click.option("--repeats", "-n", default=5, show_default=True, type=click.IntRange(1),
              help="Cold starts to keep.")
@click.option("--warmup", default=1, show_default=True, type=click.IntRange(0),
              help="Cold starts to run first and drop.")
@click.option("--pull", is_flag=True, help="Remove the image before each cold start so the "
              "pull is real (docker runtime, image in a registry).")
@click.option("--data", "-d", default=None, help="Request body: a string or @FILE.")
@click.option("--url", default=None, help="Profile a running endpoint instead of SPEC: an FC "
              "3.0-compatible base URL (with --function) or any URL to POST to.")
@click.option("--function", "function_name", default=None, help="Function name (with --url).")
@click.option("--force", default=None, help="How to force cold starts: reclaim (harness), "
              "wait:SECONDS (longer than the idle timeout), none. Default: reclaim for SPEC "
              "or a harness URL, else wait:360.")
@click.option("--virtual-gpus", default=None, metavar="COUNTxSIZE",
              help="Virtual GPUs for GPU specs when NVML finds none (e.g. 1x16GB).")
@click.option("--runtime", type=click.Choice(["process", "docker"]), default=None)
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("results"), show_default=True, help="Parent folder of run folders.")
def profile(spec: str | None, repeats: int, warmup: int, pull: bool, data: str | None,
            url: str | None, function_name: str | None, force: str | None,
            virtual_gpus: str | None, runtime: str | None, out: Path) -> None:
    """Force cold starts of SPEC's function and split each into phases.

    Writes phases.csv, plots/phases.png and summary.json to a new run folder and prints a
    median/spread table. With --url, profiles a running endpoint from its response headers.
    """
    from ..coldstart.session import profile_endpoint, profile_spec
    from ..report.phases import phase_table

    if (spec is None) == (url is None):
        raise click.UsageError("give either SPEC.yaml or --url URL")
    body, ctype = read_data(data)

    def progress(sample) -> None:  # noqa: ANN001
        extra = f"  ({sample.error[:80]})" if sample.error else ""
        click.echo(f"  cold start {sample.index + 1}: {sample.kind:<8} e2e {sample.e2e_ms:8.1f} ms"
                   + (f"  warm {sample.warm_ms:.1f} ms" if sample.warm_ms else "") + extra)

    if spec is not None:
        run_dir, result = profile_spec(spec, repeats=repeats, warmup=warmup, pull=pull,
                                       body=body, content_type=ctype, force=force or "reclaim",
                                       virtual_gpus=virtual_gpus, runtime=runtime, out=out,
                                       on_sample=progress)
    else:
        run_dir, result = profile_endpoint(url, function_name, repeats=repeats, warmup=warmup,
                                           body=body, content_type=ctype, force=force, out=out,
                                           on_sample=progress)
    click.echo(phase_table(result))
    click.echo(f"results: {run_dir}")


def _levels(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, ...]:
    try:
        levels = tuple(float(x) for x in value.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter("use comma-separated numbers, e.g. 1,2,4,8,16") from None
    if not levels or any(x <= 0 for x in levels):
        raise click.BadParameter("levels must be positive numbers, e.g. 1,2,4,8,16")
    return levels


@coldstart.command("sweep")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--concurrency", "levels", default="1,2,4,8,16", show_default=True,
              callback=_levels, help="Levels: mean requests in flight (or instanceConcurrency "
              "values with --vary instance-concurrency).")
@click.option("--vary", type=click.Choice(["concurrency", "instance-concurrency"]),
              default="concurrency", show_default=True)
@click.option("--load", type=float, default=None, help="With --vary instance-concurrency: mean "
              "requests in flight (default: the largest level).")
@click.option("--duration", type=float, default=60.0, show_default=True,
              help="Seconds of load per level.")
@click.option("--service-ms", type=float, default=None,
              help="Service time used to turn concurrency into a rate (default: measured).")
@click.option("--mode", type=click.Choice(["open", "closed"]), default="open", show_default=True,
              help="open: Poisson arrivals at level/service time; closed: level users.")
@click.option("--think", "think_s", type=float, default=1.0, show_default=True,
              help="Closed mode: seconds each user waits between requests.")
@click.option("--warmup", "warmup_s", type=float, default=None,
              help="Seconds at the start of each level left out of P(cold) (the ramp from "
              "zero). Default: a quarter of --duration.")
@click.option("--data", "-d", default=None, help="Request body: a string or @FILE.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--virtual-gpus", default=None, metavar="COUNTxSIZE")
@click.option("--runtime", type=click.Choice(["process", "docker"]), default=None)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True)
def sweep(spec: str, levels: tuple[float, ...], vary: str, load: float | None, duration: float,
          service_ms: float | None, mode: str, think_s: float, warmup_s: float | None,
          data: str | None, seed: int,
          virtual_gpus: str | None, runtime: str | None, out: Path) -> None:
    """Measure cold-start probability at each concurrency level and plot it.

    Writes sweep.csv (P(cold) with 95% Wilson intervals, p50/p99, instances per level),
    plots/p_cold.png and report.html; each level's own run folder is kept under levels/.
    """
    from ..coldstart.session import sweep_spec
    from ..coldstart.sweep import SweepConfig

    body, ctype = read_data(data)
    config = SweepConfig(levels=levels, vary=vary, load=load, duration_s=duration,  # type: ignore[arg-type]
                         service_ms=service_ms, mode=mode, think_s=think_s, seed=seed,  # type: ignore[arg-type]
                         warmup_s=warmup_s,
                         virtual_gpus=virtual_gpus, runtime=runtime)

    def progress(lv) -> None:  # noqa: ANN001
        p = "-" if lv.p_cold is None else f"{lv.p_cold:.3f} [{lv.p_cold_lo:.3f}, {lv.p_cold_hi:.3f}]"
        click.echo(f"  level {lv.level:g}: {lv.requests} requests, {lv.cold} cold, P(cold) {p}, "
                   f"{lv.instances} instances, p99 {lv.p99_ms} ms")

    click.echo(f"sweeping {vary} over {', '.join(f'{x:g}' for x in levels)} "
               f"({duration:g} s each)")
    run_dir, summary = sweep_spec(spec, config, body=body, content_type=ctype, out=out,
                                  on_level=progress)
    click.echo(f"service time {summary['service_ms']:.1f} ms; P(cold) "
               + ("falls" if summary["monotone_within_intervals"] else "does NOT fall")
               + " monotonically within the 95% intervals")
    click.echo(f"results: {run_dir}")
