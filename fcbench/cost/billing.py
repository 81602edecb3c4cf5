"""The one billing function: a day's usage priced in one table, line by line.

Key names: `bill` (a `Bill` of `BillLine`s: seconds × size × rate per billed component, and the
CU tiers), `daily_cost` (the bill's total and parts as a dict). Every command that prints money
— ``fcbench cost``, its what-ifs, ``simulate --calibrate``, the report, ``report --compare`` —
prices through `bill`, for measured and simulated runs alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import UsageError
from .tables import CuTable, GbSecondTable
from .usage import MONTH_DAYS, DailyUsage

__all__ = ["Bill", "BillLine", "bill", "daily_cost", "number"]


def number(x: float) -> str:
    """A figure as a person checks it by eye: thousands separated, no float noise
    (``3,600``, ``933.4``, ``0.0007``, ``0.00002``)."""
    if x == 0:
        return "0"
    if abs(x) >= 100:
        text = f"{x:,.1f}"
    elif abs(x) >= 1:
        text = f"{x:,.3f}"
    else:
        text = f"{x:.8f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class BillLine:
    """One billed component: ``seconds × size × rate = amount`` (or ``calls / 10,000 × rate``).

    `amount` is in the table's currency for a GB·s table and in compute units for a CU table.
    """

    component: str
    amount: float
    amount_unit: str
    rate: float
    rate_unit: str
    seconds: float | None = None
    size: float | None = None
    size_unit: str = ""
    calls: float | None = None

    def text(self) -> str:
        """``3,600 s × 4 GB × 0.0007 CNY/GB·s = 10.08 CNY``."""
        if self.calls is not None:
            factors = f"{number(self.calls)} calls / 10,000 × {number(self.rate)} {self.rate_unit}"
        else:
            factors = f"{number(self.seconds or 0.0)} s × {number(self.size or 0.0)} " \
                      f"{self.size_unit} × {number(self.rate)} {self.rate_unit}"
        shown = f"{self.amount:,.2f}" if self.amount_unit != "CU" else number(self.amount)
        return f"{factors} = {shown} {self.amount_unit}"


@dataclass(frozen=True)
class Bill:
    """A day's FC bill in one table: its lines, and for a CU table the month's tiers."""

    table: str
    regime: str
    currency: str
    lines: tuple[BillLine, ...]
    total: float
    #: CU tables: the day's compute units, and (CU, price per CU, amount) per monthly tier
    cu_per_day: float | None = None
    tiers: tuple[tuple[float, float, float], ...] = ()

    def parts(self) -> dict[str, float]:
        """``{"total": ..., ["cu": ...,] component: share of the total}`` (`daily_cost`)."""
        if self.cu_per_day is None:
            return {"total": self.total, "gpu": self.total}
        share = self.total / self.cu_per_day if self.cu_per_day > 0 else 0.0
        out = {"total": self.total, "cu": self.cu_per_day}
        for key in ("vcpu", "memory", "disk", "gpu", "invocations"):
            out[key] = sum(ln.amount for ln in self.lines
                           if ln.component.split()[0].lower() == key) * share
        return out

    def working(self) -> list[str]:
        """The bill as lines a person can check against the documentation by eye."""
        width = max((len(ln.component) for ln in self.lines), default=0)
        out = [f"{ln.component:<{width}}  {ln.text()}" for ln in self.lines]
        if self.cu_per_day is not None:
            month = self.cu_per_day * MONTH_DAYS
            out.append(f"{'compute units':<{width}}  {number(self.cu_per_day)} CU a day × "
                       f"{MONTH_DAYS:g} = {number(month)} CU a month")
            for cu, price, amount in self.tiers:
                out.append(f"{'':<{width}}  {number(cu)} CU × {number(price)} "
                           f"{self.currency}/CU = {amount:,.2f} {self.currency} a month")
            out.append(f"{'':<{width}}  / {MONTH_DAYS:g} = {self.total:,.2f} {self.currency} "
                       "a day")
        return out


def _tiered(cu: float, table: CuTable) -> list[tuple[float, float, float]]:
    """(CU, price, amount) of each monthly tier `cu` reaches."""
    left, floor, out = cu, 0.0, []
    for tier in table.tiers:
        top = math.inf if tier.up_to is None else tier.up_to
        take = max(0.0, min(left, top - floor))
        if take > 0 or not out:
            out.append((take, tier.price, take * tier.price))
        left -= take
        floor = top
        if left <= 0:
            break
    return out


def bill(table: GbSecondTable | CuTable, usage: DailyUsage) -> Bill:
    """The day's FC bill in `table`: active seconds always; on-demand idle seconds where the
    table bills idle time (`billIdle`); provisioned instances' idle seconds always (at the CU
    table's idle rates; a GB·s table publishes none, so at its GPU price).

    Raises:
        UsageError: a GB·s table (it prices GPU memory only) for a function without a GPU
            spec, or a GPU family the CU table does not price.
    """
    idle = usage.idle_s if table.bill_idle else 0.0
    kept = usage.provisioned_idle_s
    periods = [("active", usage.active_s), ("idle, on demand", idle),
               ("idle, provisioned", kept)]
    if isinstance(table, GbSecondTable):
        if usage.gpu_gb <= 0:
            raise UsageError(f"the table {table.name!r} prices GPU memory only (per GB·s of "
                             "gpuMemorySize) and this function has no GPU spec: pass --gpu-mem "
                             "GB to price it as a GPU function, or use a CU table "
                             "(--table fc3-cu-2024-08) for its vCPU and memory")
        unit = f"{table.currency}/GB·s"
        lines = tuple(BillLine(f"GPU {what}", usage.gpu_gb * s * table.gpu_gb_s,
                               table.currency, table.gpu_gb_s, unit, seconds=s,
                               size=usage.gpu_gb, size_unit="GB")
                      for what, s in periods if s > 0 or what == "active")
        return Bill(table.name, table.regime, table.currency, lines,
                    sum(ln.amount for ln in lines))
    rates = table.cu
    try:
        gpu = rates.gpu[usage.gpu_family]
    except KeyError:
        raise UsageError(f"the table {table.name!r} prices GPU families "
                         f"{', '.join(rates.gpu)}, not {usage.gpu_family!r}") from None
    resources = [  # (component, size, unit, CU per unit·s while active, while idle)
        ("vCPU", usage.vcpu, "vCPU", rates.vcpu_active_s, rates.vcpu_idle_s),
        ("memory", usage.memory_gb, "GB", rates.memory_gb_s, rates.memory_gb_s),
        ("disk", usage.disk_gb, "GB", rates.disk_gb_s, rates.disk_gb_s),
        (f"GPU ({usage.gpu_family})", usage.gpu_gb, "GB", gpu.active_gb_s, gpu.idle_gb_s),
    ]
    built: list[BillLine] = []
    for name, size, unit, active_rate, idle_rate in resources:
        for what, s in periods:
            rate = active_rate if what == "active" else idle_rate
            if size > 0 and s > 0 and rate > 0 or (name.startswith("GPU") and what == "active"):
                built.append(BillLine(f"{name} {what}", size * s * rate, "CU", rate,
                                      f"CU/{unit}·s", seconds=s, size=size, size_unit=unit))
    built.append(BillLine("invocations", usage.invocations / 10_000.0
                          * rates.per10k_invocations, "CU", rates.per10k_invocations,
                          "CU", calls=usage.invocations))
    cu_day = sum(ln.amount for ln in built)
    tiers = _tiered(cu_day * MONTH_DAYS, table)
    total = sum(t[2] for t in tiers) / MONTH_DAYS
    return Bill(table.name, table.regime, table.currency, tuple(built), total,
                cu_per_day=cu_day, tiers=tuple(tiers))


def daily_cost(table: GbSecondTable | CuTable, usage: DailyUsage) -> dict[str, float]:
    """The day's FC bill in `table`'s currency, with its parts (``total`` first): `bill`'s."""
    return bill(table, usage).parts()
