"""What a node's database holds across `remove`/`initialize`/`join` (A3), Cisco's certificate
renewal by hand (TAC 216549, A5), `backup snapshot`/`list` (A8) and `pki csr`, on one lab.

Tests run in file order and share the lab: nodes 1-3 are clustered by `test_build`, node 4 stays
a fresh unclustered node; the certificate renewal comes last, in three tests (it ends with a new
CA in use).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cmslab import labfiles, pgproc, pki
from cmslab.config import NodeConfig

from .labkit import UPLOAD_NAMES, Lab

pytestmark = pytest.mark.lab

LAB_BASE = "127.0.16.1"
LAB_NODES = 4
CLUSTER_TABLES = {"membership", "schema_version", "schema_history", "cospaces", "users"}


def upload_dir(lab: Lab, node: NodeConfig) -> Path:
    return lab.paths.node_dir(node.name) / "upload"


def tls(lab: Lab, node: NodeConfig, ca: Path, cert: Path, key: Path) -> str:
    return (
        f"host={node.address} port={node.db_port} user=postgres dbname=cluster "
        f"sslmode=verify-ca sslrootcert={ca} sslcert={cert} sslkey={key} connect_timeout=3"
    )


def lab_tls(lab: Lab, node: NodeConfig) -> str:
    root = lab.root
    return tls(
        lab, node, root / labfiles.CA_CERT, root / labfiles.CLIENT_CERT, root / labfiles.CLIENT_KEY
    )


async def sql(conninfo: str, query: str) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as c:
        cur = await c.execute(query)
        return await cur.fetchall() if cur.description else []


def local(lab: Lab, node: NodeConfig, dbname: str = "cluster") -> str:
    """Straight to the node's PostgreSQL through its unix socket (clustered or not)."""
    run = lab.paths.node_dir(node.name) / "run"
    return f"host={run} port={node.pg_port} user=postgres dbname={dbname} connect_timeout=3"


async def names_in(conninfo: str) -> list[str]:
    return [r[0] for r in await sql(conninfo, "SELECT name FROM cospaces ORDER BY id")]


async def remove(lab: Lab, node: NodeConfig) -> None:
    await lab.ok(node, "database cluster remove", stdin="Y\n")
    out = await lab.wait_done(node, "database cluster remove")
    assert "(Success)" in out, out + lab.syslog(node)


async def join(lab: Lab, node: NodeConfig, master: NodeConfig) -> None:
    await lab.ok(node, f"database cluster join {master.address}")
    out = await lab.wait_done(node, f"database cluster join {master.address}")
    assert "(Success)" in out, out + lab.syslog(node)


async def test_build(lab: Lab) -> None:
    n1, n2, n3, _ = lab.cfg.nodes
    # node 2's pre-cluster database gets a mark, to recognise it after its `remove`
    await sql(local(lab, n2, "postgres"), "CREATE TABLE pre_join_mark (what text)")
    await sql(local(lab, n2, "postgres"), "INSERT INTO pre_join_mark VALUES ('node 2 local')")
    await asyncio.gather(*(lab.prepare(n) for n in (n1, n2, n3)))
    await lab.ok(n1, "database cluster initialize")
    out = await lab.wait_done(n1, "database cluster initialize")
    assert "(Success)" in out, out + lab.syslog(n1)
    for n in (n2, n3):
        await join(lab, n, n1)
    for n in (n1, n2, n3):
        await lab.wait_status(n, lambda s: s.count("( In Sync )") == 2)
    await sql(lab_tls(lab, n1), "INSERT INTO cospaces (name) VALUES ('first')")


