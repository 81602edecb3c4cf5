"""Lifecycle and request events: the extension point that metering, telemetry and reports hook into.

Key names: `Events`, `EventHook`. An `Events` object belongs to one harness or run (never a
module-level instance). A listener that raises is logged and marks the owner failed; the run goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["EventHook", "Events"]

log = logging.getLogger(__name__)


class EventHook:
    """A list of listeners fired with keyword arguments only."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._listeners: list[Callable[..., Any]] = []
        self.failures = 0

    def add_listener(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Subscribe `fn`; returns it, so this works as a decorator."""
        self._listeners.append(fn)
        return fn

    def remove_listener(self, fn: Callable[..., Any]) -> None:
        self._listeners.remove(fn)

    def fire(self, **kwargs: Any) -> None:
        for fn in list(self._listeners):
            try:
                fn(**kwargs)
            except Exception:  # noqa: BLE001 - a plugin must not take the run down
                self.failures += 1
                log.exception("listener %r of event %r raised", fn, self.name)


class Events:
    """The hooks of one harness or run. Each attribute documents the keywords it is fired with;
    the harness's instance events also carry `version_id` (``LATEST`` or a published version)."""

    instance_starting: EventHook
    """An instance start was decided. Keywords: `ts`, `function`, `instance_id`, `gpu_index`."""

    instance_ready: EventHook
    """An instance passed readiness. Keywords: `ts`, `function`, `instance_id`, `phases` (ms)."""

    instance_failed: EventHook
    """An instance failed to start or died. Keywords: `ts`, `function`, `instance_id`, `error`,
    `log_path`."""

    instance_reclaimed: EventHook
    """An instance was stopped. Keywords: `ts`, `function`, `instance_id`, `reason`, `usage`."""

    request: EventHook
    """A request completed. Keywords: `ts`, `function`, `request_id`, `instance_id`, `status`,
    `cold`, `latency_ms`, `queue_ms`, `error`."""

    run_start: EventHook
    """A run began (`fcbench run`). Keywords: `ts`, `name`, `run_dir`."""

    run_stop: EventHook
    """A run ended and its results are written. Keywords: `ts`, `name`, `run_dir`, `summary`,
    `interrupted`."""

    def __init__(self) -> None:
        for name in self.__annotations__:
            setattr(self, name, EventHook(name))

    @property
    def failed(self) -> bool:
        """True once any listener raised."""
        return any(getattr(self, n).failures for n in self.__annotations__)
