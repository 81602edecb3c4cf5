"""Discrete-event simulation of the harness's scheduling rules (the very same pure module)."""

from .engine import SimRequest, SimResult, simulate

__all__ = ["SimRequest", "SimResult", "simulate"]
