"""Power of one node: boot (databases, proxy, watcher endpoint and loop, SSH server), power loss,
clean stop and the database-port block.

The composition of a node: it wires `node_watch` and `sshserver` onto the state in `node`, so
those depend on the state and only this module (and the supervisor above it) on them.
"""

from __future__ import annotations

import asyncio
import contextlib

from cmslab import election, node_watch, pgproc
from cmslab.node import LabNode
from cmslab.sshserver import start_ssh
from cmslab.state import ROLE_DATABASE


async def power_on(node: LabNode) -> None:
    """Boot: databases first, then the proxy, the watcher and the SSH server."""
    node.prepare_dirs()
    node.ticks.clear()
    async with node.lock:
        if node.state.role == ROLE_DATABASE and (node.cluster_data / "PG_VERSION").exists():
            if node.state.rejoin:
                pgproc.set_standby(node.cluster_data, "")
            await node.start_cluster()
        else:
            await node.start_unclustered_db()
    if not node.db_blocked:
        await node.proxy.start()
    node.watch_server = await node_watch.start_endpoint(node)
    node.ssh_server = await start_ssh(node)
    node.alive = True
    node.tasks = [asyncio.create_task(node_watch.watch_loop(node), name=f"watch-{node.name}")]
    node.syslog.log("dbcluster_watcher", "Started")


async def close_servers(node: LabNode) -> None:
    node.alive = False
    for t in node.tasks:
        t.cancel()
    for t in node.tasks:
        with contextlib.suppress(BaseException):
            await t
    node.tasks = []
    await node.close_watch_conn()
    if node.op_task is not None and not node.op_task.done():
        node.op_task.cancel()
        with contextlib.suppress(BaseException):
            await node.op_task
    if node.ssh_server is not None:
        node.ssh_server.close()
        for conn in list(node.ssh_conns):
            conn.abort()
        node.ssh_conns.clear()
        node.ssh_server = None
    if node.watch_server is not None:
        node.watch_server.close()
        node.watch_server = None
    await node.proxy.close()


async def kill(node: LabNode) -> None:
    """Power loss: everything stops at once (PostgreSQL immediate stop)."""
    was_master = node.watch_info.get("role") == election.MASTER
    await close_servers(node)
    node.watch_info = {"address": node.address, "clustered": False}
    await node.stop_all_pg("immediate")
    if was_master:
        node.state.rejoin = True
    if node.op_task is not None and node.state.last_result == "In progress":
        node.state.last_result = "Failed"
    node.save()


async def shutdown(node: LabNode) -> None:
    """Clean stop for `cmslab down` (data stays)."""
    if not node.alive:
        await node.stop_all_pg("fast")
        return
    await close_servers(node)
    await node.stop_all_pg("fast")
    if node.state.last_result == "In progress":
        node.state.last_result = "Failed"
    node.save()


async def set_db_blocked(node: LabNode, blocked: bool) -> None:
    node.db_blocked = blocked
    if blocked:
        await node.proxy.close()
    elif node.alive:
        await node.proxy.start()
