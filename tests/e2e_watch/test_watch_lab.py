"""`reconcile watch` end to end on a 3-node cmslab (real SSH, real PostgreSQL).

The watch runs as a subprocess (JSON logs to a file, metrics on a free port read
with urllib). The tests share one lab; each first brings the cluster to the
3-node spec with `reconcile apply` (a no-op when it is already there).
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from e2e.lab_harness import E2ELab, lab_fixture

from e2e_watch.watch_harness import N1, N2, N3, WatchProcess, is_cycle, move_master_away

pytestmark = pytest.mark.lab
LAB_BASE = "127.0.40.1"
SPEC_NAME = "watch.yaml"


def spec_path(lab: E2ELab) -> Path:
    return lab.root / SPEC_NAME


def write_spec(lab: E2ELab, nodes: int = 3, **policy: Any) -> Path:
    return lab.spec(nodes, policy=policy or {"allow_master_move": True}, name=SPEC_NAME)


def converged_spec(lab: E2ELab, **policy: Any) -> Path:
    """The 3-node spec, with the cluster brought to it (a no-op when already there)."""
    spec = write_spec(lab, **policy)
    result = lab.apply(spec)
    assert result.code == 0, result.text
    assert lab.rows()[N1]["role"] == "master"
    return spec


@pytest.fixture(scope="module")
def lab() -> Iterator[E2ELab]:
    yield from lab_fixture(LAB_BASE, 3)


def test_heal_converges_and_a_spec_edit_joins_a_node_without_waiting(lab: E2ELab) -> None:
    spec = write_spec(lab, nodes=2, allow_unsafe_topology=True)
    with WatchProcess(lab, spec, "--mode", "heal", "--interval", "600") as w:
        w.wait_for(is_cycle("converged"), 180)
        assert lab.rows()[N3]["role"] in (None, "-")
        assert w.healthz() == 200
        mark = w.mark()
        # A git pull / editor save: the third node appears in the spec. The interval is
        # 600 s (longer than this test may run): only the file watcher can start the cycle.
        write_spec(lab, nodes=3, allow_unsafe_topology=True)
        w.wait_for(lambda e: e["event"] == "change detected: waking", 60, after=mark)
        loaded = w.wait_for(lambda e: e["event"] == "spec loaded", 60, after=mark)
        assert loaded["previous"] is not None
        w.wait_for(lambda e: e["event"] == "planned step" and e["node"] == N3, 60, after=mark)
        lab.wait_for(lambda r: r[N3]["role"] == "replica", 180, what=f"{N3} joined")
        w.wait_for(is_cycle("converged"), 120, after=mark)
        w.wait_metric(
            "cms_reconciler_cluster_state", lambda v: v == 1, state="converged", timeout=30
        )
        assert (w.metric("cms_reconciler_steps_applied_total") or 0) > 0
        assert w.metric("cms_reconciler_node_reachable", node=N3) == 1
        assert w.metric("cms_reconciler_spec_valid") == 1
        days = w.metric("cms_reconciler_certificate_expiry_days", file="ca/ca.crt")
        assert days is not None and days > 0
        assert w.stop() == 0


def test_killed_master_is_reported_in_logs_and_metrics(lab: E2ELab) -> None:
    spec = converged_spec(lab)
    with WatchProcess(lab, spec, "--mode", "report", "--interval", "2") as w:
        w.wait_for(is_cycle("converged"), 120)
        mark = w.mark()
        lab.fault(N1, "kill")
        w.wait_for(lambda e: is_cycle()(e) and e["verdict"] in ("degraded", "no_master"), 120)
        w.wait_metric("cms_reconciler_node_reachable", lambda v: v == 0, node=N1)
        w.wait_metric(
            "cms_reconciler_cluster_state",
            lambda v: v == 1,
            state="degraded",
        )
        lab.wait_for(lambda r: "master" in (r[N2]["role"], r[N3]["role"]), what="election")
        lab.fault(N1, "revive")
        lab.wait_for(lambda r: r[N1]["role"] == "replica", what="old master back")
        # The master is not where the spec wants it: drift, a master move planned, not run.
        w.wait_for(
            lambda e: e["event"] == "planned step" and e.get("procedure") == "master-move",
            120,
            after=mark,
        )
        w.wait_metric("cms_reconciler_cluster_state", lambda v: v == 1, state="drifted")
        w.wait_metric("cms_reconciler_steps_pending", lambda v: v is not None and v > 0)
        assert not [e for e in w.events() if e["event"] == "applying"]
        assert w.stop() == 0
    assert lab.rows()[N1]["role"] == "replica"


def closed_window() -> dict[str, str]:
    """A one-minute window twelve hours from now: certainly closed during the test."""
    at = datetime.now(UTC) + timedelta(hours=12)
    end = at + timedelta(minutes=1)
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[at.weekday()]
    return {"days": [day], "start": at.strftime("%H:%M"), "end": end.strftime("%H:%M")}


def test_master_move_waits_for_a_maintenance_window(lab: E2ELab) -> None:
    converged_spec(lab)
    move_master_away(lab)
    spec = write_spec(lab, allow_master_move=True, maintenance_windows=[closed_window()])
    with WatchProcess(lab, spec, "--mode", "heal", "--interval", "2") as w:
        held = w.wait_for(
            lambda e: is_cycle()(e) and "outside maintenance windows" in e.get("held", ""), 120
        )
        assert held["pending"] > 0
        assert w.metric("cms_reconciler_in_maintenance_window") == 0
        # Several cycles later the master move is still only reported.
        w.wait_for(is_cycle(), 60, after=w.mark())
        assert lab.rows()[N1]["role"] == "replica"
        assert not [e for e in w.events() if e["event"] == "applying"]
        # Removing the window is a spec change: it wakes the loop and the move runs.
        mark = w.mark()
        write_spec(lab, allow_master_move=True)
        w.wait_for(lambda e: e["event"] == "applying", 120, after=mark)
        lab.wait_for(lambda r: r[N1]["role"] == "master", 240, what="master moved back")
        w.wait_for(is_cycle("converged"), 180, after=mark)
        assert w.stop() == 0


def test_broken_spec_is_reported_and_the_last_valid_one_is_enforced(lab: E2ELab) -> None:
    spec = converged_spec(lab)
    good = spec.read_text()
    with WatchProcess(lab, spec, "--mode", "heal", "--interval", "2") as w:
        w.wait_for(is_cycle("converged"), 120)
        mark = w.mark()
        spec.write_text(good.replace(f"master: {N1}", "master: cms-lab-9"))
        w.wait_for(lambda e: e["event"] == "spec invalid", 60, after=mark)
        diagnostics = [e["diagnostic"] for e in w.events()[mark:] if e["event"] == "diagnostic"]
        assert any("cms-lab-9" in d for d in diagnostics), diagnostics
        w.wait_metric("cms_reconciler_spec_valid", lambda v: v == 0)
        # The previous spec stays in force: a lost master is moved back to cms-lab-1.
        move_master_away(lab)
        lab.wait_for(lambda r: r[N1]["role"] == "master", 240, what="master restored")
        assert not [e for e in w.events()[mark:] if e["event"] == "spec loaded"]
        # Fixing the file resumes with it.
        mark = w.mark()
        spec.write_text(good + "\n# fixed\n")
        w.wait_for(lambda e: e["event"] == "spec loaded", 60, after=mark)
        w.wait_metric("cms_reconciler_spec_valid", lambda v: v == 1)
        assert w.stop() == 0


def test_sigterm_during_an_apply_stops_and_releases_the_lock(lab: E2ELab) -> None:
    spec = converged_spec(lab)
    move_master_away(lab)
    # A short interval: the move is planned once cms-lab-1 has caught up (in sync).
    w = WatchProcess(lab, spec, "--mode", "heal", "--interval", "2")
    with w:
        started = w.wait_for(lambda e: e["event"] == "apply" and e["detail"].endswith(" ..."), 120)
        w.proc.send_signal(signal.SIGTERM)
        # one signal only: `stop()` would send a second SIGTERM if the first has not ended the
        # process yet, and a second signal means "cancel now" (exit 130)
        assert w.proc.wait(120) == 0
    step = started["detail"].split("]")[0] + "]"
    details = [e["detail"] for e in w.events() if e["event"] == "apply"]
    # The running step finished, or (an asynchronous command being polled) was given up
    # while the command keeps running on the node; no step started after the signal.
    ends = ("done", "FAILED", "STOPPED: stopped while")
    assert any(d.startswith(step) and any(x in d for x in ends) for d in details), details
    assert not (spec.parent / ".reconcile" / "cmslab.lock").exists()
    assert any(e["event"] == "lock released" for e in w.events())
    audit = (spec.parent / ".reconcile" / "cmslab.audit.jsonl").read_text().splitlines()
    assert audit and json.loads(audit[-1])["result"] in ("ok", "abandoned")
    # Leave the cluster as the next module expects it (once the node finished its command).
    lab.wait_for(
        lambda rows: all(r["last_result"] != "In progress" for r in rows.values()),
        what="no command in progress",
    )
    result = lab.apply(spec)
    assert result.code == 0, result.text
    assert lab.rows()[N1]["role"] == "master"
