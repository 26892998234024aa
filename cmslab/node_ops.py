"""The asynchronous MMP clustering commands of one node: initialize, join, remove, upgrade_schema.

`start_op` records `(In progress)`, freezes the status view from before the command and runs the
body in the background under the node's lock; the result becomes `(Success)` or `(Failed)`.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import psycopg

from cmslab import election, node_status, pgdb, pgproc
from cmslab.state import ROLE_CLIENT, ROLE_DATABASE

if TYPE_CHECKING:
    from cmslab.node import LabNode


class OpFailed(RuntimeError):
    pass


async def start_op(node: LabNode, command: str, body: Callable[[], Awaitable[None]]) -> None:
    node.frozen_view = await node_status.compute_view(node)
    node.state.last_command = command
    node.state.last_result = "In progress"
    node.save()
    node.op_task = asyncio.create_task(run_op(node, command, body))


async def run_op(node: LabNode, command: str, body: Callable[[], Awaitable[None]]) -> None:
    try:
        async with node.lock:
            await body()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        node.state.last_result = "Failed"
        node.syslog.log("dbcluster_watcher", f"'{command}' failed: {exc}", severity="err")
    else:
        node.state.last_result = "Success"
        node.syslog.log("dbcluster_watcher", "Operation Complete")
    finally:
        node.frozen_view = None
        node.ticks.clear()
        node.save()


async def do_initialize(node: LabNode) -> None:
    """Make this node's own database the master of a new cluster (A3).

    The local database is set aside as `join` does. When it holds a `cluster` database (the
    data a former master kept at its `remove`), its rows are carried into the new cluster (a
    dump restored into a fresh data directory: new WAL, not a continuation of the old
    cluster's that a node still following it could stream on from) and the membership is
    reset to this node; otherwise the new cluster database is empty.
    """
    node.install_tls()
    kept: bytes | None = None
    async with node.unclustered_db() as holds_cluster:
        if holds_cluster:
            kept = await pgproc.dump(node.run_dir, node.cfg.pg_port, pgdb.DB)
    await pgproc.stop(node.local_data)
    try:
        await pgproc.initdb(node.cluster_data, node.lab.paths.template_dir)
        pgproc.clear_standby(node.cluster_data)
        await node.start_cluster()
        conn = await node.local_conn("postgres")
        async with conn:
            await conn.execute("CREATE DATABASE cluster")
        if kept is not None:
            await restore_kept(node, kept)
        conn = await node.local_conn()
        async with conn:
            if kept is None:
                await conn.execute(pgdb.SCHEMA)
            await conn.execute("DELETE FROM membership")
            await conn.execute(
                "INSERT INTO membership (address, name) VALUES (%s, %s)",
                (node.address, node.name),
            )
    except Exception:
        await back_to_local(node)
        raise
    node.state.role = ROLE_DATABASE
    node.state.rejoin = False


async def restore_kept(node: LabNode, dump: bytes) -> None:
    """The kept `cluster` database's rows into the new cluster's (empty) `cluster` database."""
    path = node.run_dir / "initialize.dump"
    pgproc.write_file(path, "")
    path.write_bytes(dump)
    try:
        await pgproc.restore(node.run_dir, node.cfg.pg_port, pgdb.DB, path)
    finally:
        path.unlink(missing_ok=True)
    node.syslog.log("dbcluster_watcher", "New cluster from the database kept on this node")


async def do_join(node: LabNode, master: str) -> None:
    """Copy the master's database, stream from it, then become a member (A1).

    The membership row is added only once this node streams and answers its watcher as a
    clustered replica: a member the master cannot see would count against its majority.
    """
    node.install_tls()
    await pgproc.stop(node.local_data)
    try:
        await pgproc.basebackup(node.cluster_data, node.replication_conninfo(master))
        pgproc.set_standby(node.cluster_data, node.replication_conninfo(master))
        await node.start_cluster()
        await wait_streaming(node, 60)
        me, _, _ = await node.local_position()
        node.watch_info = election.watch_info(me)
        conn = await pgdb.connect_tls(node.conninfo(master))
        async with conn:
            await conn.execute(
                "INSERT INTO membership (address, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (node.address, node.name),
            )
    except Exception:
        node.watch_info = {"address": node.address, "clustered": False}
        await back_to_local(node)
        raise
    node.state.role = ROLE_DATABASE
    node.state.rejoin = False


async def wait_streaming(node: LabNode, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = await node.local_conn()
        async with conn:
            rows = await pgdb.fetchall(conn, "SELECT status FROM pg_stat_wal_receiver")
        if rows and rows[0][0] == "streaming":
            return
        await asyncio.sleep(0.1)
    raise OpFailed("replication did not start")


async def back_to_local(node: LabNode) -> None:
    """Drop the cluster copy and go back to the local database set aside (a replica, A3)."""
    await pgproc.stop(node.cluster_data, "fast")
    if node.cluster_data.exists():
        shutil.rmtree(node.cluster_data)
    await node.start_unclustered_db()


async def keep_cluster_data(node: LabNode) -> None:
    """A former master keeps the cluster's data (A3): after a fast shutdown (its WAL reaches the
    connected replicas first) `pg-cluster` becomes its local database `pg-local`, replacing the
    one set aside; a light node keeps it on disk without starting it."""
    await pgproc.stop(node.cluster_data, "fast")
    await pgproc.stop(node.local_data)
    if node.local_data.exists():
        shutil.rmtree(node.local_data)
    node.cluster_data.rename(node.local_data)
    pgproc.clear_standby(node.local_data)
    await node.start_unclustered_db()


async def do_remove(node: LabNode) -> None:
    if node.state.role == ROLE_CLIENT:
        node.state.role = None
        node.state.node_in_use = None
        node.state.known_members = []
        return
    me, _, extra = await node.local_position()
    if me.role == election.MASTER:
        conn = await node.local_conn()
        async with conn:
            await conn.execute("DELETE FROM membership WHERE address = %s", (node.address,))
        node.syslog.log("dbcluster_watcher", "Leaving the cluster: master shutting down")
        await keep_cluster_data(node)
    else:
        master = extra["upstream"]
        try:
            if not master:
                raise OSError("no master is configured")
            conn = await pgdb.connect_tls(node.conninfo(master))
            async with conn:
                await conn.execute("DELETE FROM membership WHERE address = %s", (node.address,))
        except (OSError, psycopg.Error) as exc:
            # A9: with no master to answer, the replica leaves on its own; the membership
            # the others keep still lists it (it counts against their majority, A1).
            node.syslog.log(
                "dbcluster_watcher",
                f"Leaving the cluster without a master ({exc}): the membership is not updated",
                severity="warning",
            )
        await back_to_local(node)
    node.state.role = None
    node.state.rejoin = False


async def master_address(node: LabNode) -> str | None:
    me, _, extra = await node.local_position()
    if me.role == election.MASTER:
        return node.address
    upstream = extra["upstream"]
    return str(upstream) if upstream else None


async def do_upgrade_schema(node: LabNode) -> None:
    master = await master_address(node)
    line = node.conninfo(master or "none")
    node.syslog.log("schema_builder", f"Upgrading schema with connect line '{line}'")
    try:
        if node.state.schema_error_armed:
            node.state.schema_error_armed = False
            raise OpFailed("schema upgrade script failed (injected fault)")
        if master is None:
            raise OpFailed("no master")
        conn = await pgdb.connect_tls(line)
        async with conn, conn.transaction():
            (version,) = await pgdb.fetchone(conn, "SELECT version FROM schema_version FOR UPDATE")
            await conn.execute("UPDATE schema_version SET version = %s", (version + 1,))
            await conn.execute(
                "INSERT INTO schema_history (version, applied_by) VALUES (%s, %s)",
                (version + 1, node.address),
            )
    except Exception as exc:
        node.state.error = "Couldn't upgrade the schema"
        node.syslog.log("schema_builder", f"Schema upgrade failed: {exc}", severity="err")
        raise
    node.syslog.log("schema_builder", "Schema upgrade complete")


async def check_master(node: LabNode, address: str) -> str | None:
    """None when `address` answers over TLS as a master, else the reason it does not."""
    try:
        conn = await pgdb.connect_tls(node.conninfo(address))
        async with conn:
            (in_rec,) = await pgdb.fetchone(conn, "SELECT pg_is_in_recovery()")
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"cannot connect to {address}: {first}"
    if in_rec:
        return f"{address} is not a master"
    return None
