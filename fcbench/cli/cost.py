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
@click.option("--gpu-family", type=click.Choice(["tesla", "ada"]), default="tesla",
              show_default=True, help="GPU family (CU tables price them differently).")
def cost(run_dir: Path | None, calls_per_day: float | None, duration_s: float | None,
         gpu_gb: float | None, tables: tuple[str, ...], server_prices: dict[str, float],
         vcpu: float, memory_gb: float, disk_gb: float, gpu_family: str) -> None:
    """What a day of traffic costs on FC, against a GPU server running 24 h.

    Either --calls-per-day, --duration and --gpu-mem (FC's own worked example: 3600 one-second
    calls a day on a 4 GB spec), or RUN_DIR: a harness run's metering (instances.csv), scaled
    to a day. Prices are as published; check your console.
    """
    from ..cost.model import compare, daily_cost, usage_from_calls, usage_from_run
    from ..cost.tables import load_table

    if run_dir is not None:
        if calls_per_day is not None or duration_s is not None:
            raise click.UsageError("give RUN_DIR or --calls-per-day/--duration, not both")
        usage, scale = usage_from_run(run_dir)
        if gpu_gb is not None:
            usage = replace(usage, gpu_gb=gpu_gb)
        click.echo(f"from {run_dir}: metering scaled ×{scale:.1f} to a day "
                   f"({usage.invocations:.0f} calls, {usage.active_s:.0f} busy instance-s)")
    else:
        if calls_per_day is None or duration_s is None or gpu_gb is None:
            raise click.UsageError("give --calls-per-day, --duration and --gpu-mem (or RUN_DIR)")
        usage = usage_from_calls(calls_per_day, duration_s, gpu_gb)
    usage = replace(usage, vcpu=vcpu or usage.vcpu, memory_gb=memory_gb or usage.memory_gb,
                    disk_gb=disk_gb or usage.disk_gb, gpu_family=gpu_family)
    for name in tables:
        table = load_table(name)
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
