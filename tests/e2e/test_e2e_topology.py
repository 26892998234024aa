"""End to end on a 5-node cmslab: fresh 5 converge, remove (refused, then allowed), grow 3 -> 5
(with a second, concurrent apply refused by the lock)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .lab_harness import REPO, E2ELab, lab_fixture

pytestmark = pytest.mark.lab
LAB_BASE = "127.0.21.1"


@pytest.fixture(scope="module")
def lab() -> Iterator[E2ELab]:
    yield from lab_fixture(LAB_BASE, 5)


def _roles(lab: E2ELab) -> dict[str, str | None]:
    return {name: row["role"] for name, row in lab.rows().items()}


def test_fresh_five_nodes_converge_in_one_apply(lab: E2ELab) -> None:
    spec = lab.spec(5)
    result = lab.apply(spec)
    assert result.code == 0, result.text
    lab.wait_for(
        lambda r: [r[f"cms-lab-{i}"]["role"] for i in range(1, 6)] == ["master"] + ["replica"] * 4,
        timeout=20,
        what="the lab's table",
    )
    assert lab.reconcile("plan", spec, "--detailed-exitcode").code == 0


def test_remove_refused_without_allow_remove(lab: E2ELab) -> None:
    spec = lab.spec(3, name="spec-3-keep.yaml")
    result = lab.apply(spec)
    assert result.code == 2, result.text
    assert "policy.allow_remove" in result.stdout
    assert "database cluster remove" not in result.stdout
    roles = _roles(lab)
    assert roles["cms-lab-4"] == roles["cms-lab-5"] == "replica"


def test_remove_with_allow_remove_replicas_only(lab: E2ELab) -> None:
    spec = lab.spec(3, policy={"allow_remove": True}, name="spec-3-remove.yaml")
    result = lab.apply(spec)
    assert result.code == 0, result.text
    lab.wait_for(
        lambda r: r["cms-lab-4"]["role"] is None and r["cms-lab-5"]["role"] is None,
        timeout=20,
        what="the lab's table to show 4 and 5 out",
    )
    assert _roles(lab)["cms-lab-1"] == "master"
    audit = (spec.parent / ".reconcile" / "cmslab.audit.jsonl").read_text().splitlines()
    removed = [
        e["node"] for e in map(json.loads, audit) if e["command"] == "database cluster remove"
    ]
    assert sorted(removed) == ["127.0.21.4", "127.0.21.5"]  # members outside the spec: by address


def test_grow_three_to_five_while_a_second_apply_is_refused(lab: E2ELab) -> None:
    spec: Path = lab.spec(5)
    command = [sys.executable, "-m", "reconciler.cli", "apply", str(spec), "--yes"]
    procs = [
        subprocess.Popen(
            command,
            cwd=REPO,
            env=lab.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 1], outputs
    loser = next(o for p, o in zip(procs, outputs, strict=True) if p.returncode == 1)
    assert "locked by another apply" in loser[1], loser
    winner = next(o for p, o in zip(procs, outputs, strict=True) if p.returncode == 0)
    assert winner[0].count("database cluster join") >= 2
    lab.wait_for(
        lambda r: sorted(x["role"] or "" for x in r.values()) == ["master"] + ["replica"] * 4,
        timeout=20,
        what="5 members",
    )
