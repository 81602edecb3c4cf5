"""The report's cost section: a run's metering priced in every shipped table, and the cost plot.

Key names: `cost_section`, `draw_cost_plot`. Every number comes from `fcbench.cost`
(`metering.priced_run`, `billing.bill`, `model.compare`), as `fcbench cost RUN_DIR` prints
them; this module only lays them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FcbenchError
from ..results import RunFolder, layout

__all__ = ["CostSection", "cost_section", "draw_cost_plot"]


@dataclass
class CostSection:
    """A table (header + rows), notes, and what the plot needs; `error` when nothing priced."""

    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str = ""
    usage: Any = None  # fcbench.cost.model.DailyUsage


def _money(value: float | None, currency: str) -> str:
    return "–" if value is None else f"{value:,.2f} {currency}"


def _per_unit(value: float | None, currency: str) -> str:
    """A price per unit, 4 significant digits (a cent would round a small one to 0)."""
    return "–" if value is None else f"{value:,.4g} {currency}"


_METERS_NOTHING = ("Its target meters nothing (FC, a URL): busy time is the union of each "
                   f"instance's requests (from {layout.REQUESTS}); idle time is unknown and not "
                   "billed on demand.")


def cost_section(run_dir: str | Path | RunFolder) -> CostSection:
    """The run's day (its metering over its planned duration, scaled to 24 h) priced in each
    shipped table, with the server comparison where the table has a server price; a table
    that cannot price this function says why in its row."""
    from ..cost.billing import bill
    from ..cost.metering import priced_run
    from ..cost.model import compare
    from ..cost.tables import TABLES, load_table

    out = CostSection(header=["price table", "regime", "FC per day", "GPU server per day (24 h)",
                              "saving", "break-even utilisation", "source"])
    folder = RunFolder.of(run_dir)
    try:
        priced = priced_run(folder)
    except FcbenchError as exc:
        out.error = str(exc)
        if not folder.has(layout.INSTANCES) and folder.has(layout.REQUESTS):
            out.notes.append(_METERS_NOTHING)
        return out
    usage, shape = priced.usage, priced.shape
    out.usage = usage
    tokens = usage.output_tokens is not None
    if tokens:  # an LLM function: its price per million output tokens, beside the day's bill
        out.header.insert(3, "FC per million output tokens")
    for name in TABLES:
        table = load_table(name)
        try:
            billed = bill(table, usage)
        except FcbenchError as exc:
            out.rows.append([name, table.regime, f"not priced: {exc}", *(["–"] if tokens
                                                                          else []),
                             "–", "–", "–", f"{table.source} ({table.date})"])
            continue
        cmp = compare(table, usage)
        has_server = cmp.server_per_day is not None
        working = "; ".join(ln.text() for ln in billed.lines if ln.amount > 0)
        out.rows.append([
            name, table.regime,
            _money(cmp.fc_per_day, cmp.currency) + (f" ({working})" if working else ""),
            *([_per_unit(cmp.per_million_output_tokens, cmp.currency)] if tokens else []),
            _money(cmp.server_per_day, cmp.currency) if has_server else "no server price",
            f"{cmp.saving:.1%}" if has_server and cmp.saving is not None else "–",
            ("never (FC cheaper all day)" if cmp.break_even_utilisation is None
             else f"{cmp.break_even_utilisation:.1%}") if has_server else "–",
            f"{table.source} ({table.date})"])
    out.notes.append(f"The run's metering scaled ×{priced.scale:,.1f} to a day, by "
                     f"{priced.window.why}: {usage.invocations:,.0f} calls, "
                     f"{usage.active_s:,.0f} busy instance-seconds ({usage.utilisation:.1%} of a "
                     f"day), {usage.idle_s:,.0f} idle, GPU spec {usage.gpu_gb:g} GB"
                     + (f", {usage.output_tokens:,.0f} output tokens (the answered requests' "
                        "output_tokens; the price per million is the day's bill over them)"
                        if tokens else "") + ". Prices as published; check your console.")
    if usage.metered_from == layout.REQUESTS:
        out.notes.append(_METERS_NOTHING)
    out.notes.append(f"Shape priced: {shape.describe()}, from {shape.source}."
                     + (f" CU tables bill no {', '.join(shape.missing)}: the spec sets none "
                        "(`fcbench cost RUN_DIR --vcpu … --memory-gb … --disk-gb …` adds "
                        "them)."
                        if shape.missing else ""))
    if usage.gpu_gb == 0:
        out.notes.append("The function asked for no GPU memory (gpuMemorySize): a GB·s table, "
                         "which prices GPU memory only, cannot price it; the plot below shows "
                         "GPU sizes.")
    return out


def draw_cost_plot(section: CostSection, out: str | Path) -> Path | None:
    """The cost plot for this run: the first shipped table with a server price, the run's
    busy seconds per call, the usual GPU sizes plus the run's; None when the run gives no
    per-call duration."""
    from ..cost.plot import DEFAULT_GPU_MEM_GB, plot_cost_curves
    from ..cost.tables import TABLES, load_table

    usage = section.usage
    if usage is None or usage.invocations <= 0 or usage.active_s <= 0:
        return None
    tables = [load_table(name) for name in TABLES]
    table = next((t for t in tables if t.server_per_hour is not None), tables[0])
    sizes = sorted(set(DEFAULT_GPU_MEM_GB) | ({usage.gpu_gb} if usage.gpu_gb > 0 else set()))
    duration = usage.active_s / usage.invocations
    return plot_cost_curves(table, duration_s=duration, gpu_mem_gb=sizes, out=out,
                            mark_calls=usage.invocations)
