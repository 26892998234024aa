"""Power loss and the majority rule (A1/A2) on a real 3-node lab; remove (A3).

Tests run in file order and share one lab.
"""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from cmslab import labfiles
from cmslab.config import NodeConfig

from .labkit import Lab, eventually

pytestmark = pytest.mark.lab

LAB_BASE = "127.0.12.1"


def conninfo(lab: Lab, node: NodeConfig) -> str:
    root = lab.root
    return (
        f"host={node.address} port={node.db_port} user=postgres dbname=cluster "
        f"sslmode=verify-ca sslrootcert={root / labfiles.CA_CERT} "
        f"sslcert={root / labfiles.CLIENT_CERT} sslkey={root / labfiles.CLIENT_KEY} "
        "connect_timeout=3"
    )


async def sql(lab: Lab, node: NodeConfig, query: str) -> list[tuple[object, ...]]:
    async with await psycopg.AsyncConnection.connect(conninfo(lab, node), autocommit=True) as c:
        cur = await c.execute(query)
        return await cur.fetchall() if cur.description else []


async def in_recovery(lab: Lab, node: NodeConfig) -> bool | None:
    try:
        rows = await sql(lab, node, "SELECT pg_is_in_recovery()")
    except psycopg.OperationalError:
        return None
    return bool(rows[0][0])


async def masters(lab: Lab, nodes: list[NodeConfig]) -> list[NodeConfig]:
    states = await asyncio.gather(*(in_recovery(lab, n) for n in nodes))
    return [n for n, s in zip(nodes, states, strict=True) if s is False]


async def wait_single_master(lab: Lab, nodes: list[NodeConfig]) -> NodeConfig:
    found: list[NodeConfig] = []

    async def one() -> bool:
        found[:] = await masters(lab, nodes)
        return len(found) == 1

    await eventually(one, what="exactly one master")
    return found[0]


def member_lines(status: str) -> str:
    lines = status.splitlines()
    start = lines.index("Nodes:") + 1
    end = next(i for i, line in enumerate(lines) if line.startswith("Node in use"))
    return "\n".join(lines[start:end])


def in_sync_count(status: str) -> int:
    return status.count("( In Sync )")


async def test_build(lab: Lab) -> None:
    await lab.build_cluster()
    for n in lab.cfg.nodes:
        await lab.wait_status(n, lambda s: in_sync_count(s) == 2)
    await sql(lab, lab.node(0), "INSERT INTO cospaces (name) VALUES ('before-kill')")


async def test_kill_master_elects_a_new_one(lab: Lab) -> None:
    old, a, b = lab.cfg.nodes
    await lab.wait_status(b, lambda s: in_sync_count(s) == 2)
    lab.fault(old, "kill")
    new = await wait_single_master(lab, [a, b])
    # equal positions after an idle period: the lowest address wins (A2)
    other = b if new == a else a
    out = await lab.wait_status(
        other, lambda s: f"Node in use              : {new.address}" in s and "(me)" in s
    )
    assert f"{old.address}           : Disconnected" in out
    await sql(lab, new, "INSERT INTO cospaces (name) VALUES ('after-first-kill')")
    await lab.wait_status(
        other, lambda s: f"{other.address} (me)      : Connected Slave ( In Sync )" in s
    )
    log = lab.syslog(new)
    assert "dbcluster_watcher" in log and "Promoting" in log


async def test_kill_second_leaves_no_master(lab: Lab) -> None:
    _, a, b = lab.cfg.nodes
    new = (await masters(lab, [a, b]))[0]
    survivor = b if new == a else a
    lab.fault(new, "kill")
    out = await lab.wait_status(
        survivor, lambda s: f"Node in use              : {survivor.address}" in s
    )
    assert "Connected Master" not in out
    assert f"{survivor.address} (me)" in out and "( In Sync )" not in out.split("(me)")[1]
    # longer than the watcher needs to decide: still no master, no writes
    await asyncio.sleep(3)
    assert await in_recovery(lab, survivor) is True
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        await sql(lab, survivor, "INSERT INTO cospaces (name) VALUES ('no-majority')")


