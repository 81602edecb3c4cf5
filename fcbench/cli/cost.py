"""`fcbench cost`: FC's daily bill against a 24 h GPU server, from arguments or a run folder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

__all__ = ["cost"]


def _server_prices(values: tuple[str, ...]) -> dict[str, float]:
    """``("14CNY", "2.1 usd")`` -> ``{"CNY": 14.0, "USD": 2.1}``; a bare number keys ``""``."""
    out: dict[str, float] = {}
    for text in values:
        raw = text.strip()
        number = raw.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz ").strip()
        currency = raw[len(number):].strip().upper()
        try:
            value = float(number)
        except ValueError:
            raise click.BadParameter(f"cannot read {text!r}; write a price per hour such as "
                                     "14CNY, 2.1USD or 14", param_hint="--server-price") from None
        if value < 0:
            raise click.BadParameter("a price cannot be negative", param_hint="--server-price")
        out[currency] = value
    return out


@click.command()
@click.argument("run_dir", required=False,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--calls-per-day", type=click.FloatRange(min=0), default=None,
              help="Requests a day (without RUN_DIR).")
@click.option("--duration", "duration_s", type=click.FloatRange(min=0), default=None,
              help="Seconds each request keeps the GPU busy (without RUN_DIR).")
@click.option("--gpu-mem", "gpu_gb", type=click.FloatRange(min=0), default=None,
              help="GPU memory spec in GB (gpuMemorySize / 1024).")
@click.option("--table", "tables", multiple=True, default=("fc-doc-simple",),
              show_default=True, help="Price table: a shipped name (fc-doc-simple, "
              "fc3-cu-2024-08) or a YAML file; repeat for several.")
@click.option("--server-price", "server_prices", multiple=True, callback=lambda c, p, v:
              _server_prices(v), metavar="PRICE[CURRENCY]",
              help="GPU server per hour, e.g. 14CNY or 2.1USD (repeat per currency; a bare "
              "number is in every table's currency). Default: the table's own.")
@click.option("--vcpu", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="vCPUs of an instance (CU tables bill them).")
@click.option("--memory-gb", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option("--disk-gb", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option("--gpu-family", type=click.Choice(["tesla", "ada"]), default=None,
              help="GPU family (CU tables price them differently; default: the run's gpuType, "
              "else tesla).")
@click.option("--what-if", "what_ifs", multiple=True, metavar="KEY=V1,V2,...",
              help="With RUN_DIR: simulate the run's traffic again, calibrated on it, for every "
              "combination of minInstances, idleTimeout, instanceConcurrency, maxInstances "
              "(repeat the option per key); prints and writes whatif-<time>.csv in RUN_DIR.")
@click.option("--seed", type=int, default=0, show_default=True, help="What-if simulations' seed.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="FILE.png", help="Also draw daily cost against calls a day "
              "(one FC curve per GPU memory size, the server line, break-even marked); with "
              "several tables, one file each (FILE-<table>.png).")
def cost(run_dir: Path | None, calls_per_day: float | None, duration_s: float | None,
         gpu_gb: float | None, tables: tuple[str, ...], server_prices: dict[str, float],
         vcpu: float, memory_gb: float, disk_gb: float, gpu_family: str | None,
         what_ifs: tuple[str, ...], seed: int, plot_path: Path | None) -> None:
    """What a day of traffic costs on FC, against a GPU server running 24 h.

    Either --calls-per-day, --duration and --gpu-mem (FC's own worked example: 3600 one-second
    calls a day on a 4 GB spec), or RUN_DIR: a harness run's metering (instances.csv), scaled
    to a day. Prices are as published; check your console.
    """
    from ..cost.model import compare, daily_cost, usage_from_calls, usage_from_run
    from ..cost.tables import load_table

    if what_ifs:
        if run_dir is None:
            raise click.UsageError("--what-if needs RUN_DIR: the run whose traffic to replay")
        _what_if(run_dir, what_ifs, tables, seed)
        return
    if run_dir is not None:
        if calls_per_day is not None or duration_s is not None:
            raise click.UsageError("give RUN_DIR or --calls-per-day/--duration, not both")
        usage, scale = usage_from_run(run_dir)
        if gpu_gb is not None:
            usage = replace(usage, gpu_gb=gpu_gb)
        click.echo(f"from {run_dir}: metering scaled ×{scale:.1f} to a day "
                   f"({usage.invocations:.0f} calls, {usage.active_s:.0f} busy instance-s)")
        if usage.metered_from == "requests.csv":
            click.echo("  its target meters nothing (FC, a URL): busy time is the union of each "
                       "instance's requests, idle time unknown (not billed on demand)")
            if usage.gpu_gb == 0:
                click.echo("  no GPU spec recorded: give --gpu-mem GB to price the GPU")
    else:
        if calls_per_day is None or duration_s is None or gpu_gb is None:
            raise click.UsageError("give --calls-per-day, --duration and --gpu-mem (or RUN_DIR)")
        usage = usage_from_calls(calls_per_day, duration_s, gpu_gb)
    usage = replace(usage, vcpu=vcpu or usage.vcpu, memory_gb=memory_gb or usage.memory_gb,
                    disk_gb=disk_gb or usage.disk_gb, gpu_family=gpu_family or usage.gpu_family)
    loaded = [load_table(name) for name in tables]
    unused = set(server_prices) - {t.currency.upper() for t in loaded} - {""}
    if unused:
        raise click.BadParameter(f"no price table given is in {', '.join(sorted(unused))} "
                                 f"(tables: {', '.join(f'{t.name} {t.currency}' for t in loaded)})"
                                 "; give the server's price in a table's currency",
                                 param_hint="--server-price")
    for table in loaded:
        price = server_prices.get(table.currency.upper(), server_prices.get(""))
        result = compare(table, usage, server_per_hour=price)
        parts = daily_cost(table, usage)
        click.echo(f"\n{table.name} ({table.regime}, {table.currency}; {table.note})")
        width = max(len(label) for label, _ in result.lines())
        for label, value in result.lines():
            click.echo(f"  {label:<{width}}  {value}")
        if table.regime == "cu":
            click.echo(f"  {'compute units per day':<{width}}  {parts['cu']:,.0f} CU")
        click.echo(f"  source: {table.source} ({table.date})")
        if plot_path is not None:
            out = plot_path if len(tables) == 1 else \
                plot_path.with_name(f"{plot_path.stem}-{table.name}{plot_path.suffix or '.png'}")
            _plot(table, usage, price, out)
            click.echo(f"  plot: {out}")


def _what_if(run_dir: Path, texts: tuple[str, ...], tables: tuple[str, ...], seed: int) -> None:
    import json
    import time

    from ..sim.whatif import parse_what_if, what_if, write_what_if_csv

    grid = parse_what_if(texts)
    combos = 1
    for values in grid.values():
        combos *= len(values)
    click.echo(f"replaying {run_dir} through the simulator, calibrated on it: {combos} "
               "combination(s)")
    rows = what_if(run_dir, grid, tables=tables, seed=seed)
    measured = json.loads((run_dir / "summary.json").read_text()).get("p_cold") or {}
    if measured.get("value") is not None:
        click.echo(f"measured P(cold) {measured['value']:.4f}; the row marked * is the "
                   "simulation of the run's own settings, to hold against it")
    keys = list(grid)
    cost_cols = [(name, cur) for name, (cur, _, _) in rows[0].costs.items()] if rows else []
    head = [*keys, "P(cold) [95%]", "p99 intended ms", "429s",
            *[f"{n} {c}/day" for n, c in cost_cols], *[f"{c}/1000 req" for _, c in cost_cols]]
    body = []
    for r in rows:
        pc = "-" if r.p_cold is None else f"{r.p_cold:.4f} [{r.p_cold_lo:.4f}, {r.p_cold_hi:.4f}]"
        p99 = "-" if r.p99_from_intended_ms is None else f"{r.p99_from_intended_ms:.0f}"
        body.append([*(f"{r.settings[k]:g}" + ("*" if r.as_run and i == 0 else "")
                       for i, k in enumerate(keys)), pc, p99, str(r.throttled),
                     *[f"{r.costs[n][1]:.2f}" for n, _ in cost_cols],
                     *[_money(r.costs[n][2]) for n, _ in cost_cols]])
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    click.echo("  ".join(h.rjust(w) for h, w in zip(head, widths)))
    for b in body:
        click.echo("  ".join(v.rjust(w) for v, w in zip(b, widths)))
    path = write_what_if_csv(rows, run_dir / f"whatif-{time.strftime('%Y%m%d-%H%M%S')}.csv")
    from ..report.html import write_report

    write_report(run_dir)
    click.echo(f"written: {path} (and the run's report.html)")


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


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
