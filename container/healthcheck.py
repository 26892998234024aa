"""The image's HEALTHCHECK: GET /healthz where `reconcile watch` really listens; exit 0 on 200.

It does not guess the port from configuration: it looks up the TCP sockets in LISTEN state
that the container's `reconcile` processes hold (/proc/PID/fd -> socket:[inode], matched in
/proc/PID/net/tcp and tcp6) and asks each for /healthz. So it follows `--metrics-port N`,
`--metrics-port 0` (a free port: nothing but the socket knows which), `--metrics-address`
and $RECONCILE_METRICS_PORT alike. Only when no such process can be read (another user,
/proc hidden) does it fall back to $RECONCILE_METRICS_ADDRESS:$RECONCILE_METRICS_PORT.

Standard library only; runs in the container's PID and network namespaces, as the image's
user (the same uid as the watch, so its /proc/PID/fd is readable).
"""

from __future__ import annotations

import ipaddress
import os
import sys
import urllib.request
from pathlib import Path

LISTEN = "0A"  # TCP state in /proc/net/tcp
WILDCARD = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def _socket_inodes(pid: str) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    # The kernel prints each 32-bit word in host (little-endian) order.
    host = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(host))


def _listeners(pid: str, inodes: set[str]) -> list[tuple[str, int]]:
    found = []
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == LISTEN and fields[9] in inodes:
                address, port = fields[1].split(":")
                found.append((_address(address), int(port, 16)))
    return found


def metrics_endpoints() -> list[tuple[str, int]]:
    """(address, port) of every listening socket of the `reconcile` processes we can read."""
    endpoints: list[tuple[str, int]] = []
    readable = False
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or proc.name == str(os.getpid()):
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if not any(Path(a.decode(errors="replace")).name == "reconcile" for a in argv):
                continue
            inodes = _socket_inodes(proc.name)
        except OSError:  # gone, or not ours
            continue
        readable = True
        endpoints += _listeners(proc.name, inodes)
    if not readable:
        address = os.environ.get("RECONCILE_METRICS_ADDRESS", "127.0.0.1")
        endpoints.append((address, int(os.environ.get("RECONCILE_METRICS_PORT", "9464"))))
    return endpoints


def healthy(address: str, port: int) -> bool:
    host = WILDCARD.get(address, address)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            ok: bool = response.status == 200
            print(f"{url}: {response.status}")
            return ok
    except OSError as exc:  # URLError and HTTPError (503: a loop is stuck) are OSErrors
        print(f"{url}: {exc}")
        return False


def main() -> int:
    endpoints = metrics_endpoints()
    if not endpoints:
        print("reconcile serves no metrics port (watch without --metrics-port?)")
        return 1
    return 0 if any([healthy(a, p) for a, p in endpoints]) else 1


if __name__ == "__main__":
    sys.exit(main())
