"""The Docker engine boundary: connecting to the daemon and turning docker SDK errors into ours.

Key names: `connect`, `translated`, `START_DOCKER_HINT`. Every module that talks to Docker goes
through here, so nothing above it sees a ``docker.errors`` or ``requests`` exception.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..errors import DockerUnavailable, RuntimeBackendError

if TYPE_CHECKING:
    import docker

__all__ = ["START_DOCKER_HINT", "connect", "daemon_url", "is_connection_error", "translated"]

#: What to tell a user whose daemon does not answer.
START_DOCKER_HINT = (
    "start it with `sudo systemctl start docker`, or run "
    "`sudo dockerd --iptables=false --bridge=none &` (or `sudo bash scripts/ci-services.sh`), "
    "or point DOCKER_HOST at a daemon that runs")

#: Connections kept per client: each running container holds one for its `wait()`.
_POOL_SIZE = 128


def daemon_url() -> str:
    """Where the SDK looks for the daemon (``DOCKER_HOST`` or the default socket)."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def is_connection_error(exc: BaseException) -> bool:
    """True when `exc` means the daemon cannot be reached (not that it refused a request)."""
    import requests
    from docker import errors

    if isinstance(exc, (requests.exceptions.ConnectionError, ConnectionError, FileNotFoundError)):
        return True
    if isinstance(exc, errors.DockerException) and not isinstance(exc, errors.APIError):
        text = str(exc)
        return ("Connection" in text or "No such file" in text or "connect" in text
                or "Error while fetching server API version" in text)
    return False


def unavailable(exc: BaseException) -> DockerUnavailable:
    """The `DockerUnavailable` error for a daemon that cannot be reached."""
    return DockerUnavailable(
        f"no Docker daemon answers at {daemon_url()} ({_short(exc)}); {START_DOCKER_HINT}.")


def connect(timeout: float = 60.0) -> docker.DockerClient:
    """A client for the local daemon, checked with a ping (blocking: call it in a thread).

    Raises:
        DockerUnavailable: the daemon does not answer, with how to start it.
    """
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - docker is a dependency
        raise RuntimeBackendError(
            "the docker runtime needs the docker SDK; run `pip install docker`") from exc
    try:
        client = docker.DockerClient(base_url=daemon_url(), version="auto", timeout=int(timeout),
                                     max_pool_size=_POOL_SIZE)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - anything here means "no usable daemon"
        raise unavailable(exc) from exc
    return client


@contextlib.contextmanager
def translated(action: str) -> Iterator[None]:
    """Run a block of SDK calls; re-raise docker/requests errors as fcbench errors.

    `action` completes the sentence "Docker failed to ..." in the message.
    """
    try:
        yield
    except Exception as exc:
        if _is_ours(exc):
            raise
        if is_connection_error(exc):
            raise unavailable(exc) from exc
        raise RuntimeBackendError(f"Docker failed to {action}: {_short(exc)}") from exc


def _is_ours(exc: BaseException) -> bool:
    from ..errors import FcbenchError

    return isinstance(exc, FcbenchError)


def _short(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc).strip()
    return text if len(text) <= 400 else text[:400] + "..."
