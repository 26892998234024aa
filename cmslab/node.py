"""One emulated CMS node: its PostgreSQL (pre-cluster and cluster), proxy, watcher and SSH server.

The node's *view* of the cluster (status output) is always computed from what PostgreSQL says;
state.json only keeps what the MMP was told (interface, certificate names, the clustered role,
the last command, the error).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmslab import election, pgdb, pgproc
from cmslab.config import LabConfig, LabPaths, NodeConfig
from cmslab.proxy import TcpProxy
from cmslab.state import ROLE_CLIENT, ROLE_DATABASE, NodeState
from cmslab.status_text import (
    DISCONNECTED,
    MASTER,
    REPLICA,
    REPLICA_IN_SYNC,
    Member,
    StatusView,
    cert_columns,
)
from cmslab.syslog import Syslog

if TYPE_CHECKING:
    import asyncssh

WATCH_INTERVAL = 0.5
DECIDE_AFTER = 3  # consecutive ticks before promoting / stepping down
STUCK_TICKS = 10  # replica not streaming from a reachable master this long -> re-copy
HEALTH_INTERVAL = 2.0


PG_LOG_LINE = re.compile(r"^\S+ \S+ \S+ \[(\d+)\] (\w+):\s+(.*)$")
PG_SEVERITY = {
    "DEBUG": "debug",
    "LOG": "info",
    "INFO": "info",
    "NOTICE": "notice",
    "WARNING": "warning",
    "ERROR": "err",
    "FATAL": "err",
    "PANIC": "crit",
    "DETAIL": "info",
    "HINT": "info",
    "STATEMENT": "info",
}


class OpFailed(RuntimeError):
    pass


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
        self.frozen_view: StatusView | None = None
        self.proxy = TcpProxy(cfg.address, cfg.db_port, cfg.address, cfg.pg_port)
        self.ssh_server: asyncssh.SSHAcceptor | None = None
        self.ssh_conns: set[asyncssh.SSHServerConnection] = set()
        self.watch_server: asyncio.Server | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.watch_info: dict[str, Any] = {"address": cfg.address, "clustered": False}
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

    async def start_cluster(self) -> None:
        pgproc.write_conf(self.cluster_data, self.cluster_settings(), self.CLUSTER_HBA)
        await pgproc.start(self.cluster_data, self.log_dir / "pg-cluster.log")

    async def stop_all_pg(self, mode: str = "fast") -> None:
        await pgproc.stop(self.cluster_data, mode)
        await pgproc.stop(self.local_data, mode)

    async def local_conn(self, dbname: str = pgdb.DB) -> Any:
        return await pgdb.connect_local(self.run_dir, self.cfg.pg_port, dbname)

    # ---------------------------------------------------------------- power
    async def power_on(self) -> None:
        """Boot: databases first, then the proxy, the watcher and the SSH server."""
        from cmslab.sshserver import start_ssh

        self.prepare_dirs()
        async with self.lock:
            if self.state.role == ROLE_DATABASE and (self.cluster_data / "PG_VERSION").exists():
                if self.state.rejoin:
                    pgproc.set_standby(self.cluster_data, "")
                await self.start_cluster()
            else:
                await self.start_local()
        if not self.db_blocked:
            await self.proxy.start()
        self.watch_server = await asyncio.start_server(
            self._answer_watch, self.address, self.cfg.watch_port, reuse_address=True
        )
        self.ssh_server = await start_ssh(self)
        self.alive = True
        self.tasks = [asyncio.create_task(self._watch_loop(), name=f"watch-{self.name}")]
        self.syslog.log("dbcluster_watcher", "Started")

    async def _close_servers(self) -> None:
        self.alive = False
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(BaseException):
                await t
        self.tasks = []
        if self.op_task is not None and not self.op_task.done():
            self.op_task.cancel()
            with contextlib.suppress(BaseException):
                await self.op_task
        if self.ssh_server is not None:
            self.ssh_server.close()
            for conn in list(self.ssh_conns):
                conn.abort()
            self.ssh_conns.clear()
            self.ssh_server = None
        if self.watch_server is not None:
            self.watch_server.close()
            self.watch_server = None
        await self.proxy.close()

    async def kill(self) -> None:
        """Power loss: everything stops at once (PostgreSQL immediate stop)."""
        was_master = self.watch_info.get("role") == election.MASTER
        await self._close_servers()
        self.watch_info = {"address": self.address, "clustered": False}
        await self.stop_all_pg("immediate")
        if was_master:
            self.state.rejoin = True
        if self.op_task is not None and self.state.last_result == "In progress":
            self.state.last_result = "Failed"
        self.save()

    async def shutdown(self) -> None:
        """Clean stop for `cmslab down` (data stays)."""
        if not self.alive:
            await self.stop_all_pg("fast")
            return
        await self._close_servers()
        await self.stop_all_pg("fast")
        if self.state.last_result == "In progress":
            self.state.last_result = "Failed"
        self.save()

    async def set_db_blocked(self, blocked: bool) -> None:
        self.db_blocked = blocked
        if blocked:
            await self.proxy.close()
        elif self.alive:
            await self.proxy.start()

    # ---------------------------------------------------------------- watcher endpoint
    async def _answer_watch(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            writer.write((json.dumps(self.watch_info) + "\n").encode())
            await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def probe_peer(self, address: str) -> election.Position | None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(address, self.cfg.watch_port), 0.4
            )
            line = await asyncio.wait_for(reader.readline(), 0.4)
            writer.close()
            info = json.loads(line)
        except (OSError, TimeoutError, ValueError):
            return None
        return position_from(info)

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
        conn = await self.local_conn()
        async with conn:
            in_rec, sysid = await pgdb.fetchone(
                conn,
                "SELECT pg_is_in_recovery(),"
                " (SELECT system_identifier::text FROM pg_control_system())",
            )
            if in_rec:
                (lsn,) = await pgdb.fetchone(
                    conn,
                    "SELECT COALESCE(pg_last_wal_replay_lsn(), pg_last_wal_receive_lsn())::text",
                )
            else:
                (lsn,) = await pgdb.fetchone(conn, "SELECT pg_current_wal_lsn()::text")
            members = [r[0] for r in await pgdb.fetchall(conn, "SELECT address FROM membership")]
            rows = await pgdb.fetchall(conn, "SELECT status FROM pg_stat_wal_receiver")
            (conninfo,) = await pgdb.fetchone(conn, "SHOW primary_conninfo")
        extra = {
            "receiver": rows[0][0] if rows else None,
            "upstream": conninfo_host(conninfo) if in_rec else None,
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
        return pos, members, extra

    # ---------------------------------------------------------------- watcher loop
    async def _watch_loop(self) -> None:
        while True:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a tick must never kill the watcher
                self.syslog.log("dbcluster_watcher", f"tick error: {exc}", severity="warning")
            await asyncio.sleep(WATCH_INTERVAL)

    def _count(self, key: str, active: bool) -> int:
        self.ticks[key] = self.ticks.get(key, 0) + 1 if active else 0
        return self.ticks[key]

    def _forward_pg_log(self) -> None:
        """Copy new PostgreSQL server log lines into the node's syslog as `postgres[pid]`."""
        for name in ("pg-local.log", "pg-cluster.log"):
            path = self.log_dir / name
            try:
                size = path.stat().st_size
            except OSError:
                continue
            offset = self.pg_log_offset.setdefault(name, size)
            if size < offset:
                offset = 0
            if size == offset:
                continue
            with path.open("rb") as f:
                f.seek(offset)
                data = f.read(size - offset)
            end = data.rfind(b"\n") + 1
            self.pg_log_offset[name] = offset + end
            for raw in data[:end].decode(errors="replace").splitlines():
                m = PG_LOG_LINE.match(raw)
                if m:
                    self.syslog.log(
                        "postgres",
                        f"{m.group(2)}:  {m.group(3)}",
                        severity=PG_SEVERITY.get(m.group(2), "info"),
                        facility="local0",
                        pid=int(m.group(1)),
                    )

    async def _tick(self) -> None:
        self._forward_pg_log()
        if self.state.role == ROLE_CLIENT:
            self.watch_info = {"address": self.address, "clustered": False}
            await self._health_check(self.state.node_in_use)
            return
        if self.state.role != ROLE_DATABASE or self.lock.locked():
            if self.state.role != ROLE_DATABASE:
                self.watch_info = {"address": self.address, "clustered": False}
            return
        try:
            me, members, extra = await self.local_position()
        except Exception:
            self.watch_info = {"address": self.address, "clustered": False}
            return
        self.watch_info = watch_info(me)
        others = [a for a in members if a != self.address]
        probes = await asyncio.gather(*(self.probe_peer(a) for a in others))
        peers = [p for p in probes if p is not None]
        decision = election.decide(me, peers, members)
        upstream = extra["upstream"]
        if me.role == election.REPLICA and upstream:
            await self._health_check(upstream)
        if self._count("promote", decision.action == "promote") >= DECIDE_AFTER:
            await self._promote(decision.reason)
        elif self._count("step_down", decision.action == "step_down") >= DECIDE_AFTER:
            await self._step_down(decision.reason)
        elif decision.action == "recopy" and decision.target:
            await self._recopy(decision.target, decision.reason)
        elif decision.action == "follow" and decision.target:
            if upstream != decision.target:
                await self._repoint(decision.target)
                self.ticks["stuck"] = 0
            else:
                stuck = extra["receiver"] != "streaming" and await self._reachable(decision.target)
                if self._count("stuck", stuck) >= STUCK_TICKS:
                    await self._recopy(decision.target, "cannot stream from the master")

    async def _reachable(self, address: str) -> bool:
        try:
            _, w = await asyncio.wait_for(asyncio.open_connection(address, self.cfg.db_port), 1)
        except (OSError, TimeoutError):
            return False
        w.close()
        return True

    async def _health_check(self, address: str | None) -> None:
        """sfpool: check the master's database port; log the CMS error line when refused."""
        if not address:
            return
        now = time.monotonic()
        if now - self.last_health_log < HEALTH_INTERVAL:
            return
        self.last_health_log = now
        try:
            _, w = await asyncio.wait_for(asyncio.open_connection(address, self.cfg.db_port), 1)
            w.close()
        except (OSError, TimeoutError) as exc:
            reason = (
                "Connection refused"
                if isinstance(exc, ConnectionRefusedError)
                else "timeout expired"
            )
            self.syslog.log(
                "sfpool",
                f"Health check {address}: error (up = 1): could not connect to server: {reason}\t"
                f'Is the server running on host "{address}" and accepting\t'
                f"TCP/IP connections on port {self.cfg.db_port}?",
                severity="err",
            )
            self.health_bad = True
            return
        if self.health_bad:
            self.syslog.log("sfpool", f"Health check {address}: ok")
            self.health_bad = False

    async def _promote(self, reason: str) -> None:
        async with self.lock:
            self.syslog.log("dbcluster_watcher", f"Promoting {self.address} to master: {reason}")
            conn = await self.local_conn()
            async with conn:
                await conn.execute("SELECT pg_promote(true, 60)")
                await conn.execute("ALTER SYSTEM RESET primary_conninfo")
                await conn.execute("SELECT pg_reload_conf()")
            self.state.rejoin = False
            self.save()
            self.ticks.clear()
            self.syslog.log("dbcluster_watcher", "Operation Complete")

    async def _step_down(self, reason: str) -> None:
        async with self.lock:
            self.syslog.log(
                "dbcluster_watcher",
                f"Stepping down: {reason}; database is read-only",
                severity="warning",
            )
            await pgproc.stop(self.cluster_data, "fast")
            pgproc.set_standby(self.cluster_data, "")
            await self.start_cluster()
            self.ticks.clear()

    async def _repoint(self, master: str) -> None:
        async with self.lock:
            self.syslog.log("dbcluster_watcher", f"Following master {master}")
            conn = await self.local_conn()
            async with conn:
                await conn.execute(
                    "ALTER SYSTEM SET primary_conninfo = %s".replace(
                        "%s", pg_literal(self.replication_conninfo(master))
                    )
                )
                await conn.execute("SELECT pg_reload_conf()")

    async def _recopy(self, master: str, reason: str) -> None:
        async with self.lock:
            self.syslog.log("dbcluster_watcher", f"Re-copying the database from {master}: {reason}")
            await pgproc.stop(self.cluster_data, "fast")
            await pgproc.basebackup(self.cluster_data, self.replication_conninfo(master))
            pgproc.set_standby(self.cluster_data, self.replication_conninfo(master))
            await self.start_cluster()
            self.state.rejoin = False
            self.save()
            self.ticks.clear()
            self.syslog.log("dbcluster_watcher", "Operation Complete")

    # ---------------------------------------------------------------- asynchronous commands
    def busy(self) -> bool:
        return self.op_task is not None and not self.op_task.done()

    async def start_op(self, command: str, body: Callable[[], Awaitable[None]]) -> None:
        self.frozen_view = await self.compute_view()
        self.state.last_command = command
        self.state.last_result = "In progress"
        self.save()
        self.op_task = asyncio.create_task(self._run_op(command, body))

    async def _run_op(self, command: str, body: Callable[[], Awaitable[None]]) -> None:
        try:
            async with self.lock:
                await body()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.state.last_result = "Failed"
            self.syslog.log("dbcluster_watcher", f"'{command}' failed: {exc}", severity="err")
        else:
            self.state.last_result = "Success"
            self.syslog.log("dbcluster_watcher", "Operation Complete")
        finally:
            self.frozen_view = None
            self.ticks.clear()
            self.save()

    async def do_initialize(self) -> None:
        self.install_tls()
        await pgproc.stop(self.local_data)
        try:
            await pgproc.initdb(self.cluster_data, self.lab.paths.template_dir)
            pgproc.clear_standby(self.cluster_data)
            await self.start_cluster()
            conn = await self.local_conn("postgres")
            async with conn:
                await conn.execute("CREATE DATABASE cluster")
            conn = await self.local_conn()
            async with conn:
                await conn.execute(pgdb.SCHEMA)
                await conn.execute(
                    "INSERT INTO membership (address, name) VALUES (%s, %s)",
                    (self.address, self.name),
                )
        except Exception:
            await self._back_to_local()
            raise
        self.state.role = ROLE_DATABASE
        self.state.rejoin = False

    async def do_join(self, master: str) -> None:
        """Copy the master's database, stream from it, then become a member (A1).

        The membership row is added only once this node streams and answers its watcher as a
        clustered replica: a member the master cannot see would count against its majority.
        """
        self.install_tls()
        await pgproc.stop(self.local_data)
        try:
            await pgproc.basebackup(self.cluster_data, self.replication_conninfo(master))
            pgproc.set_standby(self.cluster_data, self.replication_conninfo(master))
            await self.start_cluster()
            await self._wait_streaming(60)
            me, _, _ = await self.local_position()
            self.watch_info = watch_info(me)
            conn = await pgdb.connect_tls(self.conninfo(master))
            async with conn:
                await conn.execute(
                    "INSERT INTO membership (address, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    (self.address, self.name),
                )
        except Exception:
            self.watch_info = {"address": self.address, "clustered": False}
            await self._back_to_local()
            raise
        self.state.role = ROLE_DATABASE
        self.state.rejoin = False

    async def _wait_streaming(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            conn = await self.local_conn()
            async with conn:
                rows = await pgdb.fetchall(conn, "SELECT status FROM pg_stat_wal_receiver")
            if rows and rows[0][0] == "streaming":
                return
            await asyncio.sleep(0.1)
        raise OpFailed("replication did not start")

    async def _back_to_local(self) -> None:
        await pgproc.stop(self.cluster_data, "fast")
        if self.cluster_data.exists():
            shutil.rmtree(self.cluster_data)
        if pgproc.postmaster_pid(self.local_data) is None:
            await self.start_local()

    async def do_remove(self) -> None:
        if self.state.role == ROLE_CLIENT:
            self.state.role = None
            self.state.node_in_use = None
            self.state.known_members = []
            return
        me, _, extra = await self.local_position()
        if me.role == election.MASTER:
            conn = await self.local_conn()
            async with conn:
                await conn.execute("DELETE FROM membership WHERE address = %s", (self.address,))
            self.syslog.log("dbcluster_watcher", "Leaving the cluster: master shutting down")
        else:
            master = extra["upstream"]
            if not master:
                raise OpFailed("no master to leave the cluster through")
            conn = await pgdb.connect_tls(self.conninfo(master))
            async with conn:
                await conn.execute("DELETE FROM membership WHERE address = %s", (self.address,))
        await self._back_to_local()
        self.state.role = None
        self.state.rejoin = False

    async def master_address(self) -> str | None:
        me, _, extra = await self.local_position()
        if me.role == election.MASTER:
            return self.address
        upstream = extra["upstream"]
        return str(upstream) if upstream else None

    async def do_upgrade_schema(self) -> None:
        master = await self.master_address()
        line = self.conninfo(master or "none")
        self.syslog.log("schema_builder", f"Upgrading schema with connect line '{line}'")
        try:
            if self.state.schema_error_armed:
                self.state.schema_error_armed = False
                raise OpFailed("schema upgrade script failed (injected fault)")
            if master is None:
                raise OpFailed("no master")
            conn = await pgdb.connect_tls(line)
            async with conn, conn.transaction():
                (version,) = await pgdb.fetchone(
                    conn, "SELECT version FROM schema_version FOR UPDATE"
                )
                await conn.execute("UPDATE schema_version SET version = %s", (version + 1,))
                await conn.execute(
                    "INSERT INTO schema_history (version, applied_by) VALUES (%s, %s)",
                    (version + 1, self.address),
                )
        except Exception as exc:
            self.state.error = "Couldn't upgrade the schema"
            self.syslog.log("schema_builder", f"Schema upgrade failed: {exc}", severity="err")
            raise
        self.syslog.log("schema_builder", "Schema upgrade complete")

    async def check_master(self, address: str) -> str | None:
        """None when `address` answers over TLS as a master, else the reason it does not."""
        try:
            conn = await pgdb.connect_tls(self.conninfo(address))
            async with conn:
                (in_rec,) = await pgdb.fetchone(conn, "SELECT pg_is_in_recovery()")
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return f"cannot connect to {address}: {first}"
        if in_rec:
            return f"{address} is not a master"
        return None

    # ---------------------------------------------------------------- status
    async def compute_view(self) -> StatusView:
        base = StatusView(
            status="Error" if self.state.error else "Enabled",
            interface=self.state.interface,
            certs=cert_columns(self.state.certs),
            last_command=self.state.last_command,
            last_result=self.state.last_result,
            error=self.state.error,
        )
        if self.state.role is None:
            return replace(base, status="Error" if self.state.error else "Disabled")
        if self.state.role == ROLE_CLIENT:
            members, in_use = await self._client_members()
            return replace(base, members=members, node_in_use=in_use)
        try:
            members, in_use = await self._database_members()
        except Exception:
            members, in_use = (Member(self.address, DISCONNECTED, me=True),), None
        return replace(base, members=members, node_in_use=in_use)

    async def status_view(self) -> StatusView:
        if self.busy() and self.frozen_view is not None:
            v = self.frozen_view
            return StatusView(
                status=v.status,
                error=self.state.error,
                members=v.members,
                node_in_use=v.node_in_use,
                interface=self.state.interface,
                certs=cert_columns(self.state.certs),
                last_command=self.state.last_command,
                last_result=self.state.last_result,
            )
        return await self.compute_view()

    async def _remote_view(self, address: str) -> pgdb.MasterView | None:
        try:
            conn = await pgdb.connect_tls(self.conninfo(address))
            async with conn:
                return await pgdb.master_view(conn)
        except Exception:
            return None

    async def _database_members(self) -> tuple[tuple[Member, ...], str | None]:
        conn = await self.local_conn()
        async with conn:
            view = await pgdb.master_view(conn)
            rows = await pgdb.fetchall(conn, "SELECT status FROM pg_stat_wal_receiver")
            (conninfo,) = await pgdb.fetchone(conn, "SHOW primary_conninfo")
            (replay,) = await pgdb.fetchone(conn, "SELECT pg_last_wal_replay_lsn()::text")
        if not view.in_recovery:
            members = tuple(
                Member(a, MASTER, me=True)
                if a == self.address
                else Member(a, sender_state(view, a))
                for a, _ in view.address_members
            )
            return members, self.address
        upstream = conninfo_host(conninfo)
        streaming = bool(rows) and rows[0][0] == "streaming"
        remote = await self._remote_view(upstream) if upstream else None
        if remote is None or remote.in_recovery:
            members = tuple(
                Member(a, REPLICA, me=True) if a == self.address else Member(a, DISCONNECTED)
                for a, _ in view.address_members
            )
            return members, None
        out = []
        for a, _ in remote.address_members:
            if a == self.address:
                synced = streaming and pgdb.lsn_int(replay) >= remote.current_lsn
                out.append(Member(a, REPLICA_IN_SYNC if synced else REPLICA, me=True))
            elif a == upstream:
                out.append(Member(a, MASTER if streaming else DISCONNECTED))
            else:
                out.append(Member(a, sender_state(remote, a)))
        return tuple(out), upstream

    async def _client_members(self) -> tuple[tuple[Member, ...], str | None]:
        candidates = [self.state.node_in_use or "", *self.state.known_members]
        for address in dict.fromkeys(a for a in candidates if a):
            remote = await self._remote_view(address)
            if remote is None or remote.in_recovery:
                continue
            members = tuple(
                Member(a, MASTER) if a == address else Member(a, sender_state(remote, a))
                for a, _ in remote.address_members
            )
            self.state.node_in_use = address
            self.state.known_members = [a for a, _ in remote.address_members]
            self.save()
            return members, address
        return tuple(Member(a, DISCONNECTED) for a in self.state.known_members), None


def watch_info(me: election.Position) -> dict[str, Any]:
    return {
        "address": me.address,
        "clustered": True,
        "role": me.role,
        "sysid": me.sysid,
        "timeline": me.timeline,
        "lsn": me.lsn,
        "rejoin": me.rejoin,
    }


def sender_state(view: pgdb.MasterView, address: str) -> str:
    sender = view.senders.get(address)
    if sender is None:
        return DISCONNECTED
    state, replay = sender
    if state == "streaming" and replay >= view.current_lsn:
        return REPLICA_IN_SYNC
    return REPLICA


def conninfo_host(conninfo: str | None) -> str | None:
    if not conninfo:
        return None
    m = re.search(r"(?:^|\s)host=('?)([^\s']+)\1", conninfo)
    return m.group(2) if m else None


def pg_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def position_from(info: dict[str, Any]) -> election.Position:
    return election.Position(
        address=str(info.get("address", "")),
        clustered=bool(info.get("clustered")),
        role=info.get("role"),
        sysid=str(info.get("sysid", "")),
        timeline=int(info.get("timeline", 0)),
        lsn=int(info.get("lsn", 0)),
        rejoin=bool(info.get("rejoin", False)),
    )


def node_paths(root: Path, name: str) -> list[Path]:
    """Data directories whose postmaster.pid `down` checks after a crash."""
    d = root / "nodes" / name
    return [d / "pg-local", d / "pg-cluster"]
