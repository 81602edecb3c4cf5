"""Small network helpers shared by the runtimes, the load runner, tests and benchmarks.

Key names: `free_port`.
"""

from __future__ import annotations

import socket
from collections.abc import Collection

__all__ = ["free_port"]


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
