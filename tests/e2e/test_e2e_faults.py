"""End to end on a 5-node cmslab: firewall diagnosis, an unreachable node held back, and an
apply killed with SIGKILL mid-join that a re-run (breaking the stale lock) converges."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from .lab_harness import REPO, E2ELab, kill_process, lab_fixture

pytestmark = pytest.mark.lab
LAB_BASE = "127.0.22.1"


@pytest.fixture(scope="module")
def lab() -> Iterator[E2ELab]:
    yield from lab_fixture(LAB_BASE, 5)


def test_blocked_master_port_holds_back_with_the_firewall_advice(lab: E2ELab) -> None:
    # With its database port blocked the master sees none of its replicas: a master without
    # a majority cannot stay master (A1), so its claim is not acted on (no join is sent to
    # it) and the advice names the port.
    assert lab.apply(lab.spec(3)).code == 0
    spec = lab.spec(5)
    lab.fault("cms-lab-1", "block-db")
    try:
        # The master's view shows its replicas gone once their WAL senders have noticed.
        deadline = time.monotonic() + 30
        while "only 1 of 3 members connected" not in lab.reconcile("plan", spec).stdout:
            assert time.monotonic() < deadline, "the master never showed its replicas gone"
            time.sleep(0.3)
        result = lab.apply(spec)
    finally:
        lab.fault("cms-lab-1", "unblock-db")
    assert result.code == 2, result.text
    out = result.stdout
    assert "Held back" in out
    assert "only 1 of 3 members connected" in out
    assert "TCP port 5432" in out and "firewall" in out
    assert "database cluster join" not in out


def test_unreachable_node_is_held_back_and_the_rest_proceeds(lab: E2ELab) -> None:
    lab.fault("cms-lab-5", "kill")
    try:
        result = lab.apply(lab.spec(5))
        assert result.code == 2, result.text
        assert "Held back" in result.stdout and "cms-lab-5" in result.stdout
        lab.wait_for(
            lambda r: r["cms-lab-4"]["role"] == "replica" and r["cms-lab-5"]["role"] is None,
            timeout=20,
            what="cms-lab-4 joined, cms-lab-5 not",
        )
    finally:
        lab.fault("cms-lab-5", "revive")


def test_apply_killed_mid_join_then_rerun_converges(lab: E2ELab) -> None:
    spec = lab.spec(5)
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler.cli", "apply", str(spec), "--yes"],
        cwd=REPO,
        env=lab.env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    seen = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            seen.append(line)
            if "cms-lab-5: database cluster join" in line or time.monotonic() > deadline:
                break
    finally:
        kill_process(proc)
    assert any("cms-lab-5: database cluster join" in line for line in seen), seen
    refused = lab.apply(spec)
    assert refused.code == 1 and "stale lock" in refused.text and "--break-lock" in refused.text
    result = lab.apply(spec, "--break-lock")
    assert result.code == 0, result.text
    lab.wait_for(
        lambda r: sorted(x["role"] or "" for x in r.values()) == ["master"] + ["replica"] * 4,
        timeout=20,
        what="5 members",
    )
    assert lab.reconcile("plan", spec, "--detailed-exitcode").code == 0
