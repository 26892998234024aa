"""The PostgreSQL lock backend: a session advisory lock on a dedicated connection.

``postgresql://[USER@]HOST[:PORT]/DBNAME``: ``pg_try_advisory_lock(k)`` with ``k`` a 64-bit
hash of the cluster name, on a connection held open for the whole run. The holder is named in
the table ``cms_reconciler_locks(cluster primary key, holder jsonb, backend_pid, since)``
(upserted after acquiring; created when missing) and in the session's ``application_name``, so
a refused apply can name it (the row counts only while its backend pid holds the advisory lock,
found through ``pg_locks``). A daemon thread runs ``SELECT 1`` every TTL/3 on that connection,
and the session sets ``idle_session_timeout`` = TTL: a holder that stops heartbeating (frozen,
cut off) loses its session and so its lock; a killed holder's session ends with its TCP
connection. Connection lost = lock lost. ``--break-lock`` has nothing to do.

Never the CMS cluster's own database (``cluster``):
:func:`reconciler.apply.locks.url.parse_lock_url` refuses it. The password comes
from ``$RECONCILE_LOCK_PASSWORD``, else libpq's own
``$PGPASSWORD`` / ``$PGPASSFILE`` (~/.pgpass); other libpq settings (``sslmode=...``) may be
given as URL parameters.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import asdict
from typing import Any

import psycopg
import structlog

from reconciler.apply.locks.held import NOTHING_TO_BREAK, LockInfo, RenewedLock
from reconciler.apply.locks.url import PASSWORD_ENV, LockUrl
from reconciler.common.errors import LockHeldError, ReconcilerError

log = structlog.get_logger(__name__)

TABLE = "cms_reconciler_locks"
CONNECT_TIMEOUT = 5


def lock_key(cluster: str) -> int:
    """The advisory lock key: a signed 64-bit hash of the cluster name."""
    digest = hashlib.sha256(f"cms-reconciler:{cluster}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _key_halves(key: int) -> tuple[int, int]:
    """pg_locks shows a bigint advisory key as classid (high 32 bits), objid (low 32 bits)."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF


def _connect(url: LockUrl, info: LockInfo, ttl: float) -> psycopg.Connection[Any]:
    kwargs: dict[str, Any] = {
        "host": url.host,
        "dbname": url.path,
        "connect_timeout": CONNECT_TIMEOUT,
        "autocommit": True,
        "application_name": f"cms-reconciler {info.holder} {info.pid} {info.run_id}"[:63],
        "keepalives": 1,
        "keepalives_idle": max(1, round(ttl / 3)),
        "keepalives_interval": max(1, round(ttl / 6)),
        "keepalives_count": 3,
    }
    if url.port is not None:
        kwargs["port"] = url.port
    if url.username:
        kwargs["user"] = url.username
    password = os.environ.get(PASSWORD_ENV) or url.password
    if password:
        kwargs["password"] = password
    conninfo = url.query.replace("&", " ") if url.query else ""
    try:
        conn = psycopg.connect(conninfo, **kwargs)
    except psycopg.Error as exc:
        raise ReconcilerError(f"lock database {url.shown}: {str(exc).strip()}") from None
    try:
        ms = int(ttl * 1000)
        conn.execute(f"SET idle_session_timeout = {ms}")
        conn.execute(f"SET tcp_keepalives_idle = {max(1, round(ttl / 3))}")
        conn.execute(f"SET tcp_keepalives_interval = {max(1, round(ttl / 6))}")
        conn.execute("SET tcp_keepalives_count = 3")
    except psycopg.Error as exc:
        conn.close()
        raise ReconcilerError(f"lock database {url.shown}: {str(exc).strip()}") from None
    return conn


