"""One emulated CMS node's state: its configuration, directories, state.json, runtime handles
and what its PostgreSQL (pre-cluster and cluster) says about its position.

This is the bottom of the node: the operations (`node_ops`), the status (`node_status`), the
watcher (`node_watch`), the MMP (`mmp`) and the SSH server (`sshserver`) use it, and
`node_runtime` starts and stops the pieces; this module reaches none of them.

The node's *view* of the cluster (status output) is always computed from what PostgreSQL says;
state.json only keeps what the MMP was told (interface, certificate names, the clustered role,
the last command, the error).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmslab import election, pgdb, pgproc
from cmslab.config import LabConfig, LabPaths, NodeConfig
from cmslab.proxy import TcpProxy
from cmslab.state import NodeState
from cmslab.status_text import StatusView
from cmslab.syslog import Syslog

if TYPE_CHECKING:
    import asyncssh

POSITION_SQL = """
SELECT pg_is_in_recovery(),
       (SELECT system_identifier::text FROM pg_control_system()),
       CASE WHEN pg_is_in_recovery()
            THEN COALESCE(pg_last_wal_replay_lsn(), pg_last_wal_receive_lsn())::text
            ELSE pg_current_wal_lsn()::text END,
       (SELECT status FROM pg_stat_wal_receiver),
       current_setting('primary_conninfo'),
       ARRAY(SELECT address FROM membership ORDER BY address)
