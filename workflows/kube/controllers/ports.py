"""Free loopback ports, for what the controllers serve or connect: no Services or pod IPs
here, so each TFJob replica and each model server gets its own port on 127.0.0.1."""

from __future__ import annotations

import socket


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (all held open at once while choosing)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
