"""Each clustered node's WAL position, read from its own database (`reconcile recover`).

A clustered node's database listens on its address (``database_port``) for the other
nodes, over mutual TLS with the spec's client certificate, as the database view does
(:mod:`reconciler.apply.database_view`). A replica's position is
``pg_last_wal_replay_lsn()`` (how far it has replayed), a primary's
``pg_current_wal_lsn()``. A node that is not clustered takes no connections from other
nodes, and one that is unreachable cannot be asked: their positions are unknown, and
say why. Read-only sessions; never raises.
"""

from __future__ import annotations

import asyncio

from reconciler.apply.database_view import client_files, connect_read_only, preload_driver
from reconciler.observe.snapshot_model import Observed
from reconciler.plan.cluster_view import build_view
from reconciler.plan.recovery import DbPosition
from reconciler.spec.loader import LoadedSpec
from reconciler.spec.model import NodeRole

_SQL = (
    "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
    "ELSE pg_current_wal_lsn() END::text"
)


async def read_positions(
    loaded: LoadedSpec, observed: Observed, *, timeout: float = 5.0
) -> dict[str, DbPosition]:
    """Every database node's position (concurrently), or why it is unknown."""
    preload_driver()
    view = build_view(loaded.spec, observed)
    nodes = [n for n in loaded.spec.nodes if n.role is NodeRole.DATABASE]

    async def one(name: str, address: str) -> tuple[str, DbPosition]:
        nv = view.node(name)
        if nv is None or not nv.reachable:
            return name, DbPosition(None, "the node cannot be reached")
        if not nv.clustered:
            return name, DbPosition(None, "not clustered: its database takes no connections")
        return name, await _read(loaded, name, address, timeout)

    pairs = await asyncio.gather(*(one(n.name, n.address) for n in nodes))
    return dict(pairs)


async def _read(loaded: LoadedSpec, name: str, address: str, timeout: float) -> DbPosition:
    files = client_files(loaded, name)
    if files is None:
        return DbPosition(None, "not read: the client key lives on the node")
    import psycopg  # imported on first use: see preload_driver

    try:
        conn = await connect_read_only(
            files, address.strip("[]"), loaded.spec.database_port, timeout
        )
        async with conn:
            cur = await conn.execute(_SQL)
            row = await cur.fetchone()
    except (psycopg.Error, OSError) as exc:
        text = str(exc).strip()
        return DbPosition(None, f"not read: {text.splitlines()[0] if text else type(exc).__name__}")
    lsn = row[0] if row else None
    return DbPosition(str(lsn) if lsn else None, "" if lsn else "the database gave no position")