async def test_revive_returns_as_replica_without_data_loss(lab: Lab) -> None:
    first, a, b = lab.cfg.nodes
    alive_before = [n for n in (a, b) if n.name in alive_names(lab)]
    lab.fault(first, "revive")
    master = await wait_single_master(lab, [first, *alive_before])
    assert master != first, "the former master must not come back as master"
    await lab.wait_status(
        first, lambda s: f"{first.address} (me)      : Connected Slave ( In Sync )" in s
    )
    dead = next(n for n in (a, b) if n not in alive_before)
    lab.fault(dead, "revive")
    for n in lab.cfg.nodes:
        await lab.wait_status(n, lambda s: in_sync_count(s) == 2 and "Connected Master" in s)
    assert await masters(lab, list(lab.cfg.nodes)) == [master]
    for n in lab.cfg.nodes:
        rows = await sql(lab, n, "SELECT name FROM cospaces ORDER BY id")
        assert [r[0] for r in rows] == ["before-kill", "after-first-kill"], n.name


def alive_names(lab: Lab) -> set[str]:
    return {r["name"] for r in lab.status_rows() if r["power"] == "on"}


async def test_remove_replica_then_master(lab: Lab) -> None:
    master = (await masters(lab, list(lab.cfg.nodes)))[0]
    replicas = [n for n in lab.cfg.nodes if n != master]
    # a replica leaves: back to Disabled, the others see two members
    leaving = replicas[0]
    await lab.ok(leaving, "database cluster remove", stdin="Y\n")
    out = await lab.wait_done(leaving, "database cluster remove")
    assert "(Success)" in out and "Status                   : Disabled" in out
    out = await lab.wait_status(master, lambda s: leaving.address not in member_lines(s))
    assert in_sync_count(out) == 1
    # the master leaves: the last member is elected (A3) and keeps the data
    await sql(lab, master, "INSERT INTO cospaces (name) VALUES ('before-master-remove')")
    await lab.ok(master, "database cluster remove", stdin="Y\n")
    out = await lab.wait_done(master, "database cluster remove")
    assert "(Success)" in out
    last = replicas[1]
    await lab.wait_status(last, lambda s: f"{last.address} (me)      : Connected Master" in s)
    rows = await sql(lab, last, "SELECT name FROM cospaces ORDER BY id")
    assert rows[-1][0] == "before-master-remove"
    # the removed nodes join the new master again
    for n in (master, leaving):
        # Two joins sent together (as two admin hosts would): exactly one is accepted.
        answers = await asyncio.gather(
            lab.mmp(n, f"database cluster join {last.address}"),
            lab.mmp(n, f"database cluster join {last.address}"),
        )
        assert sorted(status for _, status in answers) == [0, 1], answers
        refused = next(out for out, status in answers if status == 1)
        assert refused.startswith("FAILURE: another database cluster command is in progress")
        out, _ = await lab.mmp(n, "database cluster status")
        if "(In progress)" in out:  # the view from before the command, until it ends
            assert "Status                   : Disabled" in out
            again, status = await lab.mmp(n, f"database cluster join {last.address}")
            assert status == 1
            assert again.startswith(
                "FAILURE: another database cluster command is in progress"
            ) or again.startswith("FAILURE: this node is already in a database cluster")
        out = await lab.wait_done(n, f"database cluster join {last.address}")
        assert "(Success)" in out, out + lab.syslog(n)
    for n in lab.cfg.nodes:
        await lab.wait_status(n, lambda s: in_sync_count(s) == 2)


async def test_master_without_majority_steps_down_and_returns(lab: Lab) -> None:
    master = (await masters(lab, list(lab.cfg.nodes)))[0]
    replicas = [n for n in lab.cfg.nodes if n != master]
    await sql(lab, master, "INSERT INTO cospaces (name) VALUES ('before-step-down')")
    for r in replicas:
        await lab.wait_status(r, lambda s: in_sync_count(s) == 2)
    for r in replicas:
        lab.fault(r, "kill")
    out = await lab.wait_status(
        master, lambda s: f"{master.address} (me)      : Connected Slave" in s
    )
    assert "Connected Master" not in out
    assert f"Node in use              : {master.address}" in out
    assert await in_recovery(lab, master) is True
    assert "Stepping down" in lab.syslog(master)
    for r in replicas:
        lab.fault(r, "revive")
    back = await wait_single_master(lab, list(lab.cfg.nodes))
    for n in lab.cfg.nodes:
        await lab.wait_status(n, lambda s: in_sync_count(s) == 2 and "Connected Master" in s)
    rows = await sql(lab, back, "SELECT name FROM cospaces ORDER BY id")
    assert rows[-1][0] == "before-step-down"
