"""Arrival plans as written in YAML: one validated model per plan kind, read from one registry.

Key names: `PLAN_MODELS` (kind -> model: the one list the loader, the errors, the union and the
docs read), `PLAN_KINDS`, `PlanSpec` (the discriminated union). Each model's `build` makes the
`fcbench.load.plans` plan that yields the arrivals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union, get_args

from pydantic import Field, field_validator

from .._model import Model
from . import plans
from .durations import MAX_USERS, Duration, Rate

__all__ = ["PLAN_KINDS", "PLAN_MODELS", "PlanSpec"]


class _PlanBase(Model):
    seed: int | None = Field(None, description="default: the workload's seed")

    def build(self, seed: int, base: Path) -> plans.Plan:
        raise NotImplementedError


class PoissonSpec(_PlanBase):
    """Poisson arrivals at `rate` per second."""

    kind: Literal["poisson"]
    rate: Rate = Field(gt=0, description="requests per second")

    def build(self, seed: int, base: Path) -> plans.Plan:
        return plans.poisson(self.rate, seed=seed)


class ConstantSpec(_PlanBase):
    """Evenly spaced arrivals at `rate` per second."""

    kind: Literal["constant"]
    rate: Rate = Field(gt=0, description="requests per second")

    def build(self, seed: int, base: Path) -> plans.Plan:
        return plans.constant(self.rate)


class UniformSpec(_PlanBase):
    """Inter-arrival times uniform on [0, 2/rate]."""

    kind: Literal["uniform"]
    rate: Rate = Field(gt=0, description="requests per second")

    def build(self, seed: int, base: Path) -> plans.Plan:
        return plans.uniform(self.rate, seed=seed)


class BurstSpec(_PlanBase):
    """`rateOn` for `onS` seconds, `rateOff` for `offS` seconds, repeated."""

    kind: Literal["burst"]
    rate_on: Rate = Field(gt=0, description="requests per second while on")
    on_s: Duration = Field(gt=0)
    off_s: Duration = Field(ge=0)
    rate_off: Rate = Field(0.0, ge=0, description="requests per second while off")
    process: Literal["poisson", "constant"] = "poisson"

    def build(self, seed: int, base: Path) -> plans.Plan:
        return plans.burst(self.rate_on, self.on_s, self.off_s, rate_off=self.rate_off,
                           seed=seed, process=self.process)


class DiurnalSpec(_PlanBase):
    """A piecewise-linear rate curve over `period`, one rate per equal segment, repeated."""

    kind: Literal["diurnal"]
    rates: list[Annotated[Rate, Field(ge=0)]] = Field(min_length=1)
    period: Duration = Field(gt=0)

    @field_validator("rates")
    @classmethod
    def _some_traffic(cls, value: list[float]) -> list[float]:
        if max(value) <= 0:
            raise ValueError("at least one rate must be greater than 0 requests per second")
        return value

    def build(self, seed: int, base: Path) -> plans.Plan:
        return plans.diurnal(self.rates, self.period, seed=seed)


class TraceSpec(_PlanBase):
    """Replay of one function of an Azure Functions 2019 per-minute CSV."""

    kind: Literal["trace"]
    file: str = Field(min_length=1, description="relative to the workload's folder")
    function: str = Field("top", description="HashFunction, index:N or top")
    compression: float = Field(1.0, gt=0, le=1e6, description="60 = one trace minute per second")
    start_minute: int = Field(0, ge=0)

    def build(self, seed: int, base: Path) -> plans.Plan:
        return plans.trace(base / self.file, function=self.function,
                           compression=self.compression, seed=seed,
                           start_minute=self.start_minute)


class ClosedSpec(_PlanBase):
    """`users` users, each sending, awaiting the answer and thinking `thinkS` seconds."""

    kind: Literal["closed"]
    users: int = Field(ge=1, le=MAX_USERS)
    think: Literal["constant", "exponential"] = "constant"
    think_s: Duration = Field(1.0, ge=0)

    def build(self, seed: int, base: Path) -> plans.Plan:
        return plans.closed(self.users, think=self.think, think_s=self.think_s, seed=seed)


#: plan kind -> its validated model (each builds its `fcbench.load.plans` plan): the one list
#: the loader, the errors, the union below and the docs read.
PLAN_MODELS: dict[str, type[_PlanBase]] = {
    get_args(m.model_fields["kind"].annotation)[0]: m
    for m in (PoissonSpec, ConstantSpec, UniformSpec, BurstSpec, DiurnalSpec, TraceSpec,
              ClosedSpec)}
PLAN_KINDS = tuple(PLAN_MODELS)
PlanSpec = Annotated[Union[tuple(PLAN_MODELS.values())], Field(discriminator="kind")]


