"""The apply lock: one apply per cluster, holder named, stale locks broken only explicitly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from reconciler.apply.locks.file import ApplyLock, lock_path, read_lock, stale_reason
from reconciler.common.errors import LockHeldError


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


def _race_for_the_lock(state: Path, contenders: int) -> tuple[list[ApplyLock], list[str]]:
    """``contenders`` threads call acquire at the same instant; (winners, refusals)."""
    barrier = threading.Barrier(contenders)
    won: list[ApplyLock] = []
    refused: list[str] = []
    guard = threading.Lock()

    def contend() -> None:
        barrier.wait()
        try:
            lock = ApplyLock.acquire(state, "lab")
        except LockHeldError as exc:
            with guard:
                refused.append(str(exc))
        else:
            with guard:
                won.append(lock)

    threads = [threading.Thread(target=contend) for _ in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return won, refused


def test_racing_applies_never_see_a_half_written_lock(tmp_path: Path) -> None:
    """Many applies starting at the same instant: one wins, every other names it as live.

    Before the lock was created with its content in place, a loser could read the
    winner's file between create and write and call it "stale, unreadable".
    """
    contenders = 8
    for round_no in range(40):
        state = tmp_path / f"round{round_no}"
        won, refused = _race_for_the_lock(state, contenders)
        assert len(won) == 1, refused
        assert len(refused) == contenders - 1
        assert all("locked by another apply" in message for message in refused), refused
        won[0].release()
        assert sorted(p.name for p in state.iterdir()) == [], "temporary files left behind"
