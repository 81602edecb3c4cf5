"""Durations and the sanity bounds of a workload's numbers.

Key names: `parse_duration` (``90``, ``"90s"``, ``"5m"``, ``"1h30m"`` -> seconds; defined in
`fcbench.distributions`), `Duration` and `Rate` (pydantic field types), `MAX_RATE`,
`MAX_DURATION_S`, `MAX_USERS`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from ..distributions import parse_duration  # the one duration parser, re-exported here

__all__ = ["Count", "Duration", "Factor", "MAX_DURATION_S", "MAX_RATE", "MAX_USERS", "Rate",
           "not_bool", "parse_duration"]

#: No workload offers more than this (one Locust process sends ~8k req/s; this is many machines).
MAX_RATE = 100_000.0
#: Nor lasts longer (a year; simulate longer traces in pieces).
MAX_DURATION_S = 366 * 86400.0
MAX_USERS = 100_000


def _sane_rate(value: float) -> float:
    if value > MAX_RATE:
        raise ValueError(f"{value:g} requests per second is more than fcbench can send (at most "
                         f"{MAX_RATE:g}); lower it")
    return value


def _sane_duration(value: float) -> float:
    if value > MAX_DURATION_S:
        raise ValueError(f"{value:g} s is over a year (at most {MAX_DURATION_S:g} s); lower it")
    return value


def not_bool(value: Any) -> Any:
    """Refuse true/false where a number goes (pydantic would read them as 1 and 0)."""
    if isinstance(value, bool):
        raise ValueError("this must be a number, not true or false")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_sane_duration)]
Rate = Annotated[float, BeforeValidator(not_bool), AfterValidator(_sane_rate)]
#: A number of something (users, a compression factor, a minute): never a boolean.
Count = Annotated[int, BeforeValidator(not_bool)]
Factor = Annotated[float, BeforeValidator(not_bool)]
