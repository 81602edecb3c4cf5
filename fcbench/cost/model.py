"""What a day of traffic costs on FC, against a GPU server that runs 24 h.

Key names: `compare`, `Comparison`, `per_thousand_requests`, `per_million_output_tokens`
(the one definition of each per-unit price: the day's bill over the day's requests or output
tokens); re-exported from their modules:
`DailyUsage` / `Shape` / `usage_from_calls` (`cost.usage`: what a day holds), `bill` /
`daily_cost` (`cost.billing`: the one billing function), `usage_from_run` / `priced_run` /
`usage_from_instances` / `run_window` (`cost.metering`: a run folder's metering as a day, the
one day-scaling rule). Every figure is in one table's currency; costs are never negative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from ..fc import gpu_price_family
from .billing import Bill, bill, daily_cost
from .metering import (PricedRun, RunWindow, priced_run, run_shape, run_window,
                       usage_from_instances, usage_from_run)
from .tables import CuTable, GbSecondTable
from .usage import DAY_S, MONTH_DAYS, DailyUsage, Shape, usage_from_calls

__all__ = ["DAY_S", "MONTH_DAYS", "Bill", "Comparison", "DailyUsage", "PricedRun", "RunWindow",
           "Shape", "bill", "compare", "daily_cost", "per_million_output_tokens",
           "per_thousand_requests", "priced_run",
           "run_shape", "run_window", "usage_from_calls", "usage_from_instances",
           "usage_from_run", "with_spec_shape"]


def with_spec_shape(usage: DailyUsage, spec: Any) -> DailyUsage:
    """`usage` at the shape of a `FunctionSpec` (its cpu, memorySize, diskSize, gpuConfig)."""
    gpu = getattr(spec, "gpu_config", None)
    gpu_type = gpu.gpu_type if gpu is not None else ""
    return usage.with_shape(Shape(
        gpu_gb=spec.gpu_memory_mb / 1024.0, vcpu=spec.cpu,
        memory_gb=None if spec.memory_size is None else spec.memory_size / 1024.0,
        disk_gb=None if spec.disk_size is None else spec.disk_size / 1024.0,
        gpu_family=gpu_price_family(gpu_type) if gpu_type else None,
        source=f"the function spec {spec.name!r}"))


def per_thousand_requests(daily_total: float, invocations: float) -> float | None:
    """A day's bill per 1000 requests of that day (None without requests)."""
    return daily_total / invocations * 1000.0 if invocations > 0 else None


def per_million_output_tokens(daily_total: float, output_tokens: float | None) -> float | None:
    """A day's bill per million output tokens of that day (`DailyUsage.output_tokens`: the
    answered requests' tokens); None without token counts or tokens."""
    if output_tokens is None or output_tokens <= 0:
        return None
    return daily_total / output_tokens * 1_000_000.0


@dataclass(frozen=True)
class Comparison:
    """FC against a GPU server for one day (all in `currency`)."""

    currency: str
    fc_per_day: float
    server_per_day: float | None
    utilisation: float
    saving: float | None  # 1 - fc/server
    break_even_utilisation: float | None  # None: FC is cheaper at any utilisation
    #: 24 h servers the day's busy time needs (more than one when utilisation exceeds 100 %)
    servers: int = 1
    #: FC's bill per million output tokens (`per_million_output_tokens`; None: no token counts)
    per_million_output_tokens: float | None = None
    #: output tokens a day (None: no token counts)
    output_tokens: float | None = None

    def lines(self) -> list[tuple[str, str]]:
        """(label, value) for a terminal table."""
        c = self.currency
        out = [("FC per day", f"{self.fc_per_day:.2f} {c}")]
        if self.per_million_output_tokens is not None:
            per_m = (f"{self.per_million_output_tokens:.4g} {c} "
                     f"({self.output_tokens:,.0f} output tokens a day)")
            out.append(("FC per million output tokens", per_m))
        out.append(("time utilisation", f"{self.utilisation:.2%}"))
        if self.server_per_day is not None:
            label = "GPU server per day (24 h)" if self.servers == 1 else \
                f"{self.servers} GPU servers per day (24 h; one is busy at most 100 %)"
            out.append((label, f"{self.server_per_day:.2f} {c}"))
            out.append(("saving", f"{self.saving:.1%}" if self.saving is not None else "–"))
            out.append(("break-even utilisation",
                        "never (FC is cheaper even when busy all day)"
                        if self.break_even_utilisation is None
                        else f"{self.break_even_utilisation:.1%}"))
        return out


def compare(table: GbSecondTable | CuTable, usage: DailyUsage, *,
            server_per_hour: float | None = None) -> Comparison:
    """The day's FC bill against a server at `server_per_hour` (default: the table's)."""
    fc = daily_cost(table, usage)["total"]
    hourly = table.server_per_hour if server_per_hour is None else server_per_hour
    # more busy seconds than a day has: one server cannot carry it, so price as many as it needs
    servers = max(1, math.ceil(usage.utilisation - 1e-9))
    server = None if hourly is None else hourly * 24.0 * servers
    saving = None if not server else 1.0 - fc / server
    break_even = None
    if server and usage.active_s > 0:
        # FC's bill grows with busy time (calls in proportion); where it meets the server's flat
        # day. Not a straight line on tiered CU prices, so found by bisection on the bill itself.
        per_server = server / servers

        def bill(u: float) -> float:
            return daily_cost(table, replace(usage, active_s=u * DAY_S, invocations=usage
                                             .invocations * u * DAY_S / usage.active_s))["total"]

        if bill(1.0) >= per_server:
            lo, hi = 0.0, 1.0
            for _ in range(60):
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if bill(mid) < per_server else (lo, mid)
            break_even = hi
    return Comparison(currency=table.currency, fc_per_day=fc, server_per_day=server,
                      utilisation=usage.utilisation, saving=saving,
                      break_even_utilisation=break_even, servers=servers,
                      per_million_output_tokens=per_million_output_tokens(
                          fc, usage.output_tokens),
                      output_tokens=usage.output_tokens)
