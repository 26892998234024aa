"""The apply lock: one apply per cluster, holder named, stale locks broken only explicitly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from reconciler.apply_lock import ApplyLock, lock_path, read_lock, stale_reason
from reconciler.errors import LockHeldError


def test_second_apply_refused_naming_the_holder(tmp_path: Path) -> None:
    with ApplyLock.acquire(tmp_path, "lab") as held:
        with pytest.raises(LockHeldError) as err:
            ApplyLock.acquire(tmp_path, "lab")
        message = str(err.value)
        assert held.info.holder in message
        assert f"pid {os.getpid()}" in message
        assert held.info.started_at in message
    assert not lock_path(tmp_path, "lab").exists()


def test_lock_file_content(tmp_path: Path) -> None:
    held = ApplyLock.acquire(tmp_path, "lab", ttl=60)
    info = read_lock(lock_path(tmp_path, "lab"))
    assert info == held.info
    assert info is not None and info.pid == os.getpid() and "@" in info.holder
    assert stale_reason(info) is None
    held.release()


def test_other_clusters_are_independent(tmp_path: Path) -> None:
    with ApplyLock.acquire(tmp_path, "a"), ApplyLock.acquire(tmp_path, "b"):
        assert lock_path(tmp_path, "a").exists() and lock_path(tmp_path, "b").exists()


def test_break_lock_refuses_a_live_lock(tmp_path: Path) -> None:
    with (
        ApplyLock.acquire(tmp_path, "lab"),
        pytest.raises(LockHeldError, match="only breaks a stale lock"),
    ):
        ApplyLock.acquire(tmp_path, "lab", break_lock=True)


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stdout)


def test_lock_of_a_killed_process_is_stale_and_needs_break_lock(tmp_path: Path) -> None:
    held = ApplyLock.acquire(tmp_path, "lab")
    path = lock_path(tmp_path, "lab")
    dead = replace(held.info, pid=_dead_pid())
    path.write_text(json.dumps(asdict(dead)))
    with pytest.raises(LockHeldError, match=r"stale lock.*--break-lock"):
        ApplyLock.acquire(tmp_path, "lab")
    fresh = ApplyLock.acquire(tmp_path, "lab", break_lock=True)
    assert read_lock(path) == fresh.info
    assert list(tmp_path.glob("lab.lock.broken-*"))
    fresh.release()


def test_expired_lock_is_stale(tmp_path: Path) -> None:
    held = ApplyLock.acquire(tmp_path, "lab", ttl=60)
    expired = replace(held.info, host="elsewhere", expires_at="2000-01-01T00:00:00+00:00")
    assert stale_reason(expired) == "it expired at 2000-01-01T00:00:00+00:00"
    assert stale_reason(replace(held.info, host="elsewhere", pid=_dead_pid())) is None


def test_refresh_extends_expiry_and_detects_a_broken_lock(tmp_path: Path) -> None:
    held = ApplyLock.acquire(tmp_path, "lab", ttl=5)
    before = held.info.expires_at
    held.ttl = 3600
    held.refresh()
    assert held.info.expires_at > before
    assert read_lock(held.path) == held.info
    held.path.unlink()
    other = ApplyLock.acquire(tmp_path, "lab")
    with pytest.raises(LockHeldError, match="lost the lock"):
        held.refresh()
    held.release()  # not ours any more: must not remove the other's lock
    assert read_lock(other.path) == other.info
