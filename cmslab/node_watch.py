"""dbcluster_watcher and sfpool of one node: election actions (A1/A2), health checks, and the
copy of PostgreSQL's server log into the node's syslog. Runs every WATCH_INTERVAL seconds.

Also the watcher endpoint (`address:watch_port`): it answers the node's position as one JSON
line, and `probe_peer` reads a peer's."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
from typing import TYPE_CHECKING

from cmslab import election, pgdb, pgproc
from cmslab.state import ROLE_CLIENT, ROLE_DATABASE

if TYPE_CHECKING:
    from cmslab.node import LabNode

PROBE_TIMEOUT = 1.0  # a peer's watcher must answer within this (refused = at once)
WATCH_INTERVAL = 0.5
PROMOTE_AFTER = 3  # consecutive ticks seeing no master (and winning) before promoting
STEP_DOWN_AFTER = 6  # consecutive ticks without a majority before a master steps down
LOCAL_MISSES = 4  # failed local queries before this node reports itself unclustered
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


async def start_endpoint(node: LabNode) -> asyncio.Server:
    """Listen on the watcher endpoint; each connection gets `node.watch_info` as one line."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write((json.dumps(node.watch_info) + "\n").encode())
            await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    return await asyncio.start_server(answer, node.address, node.cfg.watch_port, reuse_address=True)


async def probe_peer(node: LabNode, address: str) -> election.Position | None:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(address, node.cfg.watch_port), PROBE_TIMEOUT
        )
        line = await asyncio.wait_for(reader.readline(), PROBE_TIMEOUT)
        writer.close()
        info = json.loads(line)
    except (OSError, TimeoutError, ValueError):
        return None
    return election.position_from(info)


async def watch_loop(node: LabNode) -> None:
    while True:
        try:
            await tick(node)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a tick must never kill the watcher
            node.syslog.log("dbcluster_watcher", f"tick error: {exc}", severity="warning")
        await asyncio.sleep(WATCH_INTERVAL)


def count(node: LabNode, key: str, active: bool) -> int:
    node.ticks[key] = node.ticks.get(key, 0) + 1 if active else 0
    return node.ticks[key]


def forward_pg_log(node: LabNode) -> None:
    """Copy new PostgreSQL server log lines into the node's syslog as `postgres[pid]`."""
    for name in ("pg-local.log", "pg-cluster.log"):
        path = node.log_dir / name
        try:
            size = path.stat().st_size
        except OSError:
            continue
        offset = node.pg_log_offset.setdefault(name, size)
        if size < offset:
            offset = 0
        if size == offset:
            continue
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read(size - offset)
        end = data.rfind(b"\n") + 1
        node.pg_log_offset[name] = offset + end
        for raw in data[:end].decode(errors="replace").splitlines():
            m = PG_LOG_LINE.match(raw)
            if m:
                node.syslog.log(
                    "postgres",
                    f"{m.group(2)}:  {m.group(3)}",
                    severity=PG_SEVERITY.get(m.group(2), "info"),
                    facility="local0",
                    pid=int(m.group(1)),
                )


async def tick(node: LabNode) -> None:
    forward_pg_log(node)
    if node.state.role == ROLE_CLIENT:
        node.watch_info = {"address": node.address, "clustered": False}
        await health_check(node, node.state.node_in_use)
        return
    if node.state.role != ROLE_DATABASE or node.lock.locked():
        if node.state.role != ROLE_DATABASE:
            node.watch_info = {"address": node.address, "clustered": False}
        return
    try:
        me, members, extra = await node.watch_position()
    except Exception:
        # a slow or restarting database: keep answering the last position for a while
        if count(node, "local_miss", True) >= LOCAL_MISSES:
            node.watch_info = {"address": node.address, "clustered": False}
        return
    node.ticks["local_miss"] = 0
    node.watch_info = election.watch_info(me)
    others = [a for a in members if a != node.address]
    probes = await asyncio.gather(*(probe_peer(node, a) for a in others))
    peers = [p for p in probes if p is not None]
    decision = election.decide(me, peers, members)
    upstream = extra["upstream"]
    if me.role == election.REPLICA and upstream:
        await health_check(node, upstream)
    if count(node, "promote", decision.action == "promote") >= PROMOTE_AFTER:
        await promote(node, decision.reason)
    elif count(node, "step_down", decision.action == "step_down") >= STEP_DOWN_AFTER:
        await step_down(node, decision.reason)
    elif decision.action == "recopy" and decision.target:
        await recopy(node, decision.target, decision.reason)
    elif decision.action == "follow" and decision.target:
        if upstream != decision.target:
            await repoint(node, decision.target)
            node.ticks["stuck"] = 0
        else:
            stuck = extra["receiver"] != "streaming" and await reachable(node, decision.target)
            if count(node, "stuck", stuck) >= STUCK_TICKS:
                await recopy(node, decision.target, "cannot stream from the master")


