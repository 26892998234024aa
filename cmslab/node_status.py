"""`database cluster status` of one node, computed from what PostgreSQL says (never from a flag)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from cmslab import pgdb
from cmslab.state import ROLE_CLIENT
from cmslab.status_text import (
    DISCONNECTED,
    MASTER,
    REPLICA,
    REPLICA_IN_SYNC,
    Member,
    StatusView,
    cert_columns,
)

if TYPE_CHECKING:
    from cmslab.node import LabNode


async def compute_view(node: LabNode) -> StatusView:
    base = StatusView(
        status="Error" if node.state.error else "Enabled",
        interface=node.state.interface,
        certs=cert_columns(node.state.certs),
        last_command=node.state.last_command,
        last_result=node.state.last_result,
        error=node.state.error,
    )
    if node.state.role is None:
        return replace(base, status="Error" if node.state.error else "Disabled")
    if node.state.role == ROLE_CLIENT:
        members, in_use = await client_members(node)
        return replace(base, members=members, node_in_use=in_use)
    try:
        members, in_use = await database_members(node)
    except Exception:
        members, in_use = (Member(node.address, DISCONNECTED, me=True),), None
    return replace(base, members=members, node_in_use=in_use)


async def status_view(node: LabNode) -> StatusView:
    if node.busy() and node.frozen_view is not None:
        v = node.frozen_view
        return StatusView(
            status=v.status,
            error=node.state.error,
            members=v.members,
            node_in_use=v.node_in_use,
            interface=node.state.interface,
            certs=cert_columns(node.state.certs),
            last_command=node.state.last_command,
            last_result=node.state.last_result,
        )
    return await compute_view(node)


async def remote_view(node: LabNode, address: str) -> pgdb.MasterView | None:
    try:
        conn = await pgdb.connect_tls(node.conninfo(address))
        async with conn:
            return await pgdb.master_view(conn)
    except Exception:
        return None


async def database_members(node: LabNode) -> tuple[tuple[Member, ...], str | None]:
    conn = await node.local_conn()
    async with conn:
        view = await pgdb.master_view(conn)
        rows = await pgdb.fetchall(conn, "SELECT status FROM pg_stat_wal_receiver")
        (conninfo,) = await pgdb.fetchone(conn, "SHOW primary_conninfo")
        (replay,) = await pgdb.fetchone(conn, "SELECT pg_last_wal_replay_lsn()::text")
    if not view.in_recovery:
        members = tuple(
            Member(a, MASTER, me=True) if a == node.address else Member(a, sender_state(view, a))
            for a, _ in view.address_members
        )
        return members, node.address
    upstream = pgdb.conninfo_host(conninfo)
    streaming = bool(rows) and rows[0][0] == "streaming"
    remote = await remote_view(node, upstream) if upstream else None
    if remote is None or remote.in_recovery:
        # No master to follow (the minority side, as Cisco's FAQ 238 capture shows it): its
        # own line a bare `Connected Replica`, `Node in use` its own address.
        members = tuple(
            Member(a, REPLICA, me=True) if a == node.address else Member(a, DISCONNECTED)
            for a, _ in view.address_members
        )
        return members, node.address
    out = []
    for a, _ in remote.address_members:
        if a == node.address:
            synced = streaming and pgdb.lsn_int(replay) >= remote.current_lsn
            out.append(Member(a, REPLICA_IN_SYNC if synced else REPLICA, me=True))
        elif a == upstream:
            out.append(Member(a, MASTER if streaming else DISCONNECTED))
        else:
            out.append(Member(a, sender_state(remote, a)))
    return tuple(out), upstream


async def client_members(node: LabNode) -> tuple[tuple[Member, ...], str | None]:
    candidates = [node.state.node_in_use or "", *node.state.known_members]
    for address in dict.fromkeys(a for a in candidates if a):
        remote = await remote_view(node, address)
        if remote is None or remote.in_recovery:
            continue
        members = tuple(
            Member(a, MASTER) if a == address else Member(a, sender_state(remote, a))
            for a, _ in remote.address_members
        )
        node.state.node_in_use = address
        node.state.known_members = [a for a, _ in remote.address_members]
        node.save()
        return members, address
    return tuple(Member(a, DISCONNECTED) for a in node.state.known_members), None


def sender_state(view: pgdb.MasterView, address: str) -> str:
    sender = view.senders.get(address)
    if sender is None:
        return DISCONNECTED
    state, replay = sender
    if state == "streaming" and replay >= view.current_lsn:
        return REPLICA_IN_SYNC
    return REPLICA