async def test_pki_csr_read_by_openssl_and_refusals(lab: Lab) -> None:
    node = lab.node(3)
    out = await lab.ok(node, "pki csr webcsr CN:cms-lab-4.example.com")
    assert out.splitlines()[-1] == "SUCCESS"
    up = upload_dir(lab, node)
    r = subprocess.run(
        ["openssl", "req", "-in", str(up / "webcsr.csr"), "-noout", "-subject"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.replace(" ", "").strip() == "subject=CN=cms-lab-4.example.com", r.stdout
    assert stat.S_IMODE((up / "webcsr.key").stat().st_mode) == 0o600
    pki.load_key(up / "webcsr.key")  # a PEM EC key
    key_before = (up / "webcsr.key").read_bytes()
    for command, expected in {
        "pki csr webcsr CN:other": "FAILURE: file 'webcsr.key' already exists",
        "pki csr fresh CN:": "FAILURE: usage: pki csr <basename> CN:<common name>",
        "pki csr fresh cn:lower": "FAILURE: usage: pki csr",
        "pki csr fresh": "FAILURE: usage: pki csr",
        f"pki csr fresh CN:{'x' * 65}": "FAILURE: invalid common name",
        "pki csr ../escape CN:x": "FAILURE: invalid file name '../escape'",
        f"pki csr {'b' * 65} CN:x": "FAILURE: invalid file name",
    }.items():
        out, status = await lab.mmp(node, command)
        assert status == 1 and out.startswith(expected), (command, out)
    assert (up / "webcsr.key").read_bytes() == key_before
    assert not list(up.glob("fresh.*")) and not list(up.glob("b*.key"))


def restore_list(path: Path) -> str:
    r = subprocess.run(
        [str(pgproc.pg_bin() / "pg_restore"), "--list", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def restore_data(path: Path) -> str:
    r = subprocess.run(
        [str(pgproc.pg_bin() / "pg_restore"), "--data-only", "-f", "-", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def check_backup(lab: Lab, node: NodeConfig, name: str, role: str) -> dict[str, Any]:
    up = upload_dir(lab, node)
    bak, desc = up / f"{name}.bak", up / f"{name}.json"
    for path in (bak, desc):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    tables = set(re.findall(r"TABLE public (\w+) ", restore_list(bak)))
    assert tables >= CLUSTER_TABLES, tables
    info = json.loads(desc.read_text())
    data = bak.read_bytes()
    assert info["name"] == name and info["file"] == f"{name}.bak"
    assert (info["node"], info["address"], info["role"]) == (node.name, node.address, role)
    assert info["database"] == "cluster"
    assert re.fullmatch(r"[0-9A-F]+/[0-9A-F]+", info["lsn"]), info["lsn"]
    assert info["size"] == len(data) and info["sha256"] == hashlib.sha256(data).hexdigest()
    taken = dt.datetime.strptime(info["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert abs((dt.datetime.now(dt.UTC) - taken).total_seconds()) < 120
    return info


async def test_backup_snapshot_on_master_and_replica(lab: Lab) -> None:
    master, replica = lab.node(0), lab.node(1)
    await sql(lab_tls(lab, master), "INSERT INTO cospaces (name) VALUES ('in-the-backup')")
    await lab.wait_status(replica, lambda s: s.count("( In Sync )") == 2)
    assert await lab.ok(master, "backup snapshot snap-m1") == "SUCCESS\n"
    assert await lab.ok(replica, "backup snapshot snap_r.1") == "SUCCESS\n"
    check_backup(lab, master, "snap-m1", "master")
    check_backup(lab, replica, "snap_r.1", "replica")
    for node, name in ((master, "snap-m1"), (replica, "snap_r.1")):
        assert "in-the-backup" in restore_data(upload_dir(lab, node) / f"{name}.bak")
    # downloadable by SFTP by bare name, byte for byte
    target = lab.root / "downloaded.bak"
    async with await lab.connect(replica) as conn, conn.start_sftp_client() as sftp:
        await sftp.get("snap_r.1.bak", str(target))
    assert target.read_bytes() == (upload_dir(lab, replica) / "snap_r.1.bak").read_bytes()
    await lab.ok(master, "backup snapshot snap-a")
    assert await lab.ok(master, "backup list") == "snap-a\nsnap-m1\n"
    out, status = await lab.mmp(lab.node(2), "backup list")
    assert (out, status) == ("", 0)


async def test_backup_refusals(lab: Lab) -> None:
    master, replica, _, fresh = lab.cfg.nodes
    up = upload_dir(lab, master)
    before = sorted(p.name for p in up.iterdir())
    usage = "FAILURE: usage: backup snapshot <name> (<name>: 1 to 64 letters, digits"
    for command in (
        "backup snapshot",
        "backup snapshot a b",
        "backup snapshot -x",
        "backup snapshot .hidden",
        "backup snapshot a/b",
        "backup snapshot ../up",
        f"backup snapshot {'n' * 65}",
        "backup snapshot 'a b'",
    ):
        out, status = await lab.mmp(master, command)
        assert status == 1 and out.startswith(usage), (command, out)
    out, status = await lab.mmp(master, "backup snapshot snap-m1")
    assert status == 1 and out == "FAILURE: backup 'snap-m1' already exists (snap-m1.bak)\n"
    (up / "only-json.json").write_text("{}")
    out, status = await lab.mmp(master, "backup snapshot only-json")
    assert status == 1 and "already exists (only-json.json)" in out
    (up / "only-json.json").unlink()
    out, status = await lab.mmp(master, "backup rollback snap-m1")
    assert (out, status) == ("FAILURE: backup rollback is not supported by cmslab\n", 1)
    out, status = await lab.mmp(master, "backup")
    assert status == 1 and out.startswith("FAILURE: unknown command 'backup'")
    assert sorted(p.name for p in up.iterdir()) == before
    out, status = await lab.mmp(fresh, "backup snapshot nothing")
    assert (out, status) == ("FAILURE: this node holds no cluster database to back up\n", 1)
    assert not list(upload_dir(lab, fresh).glob("nothing.*"))
    # busy (A7): a `remove` waiting for its `Y` holds the node's command slot
    async with await lab.connect(replica) as conn:
        proc = await conn.create_process("database cluster remove")
        await asyncio.wait_for(proc.stdout.readuntil("(Y/n) "), 10)
        out, status = await lab.mmp(replica, "backup snapshot while-busy")
        assert (out, status) == ("FAILURE: another database cluster command is in progress\n", 1)
        proc.stdin.write("n\n")
        result = await asyncio.wait_for(proc.wait(), 10)
        assert result.exit_status == 1
    assert not list(upload_dir(lab, replica).glob("while-busy.*"))
    await lab.ok(replica, "backup snapshot after-busy")


def new_pki(lab: Lab, tmp: Path) -> dict[str, dict[str, Path]]:
    """A new CA, a new client pair (CN postgres) and a new server pair per node, as files."""
    tmp.mkdir()
    ca_key, ca_cert = pki.make_ca("renewed CA")
    pki.write_public(tmp / "ca.crt", pki.cert_pem(ca_cert))
    key, cert = pki.issue(ca_key, ca_cert, "postgres")
    pki.write_private(tmp / "client.key", pki.key_pem(key))
    pki.write_public(tmp / "client.crt", pki.cert_pem(cert))
    out = {}
    for n in lab.cfg.nodes[:3]:
        key, cert = pki.issue(ca_key, ca_cert, n.name)
        pki.write_private(tmp / f"{n.name}.key", pki.key_pem(key))
        pki.write_public(tmp / f"{n.name}.crt", pki.cert_pem(cert))
        out[n.name] = {
            "new-server.key": tmp / f"{n.name}.key",
            "new-server.cer": tmp / f"{n.name}.crt",
            "new-client.key": tmp / "client.key",
            "new-client.cer": tmp / "client.crt",
            "new-root.cer": tmp / "ca.crt",
        }
    return out


# Cisco's certificate renewal (TAC 216549) by hand, in three parts: remove the replicas, remove
# the master last, then new `certs` everywhere, `initialize` the former master, join the others.
KEPT = ["first", "in-the-backup", "before-renewal", "only-on-the-master"]


async def test_replica_remove_goes_back_to_its_pre_join_database(lab: Lab) -> None:
    n1, n2, n3, _ = lab.cfg.nodes
    await sql(lab_tls(lab, n1), "INSERT INTO cospaces (name) VALUES ('before-renewal')")
    for n in (n3, n2):
        await lab.wait_status(n, lambda s: "(me)      : Connected Slave ( In Sync )" in s)
        await remove(lab, n)
    # back to the database it had before join (its mark), no cluster data in it
    mark = await sql(local(lab, n2, "postgres"), "SELECT what FROM pre_join_mark")
    assert mark == [("node 2 local",)]
    dbs = await sql(local(lab, n2, "postgres"), "SELECT datname FROM pg_database")
    assert ("cluster",) not in dbs
    out, status = await lab.mmp(n2, "backup snapshot replica-after-remove")
    assert status == 1 and "holds no cluster database" in out


async def test_former_master_keeps_the_cluster_data(lab: Lab) -> None:
    n1 = lab.node(0)
    # a row only the master has (every replica is gone), then the master leaves last
    await sql(lab_tls(lab, n1), "INSERT INTO cospaces (name) VALUES ('only-on-the-master')")
    await remove(lab, n1)
    assert "Status                   : Disabled" in await lab.status(n1)
    assert await names_in(local(lab, n1)) == KEPT  # straight from its unclustered PostgreSQL
    await lab.ok(n1, "backup snapshot kept-on-former-master")
    check_backup(lab, n1, "kept-on-former-master", "unclustered")


async def test_certificate_renewal_by_hand_keeps_the_data(lab: Lab) -> None:
    n1, n2, n3, _ = lab.cfg.nodes
    new = lab.root / "renewed"
    files = new_pki(lab, new)  # a new CA, new pairs, new file names
    for n in (n1, n2, n3):
        async with await lab.connect(n) as conn, conn.start_sftp_client() as sftp:
            for name, src in files[n.name].items():
                await sftp.put(str(src), name)
        await lab.ok(n, "database cluster certs " + " ".join(files[n.name]))
    await lab.ok(n1, "database cluster initialize")
    out = await lab.wait_done(n1, "database cluster initialize")
    assert "(Success)" in out, out + lab.syslog(n1)
    renewed = {
        n.name: tls(lab, n, new / "ca.crt", new / "client.crt", new / "client.key")
        for n in (n1, n2, n3)
    }
    assert await names_in(renewed[n1.name]) == KEPT
    assert await sql(renewed[n1.name], "SELECT address FROM membership") == [(n1.address,)]
    await sql(renewed[n1.name], "INSERT INTO cospaces (name) VALUES ('after-renewal')")
    ids = [r[0] for r in await sql(renewed[n1.name], "SELECT id FROM cospaces ORDER BY id")]
    assert ids == sorted(set(ids)) and len(ids) == len(KEPT) + 1  # the id sequence went on
    for n in (n2, n3):
        await join(lab, n, n1)
    for n in (n1, n2, n3):
        out = await lab.wait_status(n, lambda s: s.count("( In Sync )") == 2)
        assert "new-server.cer" in out and "new-root.cer" in out
    for n in (n1, n2, n3):
        assert await names_in(renewed[n.name]) == [*KEPT, "after-renewal"], n.name
    # the new certificates are in use: the old CA's client is refused
    with pytest.raises(psycopg.OperationalError):
        await sql(lab_tls(lab, n1), "SELECT 1")
    assert UPLOAD_NAMES["ca"] in await lab.ok(n1, "pki list")  # the old files are still there
