"""Load generation: arrival plans (pure, `plans.py`), Azure-format traces (`trace.py`), and the
Locust side (locustfile, runner), which only ever runs in its own subprocess.

Importing this package imports neither Locust nor gevent.
"""

from __future__ import annotations

from .plans import (
    BurstPlan,
    ClosedPlan,
    ConstantPlan,
    DiurnalPlan,
    Plan,
    PoissonPlan,
    TracePlan,
    UniformPlan,
    burst,
    closed,
    constant,
    diurnal,
    poisson,
    trace,
    uniform,
)

__all__ = [
    "BurstPlan",
    "ClosedPlan",
    "ConstantPlan",
    "DiurnalPlan",
    "Plan",
    "PoissonPlan",
    "TracePlan",
    "UniformPlan",
    "burst",
    "closed",
    "constant",
    "diurnal",
    "poisson",
    "trace",
    "uniform",
]
