"""Two `reconcile watch --mode heal` processes (two admin hosts: separate state directories)
on one drifted 3-node cmslab, coordinated by a real etcd lock and by a real PostgreSQL
advisory lock: exactly one acts.

Before the etcd lock both acted: both sent `remove`, then both `join` 3 ms apart to one
replica, and that node's database was destroyed (issue 9).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.lab_harness import E2ELab, lab_fixture
from servers import running_etcd, running_postgres

from e2e_watch.watch_harness import N1, Event, WatchProcess, is_cycle, move_master_away
from reconciler.apply.locks.acquire import acquire_lock

pytestmark = pytest.mark.lab
LAB_BASE = "127.0.43.1"
LOCK_HOST = "127.0.44.1"
STOPPED_HOST = "127.0.44.2"


@pytest.fixture(scope="module")
def lab(lock_url: str) -> Iterator[E2ELab]:
    """A fresh (drifted) lab for each lock backend."""
    yield from lab_fixture(LAB_BASE, 3)


@pytest.fixture(scope="module", params=["etcd", "postgresql"])
def lock_kind(request: pytest.FixtureRequest) -> str:
    """The lock backend under test (each test runs once for etcd, once for PostgreSQL)."""
    return str(request.param)


@pytest.fixture(scope="module")
def lock_url(lock_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with lock_server(lock_kind, LOCK_HOST, tmp_path_factory.mktemp(lock_kind)) as url:
        yield url


@contextlib.contextmanager
def lock_server(kind: str, host: str, data: Path) -> Iterator[str]:
    """A lock server of ``kind`` (etcd or postgresql) on ``host``; yields its lock URL."""
    if kind == "etcd":
        with running_etcd(data, host, "/cms-reconciler") as url:
            yield url
    else:
        with running_postgres(host) as url:
            yield url


def healer(lab: E2ELab, spec: Path, lock_url: str, state: Path) -> WatchProcess:
    """`reconcile watch --mode heal` on ``lock_url`` with its own state directory."""
    args = ("--mode", "heal", "--interval", "2", "--lock", lock_url, "--state-dir", str(state))
    return WatchProcess(lab, spec, *args)


def drifted(lab: E2ELab) -> Path:
    """The converged lab's spec, with the master moved away: healing it is several steps."""
    spec = lab.spec(3, name="two-writers.yaml", policy={"allow_master_move": True})
    assert lab.apply(spec).code == 0
    move_master_away(lab)
    return spec


def step_started(e: Event) -> bool:
    """A watcher's log line saying an apply step started."""
    return e["event"] == "apply" and str(e["detail"]).endswith(" ...")


def audit_entries(state: Path) -> list[dict[str, object]]:
    path = state / "cmslab.audit.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_two_watchers_with_a_shared_lock_only_one_acts(
    lab: E2ELab, lock_kind: str, lock_url: str, tmp_path: Path
) -> None:
    spec = lab.spec(3, name="two-writers.yaml")  # a fresh lab: nothing is clustered yet
    states = [tmp_path / "host-a", tmp_path / "host-b"]
    # An on-call engineer's apply holds the lock while both watchers start: both must meet
    # it, name the holder and wait; once it lets go, exactly one of them acts.
    manual = acquire_lock(
        lock_url, state_dir=tmp_path / "manual", cluster="cmslab", run_id="oncall"
    )
    with (
        healer(lab, spec, lock_url, states[0]) as a,
        healer(lab, spec, lock_url, states[1]) as b,
    ):
        for w in (a, b):
            refused = w.wait_for(lambda e: e["event"] == "apply skipped: lock held", 120)
            assert "run oncall" in str(refused["detail"]), refused
        assert not audit_entries(states[0]) and not audit_entries(states[1])
        manual.release()
        deadline = time.monotonic() + 240
        while not (
            any(is_cycle("converged")(e) for e in a.events())
            and any(is_cycle("converged")(e) for e in b.events())
        ):
            assert time.monotonic() < deadline, f"not converged:\n{a.tail()}\n---\n{b.tail()}"
            time.sleep(0.5)
        events = a.events() + b.events()
    # Every cluster command was sent once, by one of the two hosts.
    sent = [
        (str(e["node"]), str(e["command"]))
        for state in states
        for e in audit_entries(state)
        if str(e["command"]).startswith("database cluster")
    ]
    assert ("cms-lab-1", "database cluster initialize") in sent, sent
    assert len(sent) == len(set(sent)), sent
    acting = [state.name for state in states if audit_entries(state)]
    assert len(acting) == 1, acting
    held = [str(e["detail"]) for e in events if e["event"] == "apply skipped: lock held"]
    assert all(lock_kind in d for d in held), held  # every refusal names the backend
    assert lab.reconcile("plan", spec, "--detailed-exitcode").code == 0


def test_a_holder_killed_mid_apply_is_taken_over_once_its_lock_expires(
    lab: E2ELab, lock_kind: str, lock_url: str, tmp_path: Path
) -> None:
    spec = drifted(lab)
    with healer(lab, spec, lock_url, tmp_path / "host-a") as first:
        first.wait_for(step_started, 180)
        first.proc.kill()  # SIGKILL: no release; the lease / session must end it
        first.proc.wait(30)
        killed = time.monotonic()
    with healer(lab, spec, lock_url, tmp_path / "host-b") as second:
        second.wait_for(step_started, 180)
        took_over = time.monotonic()
        second.wait_for(is_cycle("converged"), 300)
    print(f"took over {took_over - killed:.1f} s after SIGKILL ({lock_kind})")
    assert lab.rows()[N1]["role"] == "master"
    assert lab.reconcile("plan", spec, "--detailed-exitcode").code == 0


def test_the_lock_server_stopped_mid_apply_stops_the_apply_before_its_next_step(
    lab: E2ELab, lock_kind: str, tmp_path: Path
) -> None:
    spec = drifted(lab)
    with contextlib.ExitStack() as server:  # a lock server of the same kind, for this test
        url = server.enter_context(lock_server(lock_kind, STOPPED_HOST, tmp_path))
        with healer(lab, spec, url, tmp_path / "host") as w:
            w.wait_for(step_started, 180)
            server.close()  # the lock server goes away while the apply runs
            failed = w.wait_for(lambda e: e["event"] == "apply failed", 120)
            mark = w.mark()
            time.sleep(3)  # a few more cycles without a lock server
            later = w.events()[mark:]
        started = [e for e in w.events() if step_started(e)]
    assert "lock" in str(failed["error"]), failed  # it says why
    assert not [e for e in later if step_started(e)]
    # every step that started, started before the loss was noticed
    assert started and all(e["timestamp"] <= failed["timestamp"] for e in started), started
    # Leave the lab converged for the next test (no lock server needed for a plain apply).
    lab.wait_for(
        lambda rows: all(r["last_result"] != "In progress" for r in rows.values()),
        what="no command in progress",
    )
    assert lab.apply(spec).code == 0
