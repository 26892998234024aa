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


def test_blocked_master_port_stops_with_the_firewall_diagnosis(lab: E2ELab) -> None:
    assert lab.apply(lab.spec(3)).code == 0
    lab.fault("cms-lab-1", "block-db")
    try:
        result = lab.apply(lab.spec(5))
    finally:
        lab.fault("cms-lab-1", "unblock-db")
    assert result.code == 1, result.text
    out = result.stdout
    assert "Diagnosis" in out
    assert "database cluster join 127.0.22.1" in out
    assert "master database port 127.0.22.1:5432 from the admin host: NOT reachable" in out
    assert "firewall" in out
    assert "Nothing further was run" in out


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