class PostgresLock(RenewedLock):
    """A held PostgreSQL advisory lock (see the module docstring); the renewal is a heartbeat."""

    JOIN_TIMEOUT = float(CONNECT_TIMEOUT)

    def __init__(
        self, url: LockUrl, conn: psycopg.Connection[Any], key: int, info: LockInfo, ttl: float
    ) -> None:
        super().__init__(info, ttl, thread_name=f"pg lock {info.cluster}")
        self.url = url
        self.conn = conn
        self.key = key
        self.backend_pid = conn.info.backend_pid
        self._guard = threading.Lock()  # one statement at a time on the connection

    @property
    def backend(self) -> str:
        return f"postgresql {self.url.shown} advisory lock {self.key}"

    @classmethod
    def acquire(
        cls,
        url: LockUrl,
        cluster: str,
        *,
        ttl: float,
        break_lock: bool = False,
        run_id: str | None = None,
    ) -> PostgresLock:
        info = LockInfo.for_this_process(cluster, run_id)
        key = lock_key(cluster)
        conn = _connect(url, info, ttl)
        try:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if not (row and row[0]):
                who = _holder(conn, cluster, key)
                hint = NOTHING_TO_BREAK.format(what="session ends") if break_lock else ""
                raise LockHeldError(
                    f"cluster {cluster} is locked by another apply: {who}; "
                    f"postgresql lock {url.shown} advisory lock {key}{hint}"
                )
            _record(conn, cluster, info)
        except psycopg.Error as exc:
            conn.close()
            raise ReconcilerError(f"lock database {url.shown}: {str(exc).strip()}") from None
        except BaseException:
            conn.close()
            raise
        held = cls(url, conn, key, info, ttl)
        held._start_renewal()
        log.info("lock acquired", cluster=cluster, lock=held.backend, run_id=info.run_id)
        return held

    def _renew_once(self) -> bool:
        """One heartbeat (``SELECT 1``): it keeps the session, and so the lock, alive."""
        try:
            with self._guard:
                if self._stopped.is_set():
                    return False
                self.conn.execute("SELECT 1")
        except psycopg.Error as exc:
            self._lose(_session_ended(exc))
            return False
        return True

    def _check_held(self) -> None:
        """This session still holds the advisory lock (``pg_locks``)."""
        classid, objid = _key_halves(self.key)
        try:
            with self._guard:
                row = self.conn.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND pid = pg_backend_pid() AND classid = %s AND objid = %s"
                    " AND objsubid = 1",
                    (classid, objid),
                ).fetchone()
        except psycopg.Error as exc:
            self._lose(_session_ended(exc))
            return
        if not row or row[0] == 0:
            self._lose("the session no longer holds the advisory lock")

    def _let_go(self) -> None:
        try:
            with self._guard:
                self.conn.execute(
                    f"DELETE FROM {TABLE} WHERE cluster = %s AND backend_pid = pg_backend_pid()",
                    (self.info.cluster,),
                )
                self.conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        except psycopg.Error as exc:
            log.warning("lock release: session already gone", error=str(exc).strip())
        finally:
            self.conn.close()  # ends the session: the lock goes with it in any case
        log.info("lock released", lock=self.backend, run_id=self.info.run_id)


def _session_ended(exc: psycopg.Error) -> str:
    return f"its session ended ({str(exc).strip() or type(exc).__name__})"


def _record(conn: psycopg.Connection[Any], cluster: str, info: LockInfo) -> None:
    """Name the holder in the table (best effort: application_name names it too)."""
    try:
        with conn.transaction():
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} (cluster text PRIMARY KEY, holder jsonb"
                " NOT NULL, backend_pid integer NOT NULL, since timestamptz NOT NULL)"
            )
            conn.execute(
                f"INSERT INTO {TABLE} (cluster, holder, backend_pid, since)"
                " VALUES (%s, %s, pg_backend_pid(), now()) ON CONFLICT (cluster) DO UPDATE"
                " SET holder = EXCLUDED.holder, backend_pid = EXCLUDED.backend_pid,"
                " since = EXCLUDED.since",
                (cluster, json.dumps(asdict(info))),
            )
    except psycopg.Error as exc:  # no privilege, or a racing CREATE TABLE: still held
        log.warning(
            "lock holder table not writable; application_name names the holder",
            error=str(exc).strip(),
        )


def _holder(conn: psycopg.Connection[Any], cluster: str, key: int) -> str:
    """Describe the session holding ``key``: its table row, else its application_name."""
    classid, objid = _key_halves(key)
    row = conn.execute(
        "SELECT l.pid, a.application_name, a.client_addr::text, a.backend_start"
        " FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s"
        " AND l.objsubid = 1",
        (classid, objid),
    ).fetchone()
    if row is None:
        return "a holder that just let go (try again)"
    pid, app, addr, since = row
    try:
        record = conn.execute(
            f"SELECT holder FROM {TABLE} WHERE cluster = %s AND backend_pid = %s",
            (cluster, pid),
        ).fetchone()
    except psycopg.Error:
        record = None
    if record is not None:
        try:
            return LockInfo.from_mapping(dict(record[0])).describe()
        except (KeyError, TypeError, ValueError):
            pass
    return f"session {pid} from {addr or 'local'} ({app or 'no application_name'}) since {since}"
