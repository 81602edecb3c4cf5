"""Durations and distributions of durations, read from text: the one parser of each.

Key names: `parse_duration` (``90``, ``"90s"``, ``"5m"``, ``"1h30m"`` -> seconds),
`read_distribution` (``"exp:50"`` -> a `Distribution`), `parse_distribution` (-> a sampler of
milliseconds). A distribution is ``50``, ``const:50``, ``exp:50`` (mean), ``uniform:20:80``,
``normal:50:5`` or ``lognormal:50:20`` (the mean and standard deviation of the draws themselves,
not of their logarithm); each number may carry a unit (``normal:6s:1s``, ``exp:500ms``), and a
bare one is in the caller's unit: milliseconds for the sleep model's ``FCBENCH_*_MS`` and
``--service-ms``, seconds in a function spec (where every duration is seconds). With
``unit="count"`` the same forms are counts (a workload's token lengths): numbers without a unit.
A leaf module: it imports nothing from fcbench, so the in-instance server, the spec, the
simulator and the request generator all read the one syntax.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Distribution", "parse_distribution", "parse_duration", "read_distribution"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?", re.I)
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

Unit = Literal["ms", "s", "count"]


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


@dataclass(frozen=True)
class Distribution:
    """A distribution of durations: its kind and its parameters in milliseconds (``const``: the
    value; ``exp``: the mean; ``uniform``: low, high; ``normal`` and ``lognormal``: mean,
    standard deviation). Read with ``unit="count"``, the parameters are counts (see `args`)."""

    kind: Literal["const", "exp", "uniform", "normal", "lognormal"]
    args_ms: tuple[float, ...]

    @property
    def args(self) -> tuple[float, ...]:
        """The parameters in the unit they were read in: milliseconds, or counts."""
        return self.args_ms

    @property
    def mean_ms(self) -> float:
        """The mean (of the unclamped distribution: a normal's draws below 0 are 0)."""
        if self.kind == "uniform":
            return (self.args_ms[0] + self.args_ms[1]) / 2.0
        return self.args_ms[0]

    def sampler(self, rng: random.Random) -> Callable[[], float]:
        """Draws of milliseconds from `rng` (never negative for exp and normal)."""
        a = self.args_ms
        if self.kind == "const":
            value = a[0]
            return lambda: value
        if self.kind == "exp":
            return lambda: rng.expovariate(1.0 / a[0]) if a[0] > 0 else 0.0
        if self.kind == "uniform":
            return lambda: rng.uniform(a[0], a[1])
        if self.kind == "lognormal":
            if a[0] <= 0:
                return lambda: 0.0
            # mean m and sd s of the draws -> mu and sigma of their logarithm
            sigma = math.sqrt(math.log1p((a[1] / a[0]) ** 2))
            mu = math.log(a[0]) - sigma * sigma / 2.0
            return lambda: rng.lognormvariate(mu, sigma)
        return lambda: max(0.0, rng.gauss(a[0], a[1]))

    def draw(self, rng: random.Random) -> float:
        """One draw from `rng` (see `sampler`; for many draws from one rng, use that)."""
        return self.sampler(rng)()


def _forms(unit: Unit) -> str:
    if unit == "count":
        return "128, const:128, uniform:64:192, normal:128:32, exp:128 or lognormal:128:64 (counts)"
    if unit == "s":
        return "4s, exp:4s, uniform:2s:6s or normal:6s:1s (a bare number is seconds)"
    return "50, exp:50, uniform:20:80 or normal:50:5 (milliseconds)"


def _number_ms(part: str, unit: Unit) -> float:
    part = part.strip()
    if unit == "count":
        return float(part)  # a unit in a count is not a number: ValueError
    if part and part[-1].isalpha():  # a unit: the duration parser's
        return parse_duration(part) * 1000.0
    return float(part) * (1000.0 if unit == "s" else 1.0)


_ARITY = {"const": 1, "constant": 1, "exp": 1, "exponential": 1, "uniform": 2, "normal": 2,
          "lognormal": 2}
_KIND = {"constant": "const", "exponential": "exp"}


def read_distribution(text: Any, *, unit: Unit = "ms") -> Distribution:
    """The distribution ``text`` names (see the module's docstring); bare numbers are `unit`
    (``"count"``: every number is bare).

    Raises:
        ValueError: text that is not one (the message shows the accepted forms).
    """
    if isinstance(text, bool):  # YAML's yes/no: not a number (callers catch ValueError)
        raise ValueError(f"cannot read {text!r} as a "  # noqa: TRY004
                         f"distribution; use {_forms(unit)}")
    parts = str(text).strip().split(":")
    try:
        if len(parts) == 1:
            return Distribution("const", (_number_ms(parts[0], unit),))
        kind, args = parts[0].strip().lower(), tuple(_number_ms(p, unit) for p in parts[1:])
    except ValueError:
        raise ValueError(f"cannot read {text!r} as a distribution; use {_forms(unit)}") from None
    if _ARITY.get(kind) != len(args):
        raise ValueError(f"unknown distribution {text!r}; use {_forms(unit)}")
    return Distribution(_KIND.get(kind, kind), args)  # type: ignore[arg-type]


def parse_distribution(text: Any, *, rng: random.Random,
                       unit: Unit = "ms") -> Callable[[], float]:
    """Turn ``"exp:50"``-style text into a sampler of milliseconds drawing from `rng`."""
    return read_distribution(text, unit=unit).sampler(rng)
