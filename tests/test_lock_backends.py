"""The lock backends against real servers: file, etcd (Debian's etcd-server) and PostgreSQL 15.

The servers listen on 127.0.41.x only and are stopped by their fixtures' finalizers. Nothing
is skipped: a missing etcd or PostgreSQL fails the test (`.ci/run` installs both).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from fake_transport import FakeCluster, FakeTransport
from scenario_helpers import spec_dict
from servers import running_etcd, running_postgres

from reconciler.apply.audit import AuditLog, Journal, audit_path, journal_path
from reconciler.apply.executor import Executor
from reconciler.apply.locks.acquire import ClusterLock, acquire_lock
from reconciler.apply.locks.etcd import EtcdLock
from reconciler.apply.locks.file import ApplyLock, lock_path, read_lock, stale_reason
from reconciler.apply.locks.postgres import PostgresLock
from reconciler.apply.locks.url import (
    LOCK_ENV,
    LockUrlError,
    parse_duration,
    parse_lock_url,
    redact,
)
from reconciler.apply.options import ExecutorOptions
from reconciler.common.errors import LockHeldError, LockLostError, StaleLockError
from reconciler.plan.planner import plan
from reconciler.plan.simulation import SimNode, World, observe
from reconciler.spec.local_file import LocalFile
from reconciler.spec.model import ClusterSpec

ETCD_HOST = "127.0.41.21"
ETCD_STOPPED_HOST = "127.0.41.24"
PG_HOST = "127.0.41.22"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
TTL = 2.0


# ----------------------------------------------------------------------------- servers
@pytest.fixture(scope="module")
def etcd_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_etcd(tmp_path_factory.mktemp("etcd"), ETCD_HOST) as url:
        yield url


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with running_postgres(PG_HOST) as url:
        yield url


@pytest.fixture(params=["file", "etcd", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return f"file:{tmp_path / 'locks'}"
    return str(request.getfixturevalue("etcd_url" if request.param == "etcd" else "pg_url"))


def _acquire(url: str, tmp_path: Path, **kw: object) -> ClusterLock:
    return acquire_lock(url, state_dir=tmp_path, cluster="lab", ttl=TTL, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------- the same for all three
def test_second_acquire_refused_naming_the_holder_then_release(url: str, tmp_path: Path) -> None:
    held = _acquire(url, tmp_path)
    try:
        with pytest.raises(LockHeldError) as err:
            _acquire(url, tmp_path)
        message = str(err.value)
        info = held.info
        for part in (info.holder, f"pid {info.pid}", f"run {info.run_id}", info.started_at):
            assert part in message, message
        assert "locked by another apply" in message
        assert url.split(":", 1)[0] in message  # the backend is named
    finally:
        held.release()
    again = _acquire(url, tmp_path)
    again.verify()
    again.release()


def test_lock_timeout_waits_for_a_release_and_names_the_holder_when_it_does_not_come(
    url: str, tmp_path: Path
) -> None:
    held = _acquire(url, tmp_path)
    with pytest.raises(LockHeldError, match=r"locked by another apply.*waited 1s") as err:
        _acquire(url, tmp_path, timeout=1.0)
    assert held.info.run_id in str(err.value)
    threading.Timer(1.0, held.release).start()
    started = time.monotonic()
    with _acquire(url, tmp_path, timeout=10.0) as second:
        assert 0.9 <= time.monotonic() - started < 5
        second.verify()


def test_renewal_keeps_live_holders_past_their_ttl(
    etcd_url: str, pg_url: str, tmp_path: Path
) -> None:
    urls = [f"file:{tmp_path}", etcd_url, pg_url]
    held = [_acquire(u, tmp_path) for u in urls]
    try:
        time.sleep(2.5 * TTL)  # no step ran meanwhile: only the background renewal
        for u, lock in zip(urls, held, strict=True):
            lock.verify()
            with pytest.raises(LockHeldError, match="locked by another apply"):
                _acquire(u, tmp_path)
        file_info = read_lock(lock_path(tmp_path, "lab"))
        assert file_info is not None and stale_reason(file_info) is None
    finally:
        for lock in held:
            lock.release()


_HOLDER = """
import sys, time
from pathlib import Path
from reconciler.apply.locks.acquire import acquire_lock
lock = acquire_lock(sys.argv[1], state_dir=Path(sys.argv[2]), cluster="lab", ttl=float(sys.argv[3]))
print("held", lock.info.run_id, flush=True)
time.sleep(600)
"""


def _killed_holder(url: str, tmp_path: Path) -> str:
    """A holder in another process, killed with SIGKILL once it holds the lock: its run id."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, url, str(tmp_path), str(TTL)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line: list[str] = []
        while line[:1] != ["held"]:  # after its log lines
            text = proc.stdout.readline()
            assert text, "the holder exited before it held the lock"
            line = text.split()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
    return line[1]


