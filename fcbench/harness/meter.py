"""Per-instance metering: active seconds (≥1 request in flight, overlaps once), idle seconds, GB·s.

Key names: `Usage`. Pure bookkeeping driven with explicit `now` values, so the harness (monotonic
clock) and the simulator (event clock) meter the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Usage"]


@dataclass
class Usage:
    """Time accounting for one instance from ready to stop.

    Args:
        gpu_memory_mb: the GPU memory spec of the instance (0 for CPU functions).
        memory_mb: the instance memory spec, for memory GB·s (0 when unknown).
    """

    gpu_memory_mb: int = 0
    memory_mb: int = 0
    started: float | None = None
    stopped: float | None = None
    _active: float = 0.0
    # a flag and a plain float rather than an optional float: the busy/idle transitions run
    # once per request in the simulator, and a compiled optional float is a boxed object
    _busy: bool = False
    _busy_since: float = 0.0

    def start(self, now: float) -> None:
        """The instance became ready; billing time starts."""
        self.started = now

    def busy(self, now: float) -> None:
        """The first request went in flight (0 → 1)."""
        if not self._busy:
            self._busy = True
            self._busy_since = now

    def idle(self, now: float) -> None:
        """The last request finished (1 → 0)."""
        if self._busy:
            self._active += now - self._busy_since
            self._busy = False

    def stop(self, now: float) -> None:
        """The instance went away."""
        self.idle(now)
        if self.started is not None and self.stopped is None:
            self.stopped = now

    def active_s(self, now: float) -> float:
        """Seconds with at least one request in flight, up to `now`."""
        extra = now - self._busy_since if self._busy else 0.0
        return self._active + extra

    def alive_s(self, now: float) -> float:
        """Seconds from ready to stop (or to `now` while running)."""
        if self.started is None:
            return 0.0
        end = self.stopped if self.stopped is not None else now
        return max(0.0, end - self.started)

    def idle_s(self, now: float) -> float:
        """Seconds alive with nothing in flight."""
        return max(0.0, self.alive_s(now) - self.active_s(now))

    def gpu_gb_s(self, now: float, *, active_only: bool = True) -> float:
        """GPU memory spec (GB) × active (or alive) seconds, the unit FC bills GPU functions in."""
        seconds = self.active_s(now) if active_only else self.alive_s(now)
        return self.gpu_memory_mb / 1024.0 * seconds

    def as_dict(self, now: float) -> dict[str, float]:
        """Figures for `instances.csv` and the live instances route."""
        return {
            "active_s": round(self.active_s(now), 6),
            "idle_s": round(self.idle_s(now), 6),
            "alive_s": round(self.alive_s(now), 6),
            "gpu_gb_s": round(self.gpu_gb_s(now), 6),
            "gpu_gb_s_alive": round(self.gpu_gb_s(now, active_only=False), 6),
        }
