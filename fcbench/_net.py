"""Small network helpers shared by the runtimes, the load runner, tests and benchmarks.

Key names: `free_port`, `is_loopback`.
"""

from __future__ import annotations

import socket
from collections.abc import Collection

__all__ = ["free_port", "is_loopback"]


def free_port(host: str = "127.0.0.1", *, avoid: Collection[int] = ()) -> int:
    """A TCP port on `host` that nothing listens on now (and not in `avoid`).

    Raises:
        OSError: none found in 50 tries.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in avoid:
            return port
    raise OSError(f"no free TCP port on {host} after 50 tries")


def is_loopback(host: str | None) -> bool:
    """Whether `host` names this machine's loopback (where a harness would listen)."""
    host = (host or "").strip("[]").lower()
    return host.startswith("127.") or host in ("localhost", "::1")