async def reachable(node: LabNode, address: str) -> bool:
    try:
        _, w = await asyncio.wait_for(asyncio.open_connection(address, node.cfg.db_port), 1)
    except (OSError, TimeoutError):
        return False
    w.close()
    return True


async def health_check(node: LabNode, address: str | None) -> None:
    """sfpool: check the master's database port; log the CMS error line when refused."""
    if not address:
        return
    now = time.monotonic()
    if now - node.last_health_log < HEALTH_INTERVAL:
        return
    node.last_health_log = now
    try:
        _, w = await asyncio.wait_for(asyncio.open_connection(address, node.cfg.db_port), 1)
        w.close()
    except (OSError, TimeoutError) as exc:
        reason = (
            "Connection refused" if isinstance(exc, ConnectionRefusedError) else "timeout expired"
        )
        node.syslog.log(
            "sfpool",
            f"Health check {address}: error (up = 1): could not connect to server: {reason}\t"
            f'Is the server running on host "{address}" and accepting\t'
            f"TCP/IP connections on port {node.cfg.db_port}?",
            severity="err",
        )
        node.health_bad = True
        return
    if node.health_bad:
        node.syslog.log("sfpool", f"Health check {address}: ok")
        node.health_bad = False


async def promote(node: LabNode, reason: str) -> None:
    async with node.lock:
        node.syslog.log("dbcluster_watcher", f"Promoting {node.address} to master: {reason}")
        conn = await node.local_conn()
        async with conn:
            await conn.execute("SELECT pg_promote(true, 60)")
            await conn.execute("ALTER SYSTEM RESET primary_conninfo")
            await conn.execute("SELECT pg_reload_conf()")
        node.state.rejoin = False
        node.save()
        node.ticks.clear()
        node.syslog.log("dbcluster_watcher", "Operation Complete")


async def step_down(node: LabNode, reason: str) -> None:
    async with node.lock:
        node.syslog.log(
            "dbcluster_watcher",
            f"Stepping down: {reason}; database is read-only",
            severity="warning",
        )
        await pgproc.stop(node.cluster_data, "fast")
        pgproc.set_standby(node.cluster_data, "")
        await node.start_cluster()
        node.ticks.clear()


async def repoint(node: LabNode, master: str) -> None:
    async with node.lock:
        node.syslog.log("dbcluster_watcher", f"Following master {master}")
        conn = await node.local_conn()
        async with conn:
            await conn.execute(
                "ALTER SYSTEM SET primary_conninfo = %s".replace(
                    "%s", pgdb.pg_literal(node.replication_conninfo(master))
                )
            )
            await conn.execute("SELECT pg_reload_conf()")


async def recopy(node: LabNode, master: str, reason: str) -> None:
    """Copy the master's database beside the current one, then swap (a failed copy loses
    nothing: the old database keeps running)."""
    if not await reachable(node, master):
        return
    async with node.lock:
        node.syslog.log("dbcluster_watcher", f"Re-copying the database from {master}: {reason}")
        fresh = node.cluster_data.with_name("pg-cluster.new")
        await pgproc.basebackup(fresh, node.replication_conninfo(master))
        await pgproc.stop(node.cluster_data, "fast")
        shutil.rmtree(node.cluster_data, ignore_errors=True)
        fresh.rename(node.cluster_data)
        pgproc.set_standby(node.cluster_data, node.replication_conninfo(master))
        await node.start_cluster()
        node.state.rejoin = False
        node.save()
        node.ticks.clear()
        node.syslog.log("dbcluster_watcher", "Operation Complete")
