"""Is a TCP port free on an address? Used by `up` and by tests and benchmarks that pick ports."""

from __future__ import annotations

import socket


def port_is_free(address: str, port: int) -> bool:
    """True when ``address:port`` can be bound right now (SO_REUSEADDR, like the lab's servers)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True
