"""Durations and the sanity bounds of a workload's numbers.

Key names: `parse_duration` (``90``, ``"90s"``, ``"5m"``, ``"1h30m"`` -> seconds), `Duration`
and `Rate` (pydantic field types), `MAX_RATE`, `MAX_DURATION_S`, `MAX_USERS`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

__all__ = ["Count", "Duration", "Factor", "MAX_DURATION_S", "MAX_RATE", "MAX_USERS", "Rate",
           "not_bool", "parse_duration"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?", re.I)
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as ``"90s"``, ``"5m"``, ``"1h"``, ``"1h30m"``.

    Raises:
        ValueError: anything else (the message shows the accepted forms).
    """
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string such as 90s, 5m or 1h")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    pos, total, parts = 0, 0.0, 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if not match or (match.group(2) is None and (parts or match.end() < len(text))):
            raise ValueError(f"cannot read {text!r} as a duration; write seconds (90) or a number "
                             "with a unit: 90s, 5m, 1h, 1h30m")
        total += float(match.group(1)) * _UNIT_S[(match.group(2) or "s").lower()]
        parts += 1
        pos = match.end()
        while pos < len(text) and text[pos] == " ":
            pos += 1
    if not parts:
        raise ValueError("a duration is a number of seconds or a string such as 90s, 5m or 1h")
    return total


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
