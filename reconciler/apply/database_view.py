"""The database's own view of the cluster, read over mutual TLS from the master's 5432.

Connects with the spec's client certificate (CN ``postgres``), ``sslmode=verify-ca``
and the spec's CA, database ``cluster``, in a read-only session, and reads:

* ``pg_is_in_recovery()`` on the master (must be false);
* ``pg_stat_replication``: which replicas stream (``application_name`` is the
  replica's address) and each one's lag in bytes (current WAL position minus the
  replica's replay position).

:func:`db_disagreements` compares it with what the MMP reports: any disagreement
is drift (the `status` verdict says so). Passwords never appear: authentication
is by certificate.
"""

from __future__ import annotations

import importlib
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from reconciler.common.addresses import normalize_address
from reconciler.observe.snapshot_model import Observed
from reconciler.plan.cluster_view import build_view
from reconciler.spec.loader import LoadedSpec, resolve_spec_path
from reconciler.spec.model import NodeRole

DATABASE_NAME = "cluster"


@dataclass(frozen=True)
class ReplicaStream:
    address: str  # application_name
    state: str | None  # streaming, catchup, ...
    sync_state: str | None
    lag_bytes: int | None


@dataclass(frozen=True)
class DbView:
    master_address: str
    reachable: bool
    error: str | None = None
    in_recovery: bool | None = None
    replicas: tuple[ReplicaStream, ...] = field(default_factory=tuple)

    def stream(self, address: str) -> ReplicaStream | None:
        wanted = normalize_address(address)
        return next((r for r in self.replicas if normalize_address(r.address) == wanted), None)

    def to_dict(self) -> dict[str, object]:
        return {
            "master": self.master_address,
            "reachable": self.reachable,
            "error": self.error,
            "in_recovery": self.in_recovery,
            "replicas": [
                {
                    "address": r.address,
                    "state": r.state,
                    "sync_state": r.sync_state,
                    "lag_bytes": r.lag_bytes,
                }
                for r in self.replicas
            ],
        }


@contextmanager
def private_key_copy(key: Path) -> Iterator[Path]:
    """libpq refuses a key readable by group/others: use a 0600 copy when needed."""
    mode = key.stat().st_mode
    if not mode & (stat.S_IRWXG | stat.S_IRWXO):
        yield key
        return
    with tempfile.TemporaryDirectory(prefix="reconcile-key-") as tmp:
        copy = Path(tmp) / "client.key"
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out, key.open("rb") as src:
            shutil.copyfileobj(src, out)
        yield copy


def client_files(loaded: LoadedSpec, master_name: str | None) -> tuple[Path, Path, Path] | None:
    """CA, client certificate and key for the database connection; None when the client
    key lives on the node (``key_on_node``): then there is no local key to connect with."""
    spec = loaded.spec
    certs = spec.certificates_for(master_name) if master_name else spec.certificates
    if certs.client.key is None:
        return None
    return (
        resolve_spec_path(loaded, certs.ca),
        resolve_spec_path(loaded, certs.client.cert),
        resolve_spec_path(loaded, certs.client.key),
    )


def _import_driver() -> ModuleType:
    return importlib.import_module("psycopg")


def preload_driver() -> None:
    """psycopg is imported on first use (most commands never connect to the database
    and its import costs ~40 ms of start-up). Commands that will need it call this first:
    the import runs in a background thread while they wait on SSH, so the database check
    does not pay for it on the critical path."""
    threading.Thread(target=_import_driver, name="psycopg-import", daemon=True).start()


async def connect_read_only(
    files: tuple[Path, Path, Path], host: str, port: int, timeout: float
) -> Any:
    """A read-only session on a node's ``cluster`` database over mutual TLS with the spec's
    client certificate (CA, certificate, key: :func:`client_files`). psycopg's errors and
    OSError are the caller's to turn into a message."""
    import psycopg  # imported on first use: see preload_driver

    ca, cert, key = files
    with private_key_copy(key) as private_key:
        conn = await psycopg.AsyncConnection.connect(
            host=host,
            port=port,
            dbname=DATABASE_NAME,
            user="postgres",
            sslmode="verify-ca",
            sslrootcert=str(ca),
            sslcert=str(cert),
            sslkey=str(private_key),
            connect_timeout=max(1, int(timeout)),
            application_name="cms-reconciler",
            autocommit=True,
        )
    await conn.execute("SET default_transaction_read_only = on")
    return conn


async def read_db_view(
    loaded: LoadedSpec,
    master_address: str,
    files: tuple[Path, Path, Path],
    *,
    port: int | None = None,
    timeout: float = 5.0,
) -> DbView:
    """Connect to the master's database with ``files`` (:func:`client_files`); never raises:
    errors are in the view."""
    host = master_address.strip("[]")
    import psycopg  # imported on first use: see preload_driver

    try:
        conn = await connect_read_only(
            files, host, port if port is not None else loaded.spec.database_port, timeout
        )
        async with conn:
            cur = await conn.execute("SELECT pg_is_in_recovery()")
            row = await cur.fetchone()
            in_recovery = bool(row[0]) if row else None
            cur = await conn.execute(
                "SELECT application_name, state, sync_state, "
                "CASE WHEN pg_is_in_recovery() THEN NULL "
                "ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint END "
                "FROM pg_stat_replication ORDER BY application_name"
            )
            rows = await cur.fetchall()
    except (psycopg.Error, OSError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return DbView(master_address=master_address, reachable=False, error=message)
    replicas = tuple(
        ReplicaStream(
            address=str(r[0]),
            state=r[1],
            sync_state=r[2],
            lag_bytes=int(r[3]) if r[3] is not None else None,
        )
        for r in rows
        if r[0] and r[0] != "cms-reconciler"
    )
    return DbView(
        master_address=master_address,
        reachable=True,
        in_recovery=in_recovery,
        replicas=replicas,
    )


async def db_view_for(loaded: LoadedSpec, observed: Observed, **kwargs: object) -> DbView | None:
    """The database view of the master the MMP reports (None when there is no single
    master, or no local client key to connect with: the key lives on the node)."""
    view = build_view(loaded.spec, observed)
    if view.master is None:
        return None
    node = view.master_node
    name = node.key if node is not None and node.in_spec else None
    files = client_files(loaded, name)
    if files is None:
        return None
    return await read_db_view(loaded, view.master, files, **kwargs)  # type: ignore[arg-type]


def db_disagreements(loaded: LoadedSpec, observed: Observed, db: DbView | None) -> list[str]:
    """Where the database contradicts the MMP (each is drift)."""
    if db is None:
        return []
    if not db.reachable:
        where = f"{db.master_address}:{loaded.spec.database_port}"
        return [f"database on the master {where} not reachable: {db.error}"]
    problems: list[str] = []
    if db.in_recovery:
        problems.append(
            f"the MMP reports {db.master_address} as master but its database is in recovery "
            "(a standby)"
        )
    view = build_view(loaded.spec, observed)
    for node in loaded.spec.nodes:
        if node.role is not NodeRole.DATABASE:
            continue
        nv = view.node(node.name)
        if nv is None or normalize_address(node.address) == normalize_address(db.master_address):
            continue
        stream = db.stream(node.address)
        if nv.sync in ("in-sync", "syncing") and stream is None:
            problems.append(
                f"the MMP shows {node.name} ({node.address}) as a connected replica but the "
                "master's pg_stat_replication has no stream from it"
            )
        elif nv.sync == "disconnected" and stream is not None:
            problems.append(
                f"the MMP shows {node.name} disconnected but it streams from the master"
            )
    return problems
