"""Two `reconcile watch --mode heal` processes (two admin hosts: separate state directories)
on one drifted 3-node cmslab, coordinated by a real etcd lock and by a real PostgreSQL
advisory lock: exactly one acts.

Before the etcd lock both acted: both sent `remove`, then both `join` 3 ms apart to one
replica, and that node's database was destroyed (issue 9).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.lab_harness import E2ELab, lab_fixture
from servers import running_etcd, running_postgres

from e2e_watch.watch_harness import WatchProcess, is_cycle
from reconciler.lock_backend import acquire_lock

pytestmark = pytest.mark.lab
LAB_BASE = "127.0.43.1"
LOCK_HOST = "127.0.44.1"


@pytest.fixture(scope="module")
def lab(lock_url: str) -> Iterator[E2ELab]:
    """A fresh (drifted) lab for each lock backend."""
    yield from lab_fixture(LAB_BASE, 3)


@pytest.fixture(scope="module", params=["etcd", "postgresql"])
def lock_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "etcd":
        with running_etcd(tmp_path_factory.mktemp("etcd"), LOCK_HOST, "/cms-reconciler") as url:
            yield url
    else:
        with running_postgres(LOCK_HOST) as url:
            yield url


def audit_entries(state: Path) -> list[dict[str, object]]:
    path = state / "cmslab.audit.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_two_watchers_with_a_shared_lock_only_one_acts(
    lab: E2ELab, lock_url: str, tmp_path: Path
) -> None:
    spec = lab.spec(3, name="two-writers.yaml")  # a fresh lab: nothing is clustered yet
    states = [tmp_path / "host-a", tmp_path / "host-b"]
    common = ("--mode", "heal", "--interval", "2", "--lock", lock_url)
    # An on-call engineer's apply holds the lock while both watchers start: both must meet
    # it, name the holder and wait; once it lets go, exactly one of them acts.
    manual = acquire_lock(
        lock_url, state_dir=tmp_path / "manual", cluster="cmslab", run_id="oncall"
    )
    with (
        WatchProcess(lab, spec, *common, "--state-dir", str(states[0])) as a,
        WatchProcess(lab, spec, *common, "--state-dir", str(states[1])) as b,
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
    backend = "etcd" if lock_url.startswith("etcd") else "postgresql"
    held = [str(e["detail"]) for e in events if e["event"] == "apply skipped: lock held"]
    assert all(backend in d for d in held), held  # every refusal names the backend
    assert lab.reconcile("plan", spec, "--detailed-exitcode").code == 0
