"""Find and stop what a lab left running (after a crash): the supervisor and every postmaster.

Works from pid files only: DIR/supervisor.pid and each data directory's postmaster.pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from cmslab import pgproc
from cmslab.config import LabPaths


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive for our purpose
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def supervisor_pid(paths: LabPaths) -> int | None:
    try:
        pid = int(paths.supervisor_pid.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if b"cmslab.supervisor" not in cmdline or not _alive(pid):
        return None
    return pid


def data_dirs(paths: LabPaths) -> list[Path]:
    nodes = paths.root / "nodes"
    if not nodes.is_dir():
        return []
    out = []
    for d in sorted(nodes.iterdir()):
        out += [d / "pg-local", d / "pg-cluster"]
    return out


def running_postmasters(paths: LabPaths) -> dict[Path, int]:
    out = {}
    for d in data_dirs(paths):
        pid = pgproc.postmaster_pid(d)
        if pid is not None:
            out[d] = pid
    return out


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    left = [p for p in pids if _alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if _alive(p)]
    return left


def stop_leftover_postgres(paths: LabPaths, timeout: float = 20.0) -> list[int]:
    """Fast-stop every postmaster of this lab; escalate to immediate, then SIGKILL."""
    pids = list(running_postmasters(paths).values())
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        pids = wait_gone(pids, timeout if sig == signal.SIGINT else 5)
        if not pids:
            break
    return pids


def stop_supervisor(paths: LabPaths, timeout: float = 60.0) -> None:
    pid = supervisor_pid(paths)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    if wait_gone([pid], timeout):
        os.kill(pid, signal.SIGKILL)
        wait_gone([pid], 5)


def stop_everything(paths: LabPaths) -> None:
    stop_supervisor(paths)
    stop_leftover_postgres(paths)
    paths.supervisor_pid.unlink(missing_ok=True)
    paths.control_sock.unlink(missing_ok=True)