def test_a_killed_etcd_holder_expires_and_another_takes_over(etcd_url: str, tmp_path: Path) -> None:
    dead_run = _killed_holder(etcd_url, tmp_path)
    killed = time.monotonic()
    with pytest.raises(LockHeldError, match=dead_run):
        _acquire(etcd_url, tmp_path)  # until its lease runs out
    with _acquire(etcd_url, tmp_path, timeout=3 * TTL) as lock:
        takeover = time.monotonic() - killed
        print(f"etcd takeover after SIGKILL: {takeover:.2f}s (lease TTL {TTL:g}s)")
        assert TTL - 0.5 <= takeover <= TTL + 3
        assert lock.token is not None


def test_a_killed_postgres_holder_is_released_with_its_session(pg_url: str, tmp_path: Path) -> None:
    _killed_holder(pg_url, tmp_path)
    with _acquire(pg_url, tmp_path, timeout=3 * TTL) as lock:
        lock.verify()


def test_a_killed_file_holder_needs_break_lock(tmp_path: Path) -> None:
    url = f"file:{tmp_path}"
    dead_run = _killed_holder(url, tmp_path)
    with pytest.raises(StaleLockError, match=rf"stale lock.*{dead_run}.*--break-lock"):
        _acquire(url, tmp_path, timeout=5.0)  # waiting does not help a dead holder: at once
    with _acquire(url, tmp_path, break_lock=True) as lock:
        lock.verify()


# ------------------------------------------------------------------------- lost locks
def test_etcd_verify_raises_once_the_key_is_deleted(etcd_url: str, tmp_path: Path) -> None:
    lock = _acquire(etcd_url, tmp_path)
    assert isinstance(lock, EtcdLock)
    key = base64.b64encode(lock.key.encode()).decode()
    base = "http://" + etcd_url.removeprefix("etcd://").split("/")[0]
    httpx.post(f"{base}/v3/kv/deleterange", content=json.dumps({"key": key})).raise_for_status()
    with pytest.raises(LockLostError, match="its key is gone"):
        lock.verify()
    lock.release()


def test_etcd_fencing_token_grows_with_every_holder(etcd_url: str, tmp_path: Path) -> None:
    with _acquire(etcd_url, tmp_path) as first:
        token = first.token
    with _acquire(etcd_url, tmp_path) as second:
        assert token is not None and second.token is not None and second.token > token


def test_postgres_verify_raises_once_the_backend_is_terminated(pg_url: str, tmp_path: Path) -> None:
    lock = _acquire(pg_url, tmp_path)
    assert isinstance(lock, PostgresLock)
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (lock.backend_pid,))
    with pytest.raises(LockLostError, match="session ended"):
        lock.verify()
    lock.release()
    _acquire(pg_url, tmp_path).release()


def test_file_verify_raises_once_the_lock_file_is_replaced(tmp_path: Path) -> None:
    lock = ApplyLock.acquire(tmp_path, "lab")
    lock.path.unlink()
    other = ApplyLock.acquire(tmp_path, "lab")
    with pytest.raises(LockLostError, match=f"now held by .*run {other.info.run_id}"):
        lock.verify()
    lock.release()  # not ours: the other's stays
    other.verify()
    other.release()


def test_break_lock_has_nothing_to_do_on_etcd_and_postgres(
    etcd_url: str, pg_url: str, tmp_path: Path
) -> None:
    for url in (etcd_url, pg_url):
        with _acquire(url, tmp_path), pytest.raises(LockHeldError, match="nothing to do"):
            _acquire(url, tmp_path, break_lock=True)


# ------------------------------------------------------------------------- URLs
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://h:1/x", "unknown scheme 'redis'"),
        ("etcd:///prefix", "no host"),
        ("etcd://h/prefix", "no port"),
        ("postgresql:///locks", "no host"),
        ("postgresql://h:5432", "no database"),
        ("postgresql://u:pw@cms-1:5432/cluster", "refusing the CMS cluster's own database"),
        ("etcd://h:notaport", "Port could not be cast"),
    ],
)
def test_bad_lock_urls_give_one_clear_message(url: str, message: str) -> None:
    with pytest.raises(LockUrlError, match=message) as err:
        parse_lock_url(url)
    assert "pw" not in str(err.value)
    assert str(err.value).count("\n") == 0


