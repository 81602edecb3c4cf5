"""Small network helpers shared by the runtimes, the load runner, tests and benchmarks.

Key names: `free_port`, `is_loopback`.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Collection
from pathlib import Path

__all__ = ["free_port", "is_loopback"]


def free_port(host: str = "127.0.0.1", *, avoid: Collection[int] = ()) -> int:
    """A TCP port on `host` that nothing listens on now (and not in `avoid`), for a server
    that another process will bind.

    It is drawn below the kernel's ephemeral range: a port there is never handed to an
    outgoing connection, so the load's own client sockets cannot take it between this check
    and the server's bind (ports from bind(0) can, under load: "Address already in use").

    Raises:
        OSError: none found in 50 tries.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    low, _high = _ephemeral_range()
    first = max(_FIRST_UNPRIVILEGED, low - _BELOW_EPHEMERAL)
    for _ in range(50):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            port = random.randrange(first, low) if low - first >= 100 else 0
            try:
                s.bind((host, port))
            except OSError:
                continue  # taken: draw again
            port = int(s.getsockname()[1])
        if port not in avoid:
            return port
    raise OSError(f"no free TCP port on {host} after 50 tries")


_FIRST_UNPRIVILEGED = 1024
#: how far below the ephemeral range servers' ports are drawn from
_BELOW_EPHEMERAL = 12000


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux; the IANA range else)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 49152, 65535


def is_loopback(host: str | None) -> bool:
    """Whether `host` names this machine's loopback (where a harness would listen)."""
    host = (host or "").strip("[]").lower()
    return host.startswith("127.") or host in ("localhost", "::1")
