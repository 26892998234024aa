"""End to end on a 3-node cmslab: converge, saved plans, lock, host keys, password, master
move, schema repair. Tests run in file order and each leaves the cluster converged."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from reconciler.apply.locks.file import ApplyLock
from reconciler.common.errors import AuthFailedError
from reconciler.observe.observer import observe_nodes
from reconciler.spec.loader import load_spec
from reconciler.transport.ssh import SshSettings, SshTransport

from .lab_harness import E2ELab, lab_fixture

pytestmark = pytest.mark.lab
LAB_BASE = "127.0.20.1"
N1, N2, N3 = "cms-lab-1", "cms-lab-2", "cms-lab-3"


@pytest.fixture(scope="module")
def lab() -> Iterator[E2ELab]:
    yield from lab_fixture(LAB_BASE, 3)


APPLY_SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "schemas" / "apply-output.schema.json").read_text(
        "utf-8"
    )
)


@pytest.fixture(scope="module")
def spec(lab: E2ELab) -> Path:
    return lab.spec()


def test_fresh_three_nodes_converge_in_one_apply(lab: E2ELab, spec: Path) -> None:
    result = lab.apply(spec)
    assert result.code == 0, result.text
    assert "database cluster initialize" in result.stdout
    assert "Verdict: converged" in result.stdout
    # the lab's own table (not the reconciler's view) may lag a moment behind
    lab.wait_for(
        lambda r: (r[N1]["role"], r[N2]["role"], r[N3]["role"]) == ("master", "replica", "replica"),
        timeout=20,
        what="the lab's table",
    )
    plan = lab.reconcile("plan", spec, "--detailed-exitcode")
    assert plan.code == 0, plan.text
    status = lab.reconcile("status", spec, "--format", "json")
    assert status.code == 0, status.text
    report = json.loads(status.stdout)
    assert report["verdict"] == "converged"
    assert report["master"] == lab.address(N1)
    db = report["database"]
    assert db["reachable"] and db["in_recovery"] is False
    assert sorted(r["address"] for r in db["replicas"]) == [lab.address(N2), lab.address(N3)]
    assert all(r["lag_bytes"] is not None for r in db["replicas"])
    audit = (spec.parent / ".reconcile" / "cmslab.audit.jsonl").read_text().splitlines()
    commands = [json.loads(line)["command"] for line in audit]
    assert "database cluster initialize" in commands
    assert all(json.loads(line)["result"] == "ok" for line in audit)


def test_observe_writes_a_snapshot_with_checksums(lab: E2ELab, spec: Path) -> None:
    out = lab.root / "snapshot.yaml"
    result = lab.reconcile("observe", spec, "-o", out)
    assert result.code == 0, result.text
    text = out.read_text()
    assert "ca.crt" in text and re.search(r"[0-9a-f]{64}", text)
    offline = lab.reconcile("plan", spec, "--observed", out, "--detailed-exitcode")
    assert offline.code == 0, offline.text


def test_stale_saved_plan_is_refused_with_the_changed_facts(lab: E2ELab, spec: Path) -> None:
    # make work to plan: the master dies, another node takes over, the old master comes back
    lab.fault(N1, "kill")
    lab.wait_for(lambda r: r[N2]["role"] == "master" or r[N3]["role"] == "master", what="election")
    lab.fault(N1, "revive")
    lab.wait_for(lambda r: r[N1]["role"] == "replica", what="old master rejoined")
    saved = lab.root / "plan.json"
    for _ in range(60):  # until the old master is back in sync and the move can be planned
        made = lab.reconcile("plan", spec, "--out", saved)
        assert made.code == 0, made.text
        if "database cluster remove" in made.stdout:
            break
        time.sleep(0.5)
    assert "database cluster remove" in made.stdout, made.text
    lab.fault(N3, "kill")  # the world changes under the saved plan
    try:
        result = lab.reconcile("apply", saved)
        assert result.code == 1, result.text
        assert "stale" in result.text
        assert re.search(
            rf"{N3}\.reachable\s+'yes'\s+None|{N3}\.reachable\s+'yes'\s+'no'", result.text
        ), result.text
    finally:
        lab.fault(N3, "revive")
    lab.wait_for(lambda r: r[N3]["role"] in ("replica", "master"), what="n3 back")


def test_master_moved_back_without_data_loss(lab: E2ELab, spec: Path) -> None:
    # the previous test left the master elsewhere; write a row there first
    rows = lab.rows()
    master = next(n for n, r in rows.items() if r["role"] == "master")
    assert master != N1
    with lab.db(master) as conn:
        conn.execute("INSERT INTO cospaces (name, uri) VALUES ('e2e-marker', 'before-move')")
    result = lab.apply(spec, "--format", "json")  # the machine report of a real master move
    assert result.code == 0, result.text
    assert "master-move" in result.stderr  # the human lines go to stderr with --format json
    report = json.loads(result.stdout)
    jsonschema.validate(report, APPLY_SCHEMA)
    assert (report["exit_code"], report["outcome"], report["error"]) == (0, "applied", None)
    assert report["steps"] and all(s["outcome"] == "done" for s in report["steps"])
    assert any(s["action"] == "remove" and s["destructive"] for s in report["steps"])
    assert report["verdict"]["verdict"] == "converged"
    assert report["database_view"]["master"] == lab.address(N1)
    lab.wait_for(lambda r: r[N1]["role"] == "master", timeout=20, what="N1 master again")
    with lab.db(N1) as conn:
        found = conn.execute("SELECT uri FROM cospaces WHERE name = 'e2e-marker'").fetchall()
    assert found == [("before-move",)]
    journal = (spec.parent / ".reconcile" / "cmslab.journal.jsonl").read_text()
    assert '"event": "completed"' in journal


def test_second_apply_refused_while_locked(lab: E2ELab, spec: Path) -> None:
    with ApplyLock.acquire(spec.parent / ".reconcile", "cmslab") as held:
        result = lab.apply(spec)
    assert result.code == 1, result.text
    assert "locked by another apply" in result.text
    assert held.info.holder in result.text and f"pid {held.info.pid}" in result.text


def test_wrong_host_key_refused_and_unknown_key_accepted_explicitly(
    lab: E2ELab, spec: Path
) -> None:
    real = (lab.root / "known_hosts").read_text().splitlines()
    other = lab.root / "known_hosts.other"
    # node 2's entry replaced with node 1's key: a changed host key
    n1_key = real[0].split(" ", 1)[1]
    n2_pattern = real[1].split(" ", 1)[0]
    other.write_text("\n".join([real[0], f"{n2_pattern} {n1_key}", real[2]]) + "\n")
    changed = lab.spec(name="spec-wrong-key.yaml", known_hosts="known_hosts.other")
    result = lab.reconcile("status", changed)
    assert result.code == 1, result.text
    assert "host key CHANGED" in result.text and "SHA256:" in result.text
    accepted = lab.reconcile("status", changed, "--accept-new-host-keys")
    assert accepted.code == 1 and "CHANGED" in accepted.text  # never replaced
    # an empty known_hosts: unknown keys, refused unless accepted explicitly
    (lab.root / "known_hosts.empty").write_text("")
    empty = lab.spec(name="spec-new-keys.yaml", known_hosts="known_hosts.empty")
    refused = lab.reconcile("status", empty)
    assert refused.code == 1 and "unknown host key" in refused.text
    ok = lab.reconcile("status", empty, "--accept-new-host-keys")
    assert ok.code == 0, ok.text
    written = (lab.root / "known_hosts.empty").read_text()
    assert written.count(f"]:{lab.cfg.nodes[0].ssh_port} ") == 3
    assert lab.reconcile("status", empty).code == 0


def test_wrong_password_clear_error_one_attempt(lab: E2ELab, spec: Path) -> None:
    result = lab.reconcile("status", spec, env=lab.env(CMSLAB_PASSWORD="not-the-password"))
    assert result.code == 1
    assert "authentication failed" in result.text and "$CMSLAB_PASSWORD" in result.text
    assert "not-the-password" not in result.text
    # apply stops on it and says it once (not once per layer: log, node report, error)
    refused = lab.reconcile("apply", spec, "--yes", env=lab.env(CMSLAB_PASSWORD="not-the-password"))
    assert refused.code == 1
    said = [line for line in refused.stderr.splitlines() if "authentication failed" in line]
    assert len(said) == 1, refused.stderr
    assert "not-the-password" not in refused.text
    missing = lab.reconcile("plan", spec, env=lab.env(CMSLAB_PASSWORD=None))
    assert missing.code == 1 and "CMSLAB_PASSWORD" in missing.text and "not set" in missing.text

    async def twice() -> dict[str, int]:
        loaded = load_spec(spec)
        settings = SshSettings.from_spec(loaded.spec.ssh, loaded.base_dir)
        transport = SshTransport(settings)
        try:
            for _ in range(2):
                run = await observe_nodes(loaded.spec, transport, with_files=False)
                assert all(isinstance(e, AuthFailedError) for e in run.errors.values())
                assert len(run.errors) == 3
        finally:
            await transport.close()
        return transport.connect_attempts

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CMSLAB_PASSWORD", "not-the-password")
        attempts = asyncio.run(twice())
    assert attempts == {N1: 1, N2: 1, N3: 1}  # no retry storm


def test_schema_error_repaired_by_clear_error_and_upgrade_schema(lab: E2ELab, spec: Path) -> None:
    lab.fault(N2, "schema-error")

    async def upgrade_on_n2() -> None:
        loaded = load_spec(spec)
        transport = SshTransport(SshSettings.from_spec(loaded.spec.ssh, loaded.base_dir))
        try:
            from reconciler.transport.interface import node_targets

            session = await transport.session(node_targets(loaded.spec)[N2])
            with pytest.raises(Exception):  # noqa: B017 - any failure form is fine here
                await session.run("database cluster upgrade_schema")
                for _ in range(50):
                    out = await session.run("database cluster status")
                    if "(Failed)" in out.stdout:
                        raise RuntimeError("failed as injected")
                    await asyncio.sleep(0.2)
        finally:
            await transport.close()

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CMSLAB_PASSWORD", lab.password)
        asyncio.run(upgrade_on_n2())
    status = lab.reconcile("status", spec)
    assert status.code == 2, status.text
    assert "Couldn't upgrade the schema" in status.text
    result = lab.apply(spec)
    assert result.code == 0, result.text
    assert "database cluster clear error" in result.stdout
    assert "database cluster upgrade_schema" in result.stdout
    assert lab.reconcile("status", spec).code == 0
