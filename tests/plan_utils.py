"""Plans built the way a workload's ``plan:`` builds them (validated, seed filled in, a trace's file
read), with the short signatures the plan tests use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fcbench.load import plans


def _plan(kind: str, seed: int = 0, **fields: Any) -> plans.Plan:
    return plans.PLAN_MODELS[kind].model_validate({"kind": kind, **fields}).bind(seed, Path("."))


def poisson(rate: float, seed: int = 0) -> plans.Plan:
    return _plan("poisson", seed, rate=rate)


def constant(rate: float) -> plans.Plan:
    return _plan("constant", rate=rate)


def uniform(rate: float, seed: int = 0) -> plans.Plan:
    return _plan("uniform", seed, rate=rate)


def burst(rate_on: float, on_s: float, off_s: float, rate_off: float = 0.0, seed: int = 0,
          process: str = "poisson") -> plans.Plan:
    return _plan("burst", seed, rate_on=rate_on, on_s=on_s, off_s=off_s, rate_off=rate_off,
                 process=process)


def diurnal(rates: Any, period_s: float, seed: int = 0) -> plans.Plan:
    return _plan("diurnal", seed, rates=rates, period=period_s)


def trace(path: str | Path, function: str = "top", compression: float = 1.0, seed: int = 0,
          start_minute: int = 0) -> plans.Plan:
    return _plan("trace", seed, file=str(path), function=function, compression=compression,
                 start_minute=start_minute)


def closed(users: int, think: str = "constant", think_s: float = 1.0,
           seed: int = 0) -> plans.Plan:
    return _plan("closed", seed, users=users, think=think, think_s=think_s)