def test_password_is_redacted() -> None:
    assert (
        redact("postgresql://admin:s3cret@db:5432/locks") == "postgresql://admin:***@db:5432/locks"
    )
    assert redact("etcd://root:s3cret@h:2379/p") == "etcd://root:***@h:2379/p"
    assert redact("postgresql://db/locks?password=s3cret&sslmode=require") == (
        "postgresql://db/locks?password=***&sslmode=require"
    )
    assert redact("etcd://h:2379/p") == "etcd://h:2379/p"
    assert parse_lock_url("etcd://root:s3cret@h:2379").shown == "etcd://root:***@h:2379"


def test_password_never_shown_in_a_refusal(pg_url: str, tmp_path: Path) -> None:
    with_password = pg_url.replace("postgres@", "postgres:s3cret@")  # trust auth ignores it
    with _acquire(with_password, tmp_path):
        with pytest.raises(LockHeldError) as err:
            _acquire(with_password, tmp_path)
        assert "s3cret" not in str(err.value) and "postgres:***@" in str(err.value)


def test_flag_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOCK_ENV, "etcd://envhost:2379")
    assert parse_lock_url(None).host == "envhost"
    assert parse_lock_url("file:").scheme == "file"
    monkeypatch.delenv(LOCK_ENV)
    assert parse_lock_url(None).scheme == "file"


def test_durations() -> None:
    assert parse_duration("30s") == 30 and parse_duration("5m") == 300
    assert parse_duration("2") == 2 and parse_duration("1.5h") == 5400
    with pytest.raises(ValueError):
        parse_duration("soon")


# ------------------------------------------------------------------- the executor stops
async def _apply_losing_the_lock(
    lock: ClusterLock, tmp_path: Path, lose: Callable[[], None], message: str
) -> None:
    """Run a fresh build with ``lock``; ``lose()`` after the first step: no step may start."""
    nodes = [{"name": f"n{i}", "address": f"127.0.20.{i}"} for i in (1, 2, 3)]
    spec = ClusterSpec.model_validate(spec_dict(nodes, "n1"))
    files: dict[str, LocalFile] = {}
    for name in ("ca.cer", "server.cer", "server.key", "client.cer", "client.key"):
        local = tmp_path / name
        local.write_bytes(name.encode())
        files[f"certs/{name}"] = LocalFile(
            spec_path=f"certs/{name}",
            local_path=str(local),
            remote_name=name,
            sha256=hashlib.sha256(name.encode()).hexdigest(),
        )
    world = World(
        nodes=tuple(SimNode(key=n["name"], address=n["address"], files=()) for n in nodes)
    )
    cluster = FakeCluster(world)
    lines: list[str] = []
    after_loss: list[str] = []

    def progress(line: str) -> None:
        if lines and any(": done" in seen for seen in lines):
            after_loss.append(line)
        lines.append(line)
        if ": done" in line and len([s for s in lines if ": done" in s]) == 1:
            lose()

    the_plan = plan(spec, observe(world), files)
    assert len(the_plan.steps) > 3
    executor = Executor(
        spec,
        FakeTransport(cluster),
        observed=observe(world),
        audit=AuditLog(audit_path(tmp_path, spec.cluster), cluster=spec.cluster, run_id="r"),
        journal=Journal(journal_path(tmp_path, spec.cluster), spec.cluster, "r"),
        lock=lock,
        options=ExecutorOptions(poll_interval=0.0, settle_seconds=0.0, action_timeout=5.0),
        progress=progress,
    )
    try:
        with pytest.raises(LockLostError, match=message):
            await executor.execute(the_plan)
    finally:
        lock.release()
    started_after = [line for line in after_loss if line.endswith(" ...")]
    assert started_after == [], after_loss  # no step started once the lock was gone


async def test_executor_stops_before_the_next_step_once_the_etcd_lock_is_lost(
    etcd_url: str, tmp_path: Path
) -> None:
    lock = _acquire(etcd_url, tmp_path)
    assert isinstance(lock, EtcdLock)
    base = "http://" + etcd_url.removeprefix("etcd://").split("/")[0]
    key = base64.b64encode(lock.key.encode()).decode()

    def delete_key() -> None:
        httpx.post(f"{base}/v3/kv/deleterange", content=json.dumps({"key": key}))

    await _apply_losing_the_lock(lock, tmp_path, delete_key, "its key is gone")


async def test_executor_stops_before_the_next_step_when_etcd_stops(tmp_path: Path) -> None:
    # etcd itself goes away mid-apply (its own server, not the shared one).
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(running_etcd(tmp_path, ETCD_STOPPED_HOST))
        lock = _acquire(url, tmp_path / "state")
        await _apply_losing_the_lock(lock, tmp_path, stack.close, "cannot verify the lock")
