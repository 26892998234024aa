"""SQL the lab runs: locally through the node's unix socket, and to peers over mutual TLS."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

DB = "cluster"

SCHEMA = """
CREATE TABLE membership (
    address text PRIMARY KEY,
    name text NOT NULL,
    joined_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE schema_version (version integer NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE schema_history (
    version integer NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    applied_by text NOT NULL
);
CREATE TABLE cospaces (id serial PRIMARY KEY, name text NOT NULL, uri text);
CREATE TABLE users (id serial PRIMARY KEY, jid text UNIQUE NOT NULL, name text);
"""


@dataclass(frozen=True)
class Tls:
    """The node's installed copies of its uploaded files (private, owned by PostgreSQL's user)."""

    ca: Path
    cert: Path
    key: Path


def tls_conninfo(tls: Tls, host: str, port: int, dbname: str = DB, **extra: str) -> str:
    parts = {
        "host": host,
        "port": str(port),
        "user": "postgres",
        "dbname": dbname,
        "sslmode": "verify-ca",
        "sslrootcert": str(tls.ca),
        "sslcert": str(tls.cert),
        "sslkey": str(tls.key),
        "connect_timeout": "3",
        **extra,
    }
    return " ".join(f"{k}={v}" for k, v in parts.items())


def redacted(conninfo: str) -> str:
    """The connect line as schema_builder logs it (no secrets are in it: keys are file names)."""
    return conninfo


async def connect_local(sockdir: Path, port: int, dbname: str = DB) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(
        host=str(sockdir),
        port=port,
        user="postgres",
        dbname=dbname,
        autocommit=True,
        connect_timeout=3,
    )


async def connect_tls(conninfo: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(conninfo, autocommit=True)


async def fetchall(
    conn: psycopg.AsyncConnection[Any], sql: str, *args: Any
) -> list[tuple[Any, ...]]:
    cur = await conn.execute(sql, args or None)
    return await cur.fetchall()


async def fetchone(conn: psycopg.AsyncConnection[Any], sql: str, *args: Any) -> tuple[Any, ...]:
    rows = await fetchall(conn, sql, *args)
    return rows[0]


def lsn_int(lsn: str | None) -> int:
    if not lsn:
        return 0
    hi, lo = str(lsn).split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


@dataclass(frozen=True)
class MasterView:
    """What a master reports: its membership, its walsenders and its current WAL position."""

    address_members: tuple[tuple[str, str], ...]  # (address, name)
    senders: dict[str, tuple[str, int]]  # application_name -> (state, replay lsn)
    current_lsn: int
    in_recovery: bool


async def master_view(conn: psycopg.AsyncConnection[Any]) -> MasterView:
    (in_recovery,) = await fetchone(conn, "SELECT pg_is_in_recovery()")
    members = await fetchall(conn, "SELECT address, name FROM membership ORDER BY address")
    senders: dict[str, tuple[str, int]] = {}
    current = 0
    if not in_recovery:
        (cur,) = await fetchone(conn, "SELECT pg_current_wal_lsn()::text")
        current = lsn_int(cur)
        rows = await fetchall(
            conn,
            "SELECT application_name, state, replay_lsn::text FROM pg_stat_replication",
        )
        for name, state, replay in rows:
            senders[name] = (state, lsn_int(replay))
    return MasterView(
        address_members=tuple((a, n) for a, n in members),
        senders=senders,
        current_lsn=current,
        in_recovery=in_recovery,
    )


def conninfo_host(conninfo: str | None) -> str | None:
    if not conninfo:
        return None
    m = re.search(r"(?:^|\s)host=('?)([^\s']+)\1", conninfo)
    return m.group(2) if m else None


def pg_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
