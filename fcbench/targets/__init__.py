"""Where requests go: one `Target` interface for the local harness, any URL and FC.

Key names: `Target`, `TargetState`, `target_class` (name -> class, imported lazily),
`open_target` (a url or fc target config, `targets.config`, -> an open `Target`: the one place
configs become targets), `TARGETS`. ``fc`` needs ``pip install fcbench[fc]``; the others need
nothing extra.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .base import FakeTarget, Target, TargetState

__all__ = ["TARGETS", "FakeTarget", "Target", "TargetState", "open_target", "target_class"]

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


def open_target(config: Any, *, timeout: float, async_task_prefix: str | None = None
                ) -> Target:
    """The `Target` a url or fc target config (`fcbench.targets.config.target_from_url`, a
    workload's ``target:``, or the config the runner hands each Locust process) names.
    `async_task_prefix`: send every request as an FC async task named prefix + request id.

    Raises:
        UsageError: the FC SDK is missing (names the pip extra), or no credentials for FC;
            async tasks asked of an fc target (not supported yet).
    """
    from ..errors import UsageError

    if config.kind == "fc" and async_task_prefix is not None:
        raise UsageError("asynchronous invocation (request.invocationType: Async) goes to the "
                         "harness for now: use a local or url target")
    if config.kind == "fc":
        try:
            cls = target_class("fc")
        except ImportError as exc:
            raise UsageError(str(exc)) from None
        return cls(config.function, endpoint=config.endpoint,  # type: ignore[call-arg]
                   region=config.region, qualifier=config.qualifier, timeout=timeout)
    from .url import UrlTarget

    return UrlTarget(config.url, function=config.function, path=config.path, timeout=timeout,
                     async_task_prefix=async_task_prefix)
