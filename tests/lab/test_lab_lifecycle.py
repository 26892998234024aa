"""`cmslab` CLI end to end: up, down (nothing left), resume with data, crash recovery; the client
role (`connect`), the `primary` wording and the latency fault.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from cmslab import cleanup, labfiles

from .labkit import Lab, addresses, free_ports, new_lab

pytestmark = pytest.mark.lab

LAB_BASE = "127.0.13.1"
LAB_NODES = 4
LAB_WORDING = "primary"


def processes_mentioning(root: Path) -> list[int]:
    """Live (non-zombie) processes whose command line names the lab directory."""
    out = []
    needle = str(root).encode()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmdline = (d / "cmdline").read_bytes()
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if needle in cmdline and state != "Z" and int(d.name) != os.getpid():
            out.append(int(d.name))
    return out


def cmslab(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cmslab.cli", "--dir", str(root), *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def assert_nothing_left(lab: Lab, postmasters: list[int]) -> None:
    assert cleanup.supervisor_pid(lab.paths) is None
    assert not cleanup.running_postmasters(lab.paths)
    assert not [p for p in postmasters if cleanup._alive(p)]
    assert not processes_mentioning(lab.root)


def conninfo(lab: Lab, address: str) -> str:
    root = lab.root
    return (
        f"host={address} port={lab.node(0).db_port} user=postgres dbname=cluster "
        f"sslmode=verify-ca sslrootcert={root / labfiles.CA_CERT} "
        f"sslcert={root / labfiles.CLIENT_CERT} sslkey={root / labfiles.CLIENT_KEY}"
    )


async def test_cli_up_down_resume_and_crash() -> None:
    lab = new_lab("127.0.14.1", 3)
    ssh, db = free_ports(addresses("127.0.14.1", 3))
    root = lab.root
    try:
        r = cmslab(
            root,
            "up",
            "--nodes",
            "3",
            "--base-address",
            "127.0.14.1",
            "--ssh-port",
            str(ssh),
            "--db-port",
            str(db),
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert "cms-lab-3" in r.stdout and "127.0.14.3" in r.stdout
        lab.cfg = lab.cfg.__class__.from_json((root / "lab.json").read_text())
        lab.password = labfiles.read_password(lab.paths)
        await lab.build_cluster()
        master = lab.node(0)
        async with await psycopg.AsyncConnection.connect(
            conninfo(lab, master.address), autocommit=True
        ) as c:
            await c.execute("INSERT INTO users (jid, name) VALUES ('a@lab', 'kept')")
        for n in lab.cfg.nodes:
            await lab.wait_status(n, lambda s: s.count("( In Sync )") == 2)

        postmasters = list(cleanup.running_postmasters(lab.paths).values())
        assert len(postmasters) == 3
        r = cmslab(root, "down")
        assert r.returncode == 0, r.stderr
        assert_nothing_left(lab, postmasters)
        assert (root / "nodes" / "cms-lab-1" / "pg-cluster" / "PG_VERSION").exists()

        r = cmslab(root, "up")
        assert r.returncode == 0, r.stdout + r.stderr
        for n in lab.cfg.nodes:
            await lab.wait_status(n, lambda s: s.count("( In Sync )") == 2)
        async with await psycopg.AsyncConnection.connect(conninfo(lab, lab.node(2).address)) as c:
            cur = await c.execute("SELECT name FROM users WHERE jid = 'a@lab'")
            assert await cur.fetchone() == ("kept",)

        # the lab process dies without cleaning up: `down` still stops every postgres
        pid = cleanup.supervisor_pid(lab.paths)
        assert pid is not None
        postmasters = list(cleanup.running_postmasters(lab.paths).values())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while cleanup.supervisor_pid(lab.paths) is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert cleanup.running_postmasters(lab.paths), "postgres survives the crash"
        r = cmslab(root, "status")
        assert r.returncode == 3 and "not running" in r.stdout
        r = cmslab(root, "down")
        assert r.returncode == 0, r.stderr
        assert_nothing_left(lab, postmasters)

        # and `up` after a crash resumes too
        r = cmslab(root, "up")
        assert r.returncode == 0, r.stdout + r.stderr
        out = await lab.wait_status(lab.node(1), lambda s: s.count("( In Sync )") == 2)
        assert "Connected Slave ( In Sync )" in out
        postmasters = list(cleanup.running_postmasters(lab.paths).values())
        r = cmslab(root, "down")
        assert r.returncode == 0
        assert_nothing_left(lab, postmasters)
    finally:
        cleanup.stop_everything(lab.paths)
        if not os.environ.get("CMSLAB_TEST_KEEP"):
            shutil.rmtree(root, ignore_errors=True)


async def test_fault_cli_errors(lab: Lab) -> None:
    r = cmslab(lab.root, "fault", "no-such-node", "kill")
    assert r.returncode == 1 and "no node" in r.stdout
    r = cmslab(lab.root, "fault", lab.node(0).name, "latency", "abc")
    assert r.returncode == 1 and "milliseconds" in r.stdout


async def test_primary_wording_and_client_connect(lab: Lab) -> None:
    db_nodes = list(lab.cfg.nodes[:3])
    client = lab.node(3)
    first = db_nodes[0]
    await asyncio.gather(*(lab.prepare(n) for n in db_nodes))
    await lab.ok(first, "database cluster initialize")
    assert "(Success)" in await lab.wait_done(first, "database cluster initialize")
    for n in db_nodes[1:]:
        await lab.ok(n, f"database cluster join {first.address}")
        assert "(Success)" in await lab.wait_done(n, f"database cluster join {first.address}")
    out = await lab.wait_status(
        db_nodes[1], lambda s: s.count("Connected Replica ( In Sync )") == 2
    )
    assert f"{first.address}           : Connected Primary" in out
    # a Call Bridge without a database: client certificates only, then connect
    await lab.upload_certs(client)
    await lab.ok(
        client, "database cluster certs dbclusterclient.key dbclusterclient.cer labRootca.cer"
    )
    out, status = await lab.mmp(client, f"database cluster connect {db_nodes[1].address}")
    assert status == 1 and "is not a master" in out
    await lab.ok(client, f"database cluster connect {first.address}")
    out = await lab.wait_status(client, lambda s: s.count("( In Sync )") == 2)
    assert "(me)" not in out
    assert f"Node in use              : {first.address}" in out
    assert "  Server Key             : none" in out
    assert f"'database cluster connect {first.address}' (Success)" in out


async def test_latency_fault_delays_answers(lab: Lab) -> None:
    node = lab.node(0)
    lab.fault(node, "latency", "400")
    try:
        started = time.monotonic()
        await lab.ok(node, "hostname")
        slow = time.monotonic() - started
        rows = {r["name"]: r for r in lab.status_rows()}
        assert rows[node.name]["latency_ms"] == 400
    finally:
        lab.fault(node, "latency", "0")
    assert slow >= 0.4  # the injected delay itself, not a performance threshold
