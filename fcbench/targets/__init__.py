"""Where requests go: one `Target` interface for the local harness, any URL and FC.

Key names: `Target`, `TargetState`, `target_class` (name -> class, imported lazily),
`TARGETS`. ``fc`` needs ``pip install fcbench[fc]``; the others need nothing extra.
"""

from __future__ import annotations

from importlib import import_module

from .base import FakeTarget, Target, TargetState

__all__ = ["TARGETS", "FakeTarget", "Target", "TargetState", "target_class"]

#: Registry: target kind -> "module:Class", imported on first use.
TARGETS = {
    "url": "fcbench.targets.url:UrlTarget",
    "local": "fcbench.targets.local:LocalTarget",
    "fc": "fcbench.targets.fc:FcTarget",
}


def target_class(name: str) -> type[Target]:
    """The class behind a target kind.

    Raises:
        ValueError: an unknown kind (the message lists the known ones).
        ImportError: the kind's optional dependency is missing (the message names the extra).
    """
    try:
        module, _, cls = TARGETS[name].partition(":")
    except KeyError:
        raise ValueError(f"unknown target kind {name!r}; use one of {', '.join(TARGETS)}") \
            from None
    found: type[Target] = getattr(import_module(module), cls)
    if name == "fc":
        from .fc import _sdk
        _sdk()  # fail here, naming the extra, rather than at the first request
    return found