"""


@dataclass
class Lab:
    paths: LabPaths
    cfg: LabConfig
    password: str
    nodes: dict[str, LabNode] = field(default_factory=dict)


class LabNode:
    def __init__(self, lab: Lab, cfg: NodeConfig) -> None:
        self.lab = lab
        self.cfg = cfg
        self.dir = lab.paths.node_dir(cfg.name)
        self.upload = self.dir / "upload"
        self.local_data = self.dir / "pg-local"
        self.cluster_data = self.dir / "pg-cluster"
        self.run_dir = self.dir / "run"
        self.tls_dir = self.dir / "tls"
        self.log_dir = self.dir / "log"
        self.state_file = self.dir / "state.json"
        self.state = NodeState.load(self.state_file)
        self.syslog = Syslog(self.dir / "syslog", cfg.name)
        self.alive = False
        self.db_blocked = False
        self.lock = asyncio.Lock()  # PostgreSQL lifecycle changes
        self.op_task: asyncio.Task[None] | None = None
        # A clustering command that has passed the busy check but not yet started its task
        # (it may still await the `Y`, a check of the master, ...): claimed synchronously, so a
        # second command arriving meanwhile is refused (docs/assumptions.md, A7).
        self.claimed_by: str | None = None
        self.frozen_view: StatusView | None = None
        self.proxy = TcpProxy(cfg.address, cfg.db_port, cfg.address, cfg.pg_port)
        self.ssh_server: asyncssh.SSHAcceptor | None = None
        self.ssh_conns: set[asyncssh.SSHServerConnection] = set()
        self.watch_server: asyncio.Server | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.watch_info: dict[str, Any] = {"address": cfg.address, "clustered": False}
        self.watch_conn: Any | None = None
        self.ticks: dict[str, int] = {}
        self.last_health_log = 0.0
        self.health_bad = False
        self.state.latency_ms = lab.cfg.latency_ms  # `up --latency-ms`; the fault overrides it
        self.pg_log_offset: dict[str, int] = {}

    # ---------------------------------------------------------------- basics
    @property
    def name(self) -> str:
        return self.cfg.name

    @property
    def address(self) -> str:
        return self.cfg.address

    def save(self) -> None:
        self.state.save(self.state_file)

    def tls(self) -> pgdb.Tls:
        return pgdb.Tls(
            ca=self.tls_dir / "ca.crt",
            cert=self.tls_dir / "client.crt",
            key=self.tls_dir / "client.key",
        )

    def conninfo(self, host: str, dbname: str = pgdb.DB, **extra: str) -> str:
        return pgdb.tls_conninfo(self.tls(), host, self.cfg.db_port, dbname, **extra)

    def replication_conninfo(self, host: str) -> str:
        return self.conninfo(host, "postgres", application_name=self.address)

    def prepare_dirs(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.upload.mkdir(exist_ok=True)
        for d in (self.run_dir, self.tls_dir, self.log_dir):
            d.mkdir(exist_ok=True)
            os.chmod(d, 0o700)
        os.chmod(self.dir, 0o755)
        pgproc.give(self.dir, self.run_dir, self.tls_dir, self.log_dir)
        self.syslog.path.touch()

    def install_tls(self) -> None:
        """Copy the uploaded files named by `certs` into the node's private TLS directory."""
        certs = self.state.certs or []
        names = (
            ["server.key", "server.crt", "client.key", "client.crt", "ca.crt"]
            if len(certs) == 5
            else ["client.key", "client.crt", "ca.crt"]
        )
        for src, dst in zip(certs, names, strict=True):
            target = self.tls_dir / dst
            shutil.copyfile(self.upload / src, target)
            os.chmod(target, 0o600)
            pgproc.give(target)

    # ---------------------------------------------------------------- postgres
    def local_settings(self) -> dict[str, str | int]:
        return {
            "listen_addresses": "",
            "port": self.cfg.pg_port,
            "unix_socket_directories": str(self.run_dir),
            "shared_buffers": "16MB",
            "max_connections": 20,
            "fsync": "off",
            "cluster_name": f"{self.name}-local",
        }

    def cluster_settings(self) -> dict[str, str | int]:
        return {
            "listen_addresses": self.address,
            "port": self.cfg.pg_port,
            "unix_socket_directories": str(self.run_dir),
            "ssl": "on",
            "ssl_cert_file": str(self.tls_dir / "server.crt"),
            "ssl_key_file": str(self.tls_dir / "server.key"),
            "ssl_ca_file": str(self.tls_dir / "ca.crt"),
            "shared_buffers": "16MB",
            "max_connections": 40,
            "wal_level": "replica",
            "max_wal_senders": 10,
            "wal_keep_size": "256MB",
            "hot_standby": "on",
            "wal_receiver_status_interval": "1s",
            "wal_retrieve_retry_interval": "1s",
            "fsync": "off",
            "cluster_name": self.name,
            "log_line_prefix": "%m [%p] ",
        }

    CLUSTER_HBA = (
        "local all all trust",
        "hostssl all postgres 127.0.0.0/8 cert",
        "hostssl replication postgres 127.0.0.0/8 cert",
    )

    async def start_local(self) -> None:
        if not (self.local_data / "PG_VERSION").exists():
            await pgproc.initdb(self.local_data, self.lab.paths.template_dir)
        pgproc.write_conf(self.local_data, self.local_settings(), ["local all all trust"])
        await pgproc.start(self.local_data, self.log_dir / "pg-local.log")

    async def start_unclustered_db(self) -> None:
        """The database of a node that is not clustered: `pg-local`, or none on a light node.

        Nothing an unclustered node answers (status, certs, SFTP, connect) reads it, so a light
        node runs PostgreSQL only while clustered: `initialize`/`join` create `pg-cluster`. The
        data a light former master kept (A3) stays on disk in `pg-local`, not started.
        """
        if self.lab.cfg.light:
            return
        if pgproc.postmaster_pid(self.local_data) is None:
            await self.start_local()

    @contextlib.asynccontextmanager
    async def unclustered_db(self) -> AsyncIterator[bool]:
        """The local database (`pg-local`) running for the block; yields whether it holds a
        `cluster` database: the data a former master kept at its `remove` (A3).

        Yields False without starting anything when the node has no local database (a light
        node that never kept any). A light node's is started for the block only.
        """
        if not (self.local_data / "PG_VERSION").exists():
            yield False
            return
        started = pgproc.postmaster_pid(self.local_data) is None
        if started:
            await self.start_local()
        try:
            conn = await self.local_conn("postgres")
            async with conn:
                rows = await pgdb.fetchall(
                    conn, "SELECT 1 FROM pg_database WHERE datname = %s", pgdb.DB
                )
            yield bool(rows)
        finally:
            if started and self.lab.cfg.light:
                await pgproc.stop(self.local_data)

    async def start_cluster(self) -> None:
        pgproc.write_conf(self.cluster_data, self.cluster_settings(), self.CLUSTER_HBA)
        await pgproc.start(self.cluster_data, self.log_dir / "pg-cluster.log")

    async def stop_all_pg(self, mode: str = "fast") -> None:
        await pgproc.stop(self.cluster_data, mode)
        await pgproc.stop(self.local_data, mode)

    async def local_conn(self, dbname: str = pgdb.DB) -> Any:
        return await pgdb.connect_local(self.run_dir, self.cfg.pg_port, dbname)

    # ---------------------------------------------------------------- local facts
    def timeline(self) -> int:
        tl = 1
        with contextlib.suppress(OSError):
            for n in os.listdir(self.cluster_data / "pg_wal"):
                m = re.fullmatch(r"([0-9A-F]{8})\.history", n)
                if m:
                    tl = max(tl, int(m.group(1), 16))
        return tl

    async def local_position(self) -> tuple[election.Position, list[str], dict[str, Any]]:
        """This node's position, membership and replication facts (a fresh connection)."""
        conn = await self.local_conn()
        async with conn:
            return await self._position(conn)

    async def watch_position(self) -> tuple[election.Position, list[str], dict[str, Any]]:
        """The same through the watcher's long-lived connection (reconnects once if it broke)."""
        for attempt in (1, 2):
            if self.watch_conn is None or self.watch_conn.closed:
                self.watch_conn = await self.local_conn()
            try:
                return await self._position(self.watch_conn)
            except Exception:
                await self.close_watch_conn()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def close_watch_conn(self) -> None:
        conn, self.watch_conn = self.watch_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _position(self, conn: Any) -> tuple[election.Position, list[str], dict[str, Any]]:
        in_rec, sysid, lsn, receiver, conninfo, members = await pgdb.fetchone(conn, POSITION_SQL)
        extra = {
            "receiver": receiver,
            "upstream": pgdb.conninfo_host(conninfo) if in_rec else None,
        }
        pos = election.Position(
            address=self.address,
            clustered=True,
            role=election.REPLICA if in_rec else election.MASTER,
            sysid=sysid,
            timeline=self.timeline(),
            lsn=pgdb.lsn_int(lsn),
            rejoin=self.state.rejoin,
        )
        return pos, list(members), extra

    # ---------------------------------------------------------------- command slot
    def busy(self) -> bool:
        """A clustering command runs (its task) or has claimed the node and not yet started."""
        running = self.op_task is not None and not self.op_task.done()
        return running or self.claimed_by is not None


def node_paths(root: Path, name: str) -> list[Path]:
    """Data directories whose postmaster.pid `down` checks after a crash."""
    d = root / "nodes" / name
    return [d / "pg-local", d / "pg-cluster"]
