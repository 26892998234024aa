"""End to end on one 3-node lab: files, OpenSSH, MMP errors, manual cluster build, TLS, faults.

Tests run in file order and share the lab: the cluster is built by `test_build_cluster_by_hand`
and later tests use it.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
from pathlib import Path

import asyncssh
import psycopg
import pytest
from ruamel.yaml import YAML

from cmslab import labfiles, pki
from reconciler.spec.loader import load_spec

from .labkit import UPLOAD_NAMES, Lab, eventually

pytestmark = pytest.mark.lab

LAB_BASE = "127.0.11.1"


def openssh(
    lab: Lab, node_index: int, command: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    node = lab.node(node_index)
    askpass = tmp_path / "askpass.sh"
    askpass.write_text(f"#!/bin/sh\ncat '{lab.paths.password_file}'\n")
    askpass.chmod(0o700)
    env = {**os.environ, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force"}
    env.pop("SSH_AUTH_SOCK", None)
    return subprocess.run(
        [
            "ssh",
            "-F",
            "/dev/null",
            "-p",
            str(node.ssh_port),
            "-o",
            f"UserKnownHostsFile={lab.paths.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "BatchMode=no",
            f"admin@{node.address}",
            command,
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_lab_files(lab: Lab) -> None:
    root = lab.root
    spec = YAML(typ="safe").load((root / "lab.yaml").read_text())
    assert spec["master"] == "cms-lab-1"
    assert [n["address"] for n in spec["nodes"]] == [n.address for n in lab.cfg.nodes]
    assert spec["ssh"]["password_env"] == "CMSLAB_PASSWORD"
    assert "export CMSLAB_PASSWORD=$(cat" in (root / "lab.yaml").read_text()
    for n in spec["nodes"]:
        for rel in (n["certificates"]["server"]["cert"], n["certificates"]["ca"]):
            assert (root / rel).is_file()
    client = pki.load_cert(root / labfiles.CLIENT_CERT)
    assert client.subject.rfc4514_string() == "CN=postgres"
    for secret in [root / "admin-password", *sorted((root / "keys").iterdir())]:
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    # the reconciler accepts it as it is, certificate files included
    loaded = load_spec(root / "lab.yaml")
    assert loaded.spec.master == "cms-lab-1"
    assert [n.mmp_port for n in loaded.spec.nodes] == [n.ssh_port for n in lab.cfg.nodes]
    first = lab.node(0)
    assert (
        (root / "known_hosts")
        .read_text()
        .startswith(f"[{first.address}]:{first.ssh_port} ssh-ed25519 ")
    )


def test_openssh_client_runs_status(lab: Lab, tmp_path: Path) -> None:
    r = openssh(lab, 0, "database cluster status", tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Status") and lines[0].endswith(": Disabled")
    assert "Last command             : none" in lines
    bad = openssh(lab, 0, "database cluster frobnicate", tmp_path)
    assert bad.returncode == 1
    assert bad.stdout.startswith("FAILURE: unknown command 'database cluster frobnicate'")


async def test_wrong_password_refused(lab: Lab) -> None:
    node = lab.node(0)
    with pytest.raises(asyncssh.PermissionDenied):
        await asyncssh.connect(
            node.address,
            node.ssh_port,
            username="admin",
            password="wrong",
            known_hosts=str(lab.paths.known_hosts),
            client_keys=None,
            agent_path=None,
        )


async def test_bad_commands_change_nothing(lab: Lab) -> None:
    node = lab.node(2)
    before = await lab.status(node)
    cases = {
        "database cluster bogus": "FAILURE: unknown command",
        "database cluster localnode z": "FAILURE: usage: database cluster localnode",
        "database cluster join": "FAILURE: usage: database cluster join",
        "database cluster certs a b": "FAILURE: usage: database cluster certs",
        "database cluster certs a b c": "FAILURE: file 'a' not found",
        "database cluster initialize now": "FAILURE: usage: database cluster initialize",
        "database cluster initialize": "FAILURE: no interface",
        "database cluster remove": "FAILURE: this node is not in a database cluster",
        "pki inspect nothing.cer": "FAILURE: no such file",
    }
    for command, expected in cases.items():
        out, status = await lab.mmp(node, command)
        assert status == 1, (command, out)
        assert out.startswith(expected), (command, out)
    assert await lab.status(node) == before


async def test_interactive_shell_prompt(lab: Lab) -> None:
    node = lab.node(0)
    async with await lab.connect(node) as conn:
        proc = await conn.create_process(term_type="xterm")
        prompt = f"{node.name}> "
        out = await asyncio.wait_for(proc.stdout.readuntil(prompt), 10)
        assert out.endswith(prompt)
        proc.stdin.write("hostname\n")
        out = await asyncio.wait_for(proc.stdout.readuntil(prompt), 10)
        assert node.name in out.replace(prompt, "")
        proc.stdin.write("exit\n")
        await asyncio.wait_for(proc.wait_closed(), 10)


async def test_pki_csr_list_inspect(lab: Lab) -> None:
    node = lab.node(1)
    await lab.ok(node, "pki csr webadmin CN:cms-lab-2.example.com")
    listing = await lab.ok(node, "pki list")
    assert "webadmin.key" in listing and "webadmin.csr" in listing
    await lab.upload_certs(node)
    out = await lab.ok(node, f"pki inspect {UPLOAD_NAMES['server_crt']}")
    assert "Subject: CN=cms-lab-2" in out and "Issuer: CN=cmslab CA" in out
    assert "Not valid after:" in out


async def test_build_cluster_by_hand(lab: Lab) -> None:
    await lab.build_cluster()
    master = lab.node(0)
    for n in lab.cfg.nodes:
        out = await lab.wait_status(n, lambda s: s.count("( In Sync )") == 2)
        assert "Status                   : Enabled" in out
        assert f"Node in use              : {master.address}" in out
        assert f"{n.address} (me)" in out
    out = await lab.status(master)
    assert f"{master.address} (me)      : Connected Master" in out


def tls_conninfo(lab: Lab, address: str, cert: Path, key: Path, ca: Path | None = None) -> str:
    root = lab.root
    return (
        f"host={address} port={lab.node(0).db_port} user=postgres dbname=cluster "
        f"sslmode=verify-ca sslrootcert={ca or root / labfiles.CA_CERT} "
        f"sslcert={cert} sslkey={key} connect_timeout=5"
    )


def client_tls(lab: Lab, address: str) -> str:
    return tls_conninfo(
        lab, address, lab.root / labfiles.CLIENT_CERT, lab.root / labfiles.CLIENT_KEY
    )


async def test_row_written_on_master_reaches_every_replica(lab: Lab) -> None:
    master, *replicas = lab.cfg.nodes
    async with await psycopg.AsyncConnection.connect(
        client_tls(lab, master.address), autocommit=True
    ) as conn:
        await conn.execute("INSERT INTO cospaces (name) VALUES ('replicated-row')")

    for r in replicas:

        async def seen(address: str = r.address) -> bool:
            async with await psycopg.AsyncConnection.connect(client_tls(lab, address)) as c:
                cur = await c.execute("SELECT count(*) FROM cospaces WHERE name = 'replicated-row'")
                row = await cur.fetchone()
                return row is not None and row[0] == 1

        await eventually(seen, what=f"row on {r.name}")
        out = await lab.wait_status(r, lambda s: s.count("( In Sync )") == 2)
        assert f"{r.address} (me)      : Connected Slave ( In Sync )" in out


async def test_wrong_client_certificates_refused(lab: Lab, tmp_path: Path) -> None:
    master = lab.node(0)
    ca_key = pki.load_key(lab.root / labfiles.CA_KEY)
    ca_cert = pki.load_cert(lab.root / labfiles.CA_CERT)
    # right CA, wrong CN
    key, cert = pki.issue(ca_key, ca_cert, "not-postgres")
    pki.write_private(tmp_path / "cn.key", pki.key_pem(key))
    pki.write_public(tmp_path / "cn.crt", pki.cert_pem(cert))
    with pytest.raises(psycopg.OperationalError, match="certificate authentication failed"):
        await psycopg.AsyncConnection.connect(
            tls_conninfo(lab, master.address, tmp_path / "cn.crt", tmp_path / "cn.key")
        )
    # CN postgres, signed by another CA
    other_key, other_ca = pki.make_ca("rogue CA")
    key, cert = pki.issue(other_key, other_ca, "postgres")
    pki.write_private(tmp_path / "rogue.key", pki.key_pem(key))
    pki.write_public(tmp_path / "rogue.crt", pki.cert_pem(cert))
    with pytest.raises(psycopg.OperationalError):
        await psycopg.AsyncConnection.connect(
            tls_conninfo(lab, master.address, tmp_path / "rogue.crt", tmp_path / "rogue.key")
        )
    # the right one works
    async with await psycopg.AsyncConnection.connect(client_tls(lab, master.address)) as conn:
        cur = await conn.execute("SELECT pg_is_in_recovery()")
        assert await cur.fetchone() == (False,)


async def test_clustered_node_refuses_changes(lab: Lab) -> None:
    master, replica, _ = lab.cfg.nodes
    before = await lab.status(replica)
    names = " ".join(UPLOAD_NAMES.values())
    for command, expected in {
        f"database cluster certs {names}": "FAILURE: cannot change certificates while clustered",
        "database cluster initialize": "FAILURE: this node is already in a database cluster",
        f"database cluster join {master.address}": "FAILURE: this node is already",
    }.items():
        out, status = await lab.mmp(replica, command)
        assert status == 1 and out.startswith(expected), (command, out)
    out, status = await lab.mmp(replica, "database cluster remove", stdin="n\n")
    assert status == 1 and "FAILURE: not confirmed" in out
    out, status = await lab.mmp(replica, "database cluster remove", stdin="y\n")
    assert status == 1 and "FAILURE: not confirmed" in out
    assert await lab.status(replica) == before


async def test_schema_error_then_clear_and_retry(lab: Lab) -> None:
    replica = lab.node(2)
    lab.fault(replica, "schema-error")
    await lab.ok(replica, "database cluster upgrade_schema")
    out = await lab.wait_done(replica, "database cluster upgrade_schema")
    lines = out.splitlines()
    assert lines[0] == "ERROR                    : Couldn't upgrade the schema"
    assert lines[1] == "Status                   : Error"
    assert "'database cluster upgrade_schema' (Failed)" in out
    refused, status = await lab.mmp(replica, "database cluster upgrade_schema")
    assert status == 1 and "clear error" in refused
    await lab.ok(replica, "database cluster clear error")
    await lab.ok(replica, "database cluster upgrade_schema")
    out = await lab.wait_done(replica, "database cluster upgrade_schema")
    assert "(Success)" in out and "ERROR" not in out
    assert "Status                   : Enabled" in out
    log = await lab.ok(replica, "syslog")
    assert "schema_builder" in log and "sslmode=verify-ca" in log
    assert "Schema upgrade complete" in log
    async with await psycopg.AsyncConnection.connect(client_tls(lab, lab.node(0).address)) as c:
        cur = await c.execute("SELECT version FROM schema_version")
        assert await cur.fetchone() == (2,)


async def test_block_db_on_master(lab: Lab) -> None:
    master, *replicas = lab.cfg.nodes
    lab.fault(master, "block-db")
    try:
        for r in replicas:
            out = await lab.wait_status(
                r, lambda s: f"{master.address}           : Disconnected" in s
            )
            assert "( In Sync )" not in out
        expected = (
            f"sfpool[{{pid}}]: Health check {master.address}: error (up = 1): could not connect to "
            f'server: Connection refused#011Is the server running on host "{master.address}" '
            f"and accepting#011TCP/IP connections on port {master.db_port}?"
        )

        async def logged() -> bool:
            log = await lab.ok(replicas[0], "syslog")
            return any(
                line.split("sfpool[", 1)[1].split("]", 1)[1] == expected.split("]", 1)[1]
                for line in log.splitlines()
                if "sfpool[" in line
            )

        await eventually(logged, what="the sfpool health-check line")
        # no election: the master is still alive (only its database port is cut)
        out = await lab.status(master)
        assert f"{master.address} (me)      : Connected Master" in out
    finally:
        lab.fault(master, "unblock-db")
    for r in replicas:
        await lab.wait_status(r, lambda s: s.count("( In Sync )") == 2)


async def test_syslog_follow_streams(lab: Lab) -> None:
    master, replica, _ = lab.cfg.nodes
    async with await lab.connect(replica) as conn:
        proc = await conn.create_process("syslog follow")
        lab.fault(master, "block-db")
        try:
            line = ""
            while "Health check" not in line:
                line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert f"{replica.name} sfpool[" in line
        finally:
            lab.fault(master, "unblock-db")
        proc.close()
    await lab.wait_status(replica, lambda s: s.count("( In Sync )") == 2)
