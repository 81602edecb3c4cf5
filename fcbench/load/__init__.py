"""Load generation: arrival plans (pure models, `plans.py`), Azure-format traces (`trace.py`),
workloads (`workload.py`, read by `loader.py`), and the Locust side (locustfile, runner), which
only ever runs in its own subprocess.

Importing this package imports neither Locust nor gevent.
"""

from __future__ import annotations

from .plans import (
    PLAN_KINDS,
    PLAN_MODELS,
    BurstPlan,
    ClosedPlan,
    ConstantPlan,
    DiurnalPlan,
    Plan,
    PoissonPlan,
    TracePlan,
    UniformPlan,
)

__all__ = [
    "BurstPlan",
    "ClosedPlan",
    "ConstantPlan",
    "DiurnalPlan",
    "PLAN_KINDS",
    "PLAN_MODELS",
    "Plan",
    "PoissonPlan",
    "TracePlan",
    "UniformPlan",
]
