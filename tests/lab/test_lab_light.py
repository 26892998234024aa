"""Light nodes (`cmslab up --light`): no PostgreSQL at `up`, the database appears lazily on
`initialize`/`join` and goes away again on a replica's `remove` (a former master keeps its data
on disk, A3); otherwise the nodes behave as usual.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest

from cmslab import cleanup

from .labkit import Lab, addresses, free_ports, new_lab, running, stop_lab

pytestmark = pytest.mark.lab

LAB_BASE = "127.0.15.1"
NODES = 9
DISABLED = "Status                   : Disabled"


@pytest.fixture(scope="module")
def light_lab() -> Iterator[Lab]:
    yield from running(new_lab(LAB_BASE, NODES, light=True))


def pg_dirs(lab: Lab) -> set[str]:
    """`<node>/<data dir>` of every running postmaster of the lab."""
    return {f"{d.parent.name}/{d.name}" for d in cleanup.running_postmasters(lab.paths)}


def test_light_lab_up_runs_no_postgres(light_lab: Lab) -> None:
    assert json.loads(light_lab.paths.lab_json.read_text())["light"] is True
    rows = light_lab.status_rows()
    assert [r["name"] for r in rows] == [f"cms-lab-{i}" for i in range(1, NODES + 1)]
    assert {r["power"] for r in rows} == {"on"}
    assert pg_dirs(light_lab) == set()
    assert not (light_lab.paths.node_dir("cms-lab-1") / "pg-local").exists()
    known = light_lab.paths.known_hosts.read_text().splitlines()
    assert len({line.split()[2] for line in known}) == NODES  # one host key per node


async def test_fresh_light_node_answers_without_database(light_lab: Lab) -> None:
    node = light_lab.node(NODES - 1)
    out = await light_lab.status(node)
    assert DISABLED in out and "Node in use              : none" in out
    await light_lab.prepare(node)  # SFTP upload, localnode, certs
    out = await light_lab.status(node)
    assert "Interface                : a" in out and "dbclusterserver.cer" in out
    assert "dbclusterserver.key" in await light_lab.ok(node, "pki list")
    assert pg_dirs(light_lab) == set()


async def test_light_nodes_initialize_join_and_remove(light_lab: Lab) -> None:
    first, second, third = (light_lab.node(i) for i in range(3))
    for n in (first, second, third):
        await light_lab.prepare(n)
    await light_lab.ok(first, "database cluster initialize")
    out = await light_lab.wait_done(first, "database cluster initialize")
    assert "(Success)" in out, out + light_lab.syslog(first)
    assert pg_dirs(light_lab) == {"cms-lab-1/pg-cluster"}
    for n in (second, third):
        await light_lab.ok(n, f"database cluster join {first.address}")
        out = await light_lab.wait_done(n, f"database cluster join {first.address}")
        assert "(Success)" in out, out + light_lab.syslog(n)
    for n in (first, second, third):
        await light_lab.wait_status(n, lambda s: s.count("( In Sync )") == 2)
    assert pg_dirs(light_lab) == {f"cms-lab-{i}/pg-cluster" for i in (1, 2, 3)}
    # a light node that leaves goes back to no database at all
    await light_lab.ok(third, "database cluster remove", stdin="Y\n")
    out = await light_lab.wait_done(third, "database cluster remove")
    assert "(Success)" in out and DISABLED in out, out
    assert pg_dirs(light_lab) == {"cms-lab-1/pg-cluster", "cms-lab-2/pg-cluster"}
    await light_lab.wait_status(first, lambda s: s.count("( In Sync )") == 1)


async def test_light_node_kill_and_revive(light_lab: Lab) -> None:
    unclustered, replica = light_lab.node(4), light_lab.node(1)
    for n in (unclustered, replica):
        light_lab.fault(n, "kill")
        light_lab.fault(n, "revive")
    assert DISABLED in await light_lab.status(unclustered)
    await light_lab.wait_status(
        replica, lambda s: f"{replica.address} (me)      : Connected Slave ( In Sync )" in s
    )
    assert "cms-lab-5/pg-local" not in pg_dirs(light_lab)


async def test_light_former_master_keeps_its_data_on_disk(light_lab: Lab) -> None:
    """A3 on a light node: the data stays on disk (no PostgreSQL runs while unclustered);
    `backup snapshot` and `initialize` start it only for as long as they need it."""
    first, second = light_lab.node(0), light_lab.node(1)
    run = light_lab.paths.node_dir(first.name) / "run"
    here = f"host={run} port={first.pg_port} user=postgres dbname=cluster"
    async with await psycopg.AsyncConnection.connect(here, autocommit=True) as conn:
        await conn.execute("INSERT INTO cospaces (name) VALUES ('kept-on-a-light-node')")
    await light_lab.wait_status(second, lambda s: "(me)      : Connected Slave ( In Sync )" in s)
    for n in (second, first):
        await light_lab.ok(n, "database cluster remove", stdin="Y\n")
        out = await light_lab.wait_done(n, "database cluster remove")
        assert "(Success)" in out and DISABLED in out, out
    assert pg_dirs(light_lab) == set()
    assert (light_lab.paths.node_dir(first.name) / "pg-local" / "PG_VERSION").exists()
    assert not (light_lab.paths.node_dir(second.name) / "pg-local").exists()
    assert await light_lab.ok(first, "backup snapshot light-kept") == "SUCCESS\n"
    assert pg_dirs(light_lab) == set()
    out, status = await light_lab.mmp(second, "backup snapshot none")
    assert status == 1 and "holds no cluster database" in out
    await light_lab.ok(first, "database cluster initialize")
    out = await light_lab.wait_done(first, "database cluster initialize")
    assert "(Success)" in out, out + light_lab.syslog(first)
    assert pg_dirs(light_lab) == {"cms-lab-1/pg-cluster"}
    async with await psycopg.AsyncConnection.connect(here, autocommit=True) as conn:
        cur = await conn.execute("SELECT name FROM cospaces")
        assert await cur.fetchall() == [("kept-on-a-light-node",)]
        cur = await conn.execute("SELECT address FROM membership")
        assert await cur.fetchall() == [(first.address,)]


def test_cli_up_light_resumes_light() -> None:
    base = "127.0.15.101"
    lab = new_lab(base, 3)
    ssh, db = free_ports(addresses(base, 3))

    def cmslab(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cmslab.cli", "--dir", str(lab.root), *args],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )

    try:
        common = ["--base-address", base, "--ssh-port", str(ssh), "--db-port", str(db)]
        r = cmslab("up", "--nodes", "3", "--light", *common)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "cms-lab-3" in r.stdout and pg_dirs(lab) == set()
        assert cmslab("down").returncode == 0
        r = cmslab("up")  # resume: still light
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads(lab.paths.lab_json.read_text())["light"] is True
        assert pg_dirs(lab) == set()
    finally:
        try:
            stop_lab(lab)
        finally:
            cleanup.stop_everything(lab.paths)
