"""The function settings a sweep or a what-if can vary, defined once.

Key names: `Setting` (one of them: its FC field name, its ``--vary`` name, where it lives in a
function spec, its type), `SETTINGS` (by FC field name: what ``cost --what-if`` and ``simulate
--sweep`` take), `by_vary` (by ``coldstart sweep --vary`` name), `SWEEP_SETTINGS` (those a
sweep can step through, besides the load). `sim.whatif`, `coldstart.predict` and
`coldstart.sweep` read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["SETTINGS", "SWEEP_SETTINGS", "Setting", "by_vary"]


@dataclass(frozen=True)
class Setting:
    """A setting of one function: `key` as FC names it, `vary` as ``--vary`` names it, `path`
    to it in a function spec document, `attr` to it on a `FunctionSpec`, and its type."""

    key: str
    vary: str
    path: tuple[str, ...]
    attr: tuple[str, ...]
    cast: type[int] | type[float]
    #: whether 0 is a level (no provisioned instance is; an idle timeout of 0 is not)
    zero_ok: bool = False

    @property
    def whole(self) -> bool:
        """Its values are whole numbers (instances, requests at once)."""
        return self.cast is int

    def get(self, spec: Any) -> Any:
        """The setting's value on a `FunctionSpec` (its default when the spec names none)."""
        value = spec
        for name in self.attr:
            value = getattr(value, name)
        return value

    def put(self, doc: dict[str, Any], value: float) -> None:
        """Set it to `value` (as its type) in a function spec document, in place; the
        sections on the way are made when missing."""
        node = doc
        for part in self.path[:-1]:
            node = node.setdefault(part, {})
        node[self.path[-1]] = self.cast(value)


#: By FC field name, in the order the CLI's help lists them.
SETTINGS: dict[str, Setting] = {s.key: s for s in (
    Setting("minInstances", "min-instances", ("harness", "minInstances"),
            ("harness", "min_instances"), int, zero_ok=True),
    Setting("idleTimeout", "idle-timeout", ("harness", "idleTimeout"),
            ("harness", "idle_timeout"), float),
    Setting("instanceConcurrency", "instance-concurrency", ("instanceConcurrency",),
            ("instance_concurrency",), int),
    Setting("maxInstances", "max-instances", ("harness", "maxInstances"),
            ("harness", "max_instances"), int),
)}
#: The settings `coldstart sweep --vary` / `simulate --sweep` step through, in the order their
#: help lists them, after the load (``concurrency``, not a function setting).
SWEEP_SETTINGS: tuple[Setting, ...] = tuple(
    SETTINGS[k] for k in ("instanceConcurrency", "idleTimeout", "minInstances"))


def by_vary(name: str) -> Setting | None:
    """The setting ``--vary NAME`` steps through; None for ``concurrency`` (the load)."""
    return next((s for s in SWEEP_SETTINGS if s.vary == name), None)
