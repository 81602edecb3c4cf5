"""`fcbench cost`: FC's daily bill against a 24 h GPU server, from arguments or a run folder.

Everything printed comes from `fcbench.cost` (the bill, line by line: `cost.billing.bill`; a
run's day: `cost.metering.priced_run`) and, for what-ifs, `fcbench.sim.whatif`; this module
only reads options and lays the figures out.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..fc import PRICE_FAMILIES
from ..tables import label_width, print_columns, print_labels
from ..results import layout

__all__ = ["cost"]

#: Said when CU tables meet a shape nobody gave (argument-only pricing).
NO_DEFAULT_SHAPE = ("FC documents no default vCPU / memory / disk for a GPU function of a "
                    "given size (CreateFunction's reference shows examples only; the price "
                    "tables and docs/cost.md name none)")


def _server_prices(values: tuple[str, ...]) -> dict[str, float]:
    """``--server-price`` values read by `parse_server_prices`, its refusals as CLI errors."""
    from ..cost.tables import parse_server_prices

    try:
        return parse_server_prices(values)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--server-price") from None


@click.command()
@click.argument("run_dir", required=False,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--calls-per-day", type=click.FloatRange(min=0), default=None,
              help="Requests a day (without RUN_DIR).")
@click.option("--seconds-per-call", "seconds_per_call", type=click.FloatRange(min=0),
              default=None, help="Seconds each request keeps the GPU busy (without RUN_DIR).")
@click.option("--duration", "deprecated_duration", type=click.FloatRange(min=0), default=None,
              hidden=True, help="Deprecated name of --seconds-per-call.")
@click.option("--gpu-mem", "gpu_gb", type=click.FloatRange(min=0), default=None,
              help="GPU memory spec in GB (gpuMemorySize / 1024). Default with RUN_DIR: the "
              "function spec the run recorded; needed for a run against FC or a URL whose spec "
              "was not recorded.")
@click.option("--table", "tables", multiple=True, default=("fc-doc-simple",),
              show_default=True, help="Price table: a shipped name (fc-doc-simple, "
              "fc3-cu-2024-08) or a YAML file; repeat for several.")
@click.option("--server-price", "server_prices", multiple=True, callback=lambda c, p, v:
              _server_prices(v), metavar="PRICE[CURRENCY]",
              help="GPU server per hour, e.g. 14CNY or 2.1USD (repeat per currency; a bare "
              "number is in every table's currency). Default: the table's own.")
@click.option("--vcpu", type=click.FloatRange(min=0), default=None,
              help="vCPUs of an instance (`cpu`; CU tables bill them). Default with RUN_DIR: "
              "the recorded spec's.")
@click.option("--memory-gb", type=click.FloatRange(min=0), default=None,
              help="Instance memory in GB (`memorySize` / 1024; CU tables bill it). Default "
              "with RUN_DIR: the recorded spec's.")
@click.option("--disk-gb", type=click.FloatRange(min=0), default=None,
              help="Instance disk in GB (`diskSize` / 1024: 0.5 or 10; CU tables bill it). "
              "Default with RUN_DIR: the recorded spec's.")
@click.option("--gpu-family", type=click.Choice(PRICE_FAMILIES), default=None,
              help="GPU family (CU tables price them differently; default: the run's gpuType, "
              "else tesla, FC's default gpuType).")
@click.option("--what-if", "what_ifs", multiple=True, metavar="KEY=V1,V2,...",
              help="With RUN_DIR: simulate the run's traffic again, calibrated on it, for every "
              "combination of minInstances, idleTimeout, instanceConcurrency, maxInstances "
              f"and, for an LLM run (token counts in {layout.REQUESTS}), outputTokens / promptTokens "
              "as factors (outputTokens=1x,2x: answers twice as long) (repeat the option per "
              "key); prints and writes whatif-<time>.csv in RUN_DIR.")
@click.option("--replications", type=click.IntRange(min=0), default=None,
              help="What-ifs: bootstrap replications of the calibration behind each interval "
              "(default 100).")
@click.option("--seed", type=int, default=0, show_default=True, help="What-if simulations' seed.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="FILE.png", help="Also draw daily cost against calls a day "
              "(one FC curve per GPU memory size, the server line, break-even marked); with "
              "several tables, one file each (FILE-<table>.png).")
def cost(run_dir: Path | None, calls_per_day: float | None, seconds_per_call: float | None,
         deprecated_duration: float | None, gpu_gb: float | None, tables: tuple[str, ...],
         server_prices: dict[str, float], vcpu: float | None, memory_gb: float | None,
         disk_gb: float | None, gpu_family: str | None, what_ifs: tuple[str, ...],
         replications: int | None, seed: int, plot_path: Path | None) -> None:
    """What a day of traffic costs on FC, against a GPU server running 24 h.

    Either --calls-per-day, --seconds-per-call and --gpu-mem (FC's own worked example: 3600
    one-second calls a day on a 4 GB spec), or RUN_DIR: a run's metering, scaled to a day by
    its planned duration, at the instance shape it recorded. Every billed component is printed
    as its product (seconds × size × rate). Prices are as published; check your console.
    """
    from ..cost.model import Shape, usage_from_calls
    from ..cost.tables import load_table, server_price

    if deprecated_duration is not None:
        if seconds_per_call is not None:
            raise click.UsageError("give --seconds-per-call only (--duration is its old name)")
        click.echo("warning: `fcbench cost --duration` is deprecated (it means seconds per "
                   "call here, a run's length everywhere else): use --seconds-per-call", err=True)
        seconds_per_call = deprecated_duration
    given = [f"--{k} {v:g}" for k, v in (("gpu-mem", gpu_gb), ("vcpu", vcpu),
                                         ("memory-gb", memory_gb), ("disk-gb", disk_gb))
             if v is not None] + ([f"--gpu-family {gpu_family}"] if gpu_family else [])
    options = Shape(gpu_gb, vcpu, memory_gb, disk_gb, gpu_family,
                    source=("options " + " ".join(given)) if given else "")
    if what_ifs:
        if run_dir is None:
            raise click.UsageError("--what-if needs RUN_DIR: the run whose traffic to replay")
        _what_if(run_dir, what_ifs, tables, seed, replications, options)
        return
    if run_dir is not None:
        if calls_per_day is not None or seconds_per_call is not None:
            raise click.UsageError("give RUN_DIR or --calls-per-day/--seconds-per-call, not "
                                   "both")
        usage, shape = _run_usage(run_dir, options)
    else:
        if calls_per_day is None or seconds_per_call is None or gpu_gb is None:
            raise click.UsageError("give --calls-per-day, --seconds-per-call and --gpu-mem "
                                   "(or RUN_DIR)")
        shape = options
        usage = usage_from_calls(calls_per_day, seconds_per_call, gpu_gb).with_shape(shape)
        click.echo(f"{calls_per_day:,.0f} calls a day × {seconds_per_call:g} s = "
                   f"{usage.active_s:,.0f} busy instance-seconds")
    click.echo(f"shape priced: {shape.describe()} — from {shape.source or 'the options'}")
    loaded = [load_table(name) for name in tables]
    unused = set(server_prices) - {t.currency.upper() for t in loaded} - {""}
    if unused:
        raise click.BadParameter(f"no price table given is in {', '.join(sorted(unused))} "
                                 f"(tables: {', '.join(f'{t.name} {t.currency}' for t in loaded)})"
                                 "; give the server's price in a table's currency",
                                 param_hint="--server-price")
    for table in loaded:
        price = server_price(server_prices, table)
        _print_table(table, usage, shape, price, argument_only=run_dir is None)
        if plot_path is not None:
            out = plot_path if len(tables) == 1 else \
                plot_path.with_name(f"{plot_path.stem}-{table.name}{plot_path.suffix or '.png'}")
            _plot(table, usage, price, out)
            click.echo(f"  plot: {out}")


def _run_usage(run_dir: Path, options):  # noqa: ANN001, ANN202
    """A run's day (`priced_run`), with what was metered and how it was scaled, printed."""
    from ..cost.metering import priced_run

    priced = priced_run(run_dir, options)
    usage, window = priced.usage, priced.window
    click.echo(f"from {run_dir}: {priced.requests} requests, {priced.run_active_s:,.3f} busy "
               f"instance-s metered ({usage.metered_from})")
    click.echo(f"a day is 86400 s / {window.seconds:g} s: metering scaled ×{window.scale:.1f} "
               f"to a day ({usage.invocations:,.0f} calls, {usage.active_s:,.1f} busy "
               f"instance-s), by {window.why}")
    if usage.metered_from == layout.REQUESTS:
        click.echo("  its target meters nothing (FC, a URL): busy time is the union of each "
                   "instance's requests, idle time unknown (not billed on demand)")
    return usage, priced.shape


def _print_table(table, usage, shape, price, *, argument_only: bool) -> None:  # noqa: ANN001
    from ..cost.billing import bill
    from ..cost.model import compare

    billed = bill(table, usage)  # raises (exit 2) where the table cannot price this function
    result = compare(table, usage, server_per_hour=price)
    click.echo(f"\n{table.name} ({table.regime}, {table.currency}; {table.note})")
    for line in billed.working():
        click.echo(f"  {line}")
    if table.regime == "cu" and shape.missing:
        why = NO_DEFAULT_SHAPE if argument_only else "the run's spec does not set them"
        click.echo(f"  not billed: {', '.join(shape.missing)} (not given: {why}; pass --vcpu, "
                   "--memory-gb, --disk-gb)")
    width = label_width(result.lines())  # the compute units line is laid out beside them
    print_labels(result.lines(), width=width)
    if table.regime == "cu":
        print_labels([("compute units per day", f"{billed.cu_per_day:,.0f} CU")], width=width)
    click.echo(f"  source: {table.source} ({table.date})")


def _what_if(run_dir: Path, texts: tuple[str, ...], tables: tuple[str, ...], seed: int,
             replications: int | None, options) -> None:  # noqa: ANN001
    import time

    from ..sim.bootstrap import DEFAULT_REPLICATIONS
    from ..sim.whatif import parse_what_if, what_if, what_if_table, write_what_if_csv

    grid = parse_what_if(texts)
    combos = 1
    for values in grid.values():
        combos *= len(values)
    reps = DEFAULT_REPLICATIONS if replications is None else replications
    click.echo(f"replaying {run_dir} through the simulator, calibrated on it: {combos} "
               f"combination(s), each with {reps} bootstrap replications of the calibration "
               "(measured service and start-up samples drawn again) on the same arrivals")
    inputs: dict = {}
    rows = what_if(run_dir, grid, tables=tables, seed=seed, replications=reps,
                   options=options, inputs=inputs)
    cal, window = inputs["calibration"], inputs["window"]
    cold = f", {cal['cold_service_samples']} cold ones (median " \
        f"{cal['cold_service_median_ms']:g} ms)" if cal["cold_service_samples"] else \
        ", no cold one (cold requests draw warm times)"
    click.echo(f"inputs: {cal['service_samples']} warm service times (median "
               f"{cal['service_median_ms']:g} ms){cold}, {cal['startup_samples']} start-ups "
               f"(median {cal['startup_median_ms']:g} ms, {cal['startup_from']}); every row "
               f"scaled ×{window.scale:.1f} to a day by {window.why}")
    if inputs.get("tokens"):
        click.echo(inputs["tokens"])
    click.echo("the first row is the run as measured, the row marked * its own settings "
               "simulated: their difference is the calibration error; intervals are 95 %")
    print_columns(*what_if_table(rows, list(grid)))
    path = write_what_if_csv(rows, run_dir / layout.whatif_name(time.strftime('%Y%m%d-%H%M%S')))
    from ..report.html import write_report

    write_report(run_dir)
    click.echo(f"written: {path} (and the run's {layout.REPORT})")


def _plot(table, usage, server_per_hour: float | None, out: Path) -> None:  # noqa: ANN001
    from ..cost.plot import DEFAULT_GPU_MEM_GB, plot_cost_curves

    duration = usage.active_s / usage.invocations if usage.invocations else 0.0
    if duration <= 0:
        raise click.UsageError("nothing to plot: no busy seconds per call")
    sizes = sorted({*DEFAULT_GPU_MEM_GB, *([usage.gpu_gb] if usage.gpu_gb else [])})
    hourly = table.server_per_hour if server_per_hour is None else server_per_hour
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_cost_curves(table, duration_s=duration, gpu_mem_gb=sizes,
                     server_price_per_day=None if hourly is None else hourly * 24.0, out=out,
                     mark_calls=usage.invocations, vcpu=usage.vcpu, memory_gb=usage.memory_gb,
                     disk_gb=usage.disk_gb, gpu_family=usage.gpu_family,
                     title=f"{table.name}: FC per day vs a 24 h server, {duration:g} s per call")
