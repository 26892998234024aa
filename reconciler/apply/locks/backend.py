"""One writer per cluster: the lock interface, its URL, and the factory.

``--lock URL`` (or ``$RECONCILE_LOCK``; the flag wins) picks the backend:

* ``file:`` (default): a lock file in the state directory (:mod:`reconciler.apply.locks.file`);
  ``file:/some/dir`` puts it in another directory. One admin host only.
* ``etcd://HOST:PORT[/PREFIX]``: a key ``<prefix>/<cluster>`` on a lease kept alive in the
  background (:mod:`reconciler.apply.locks.etcd`); its create_revision is the fencing token.
* ``postgresql://[USER@]HOST[:PORT]/DBNAME``: a session advisory lock on a dedicated
  connection (:mod:`reconciler.apply.locks.postgres`). Never the CMS cluster's own database
  (``cluster``): such a URL is refused.

Credentials come from the environment (``$RECONCILE_LOCK_PASSWORD``; for PostgreSQL also
``$PGPASSWORD`` / ``$PGPASSFILE``; for etcd ``$RECONCILE_LOCK_TOKEN``), and any URL shown in
a message or a log is :func:`redact`-ed.

Every held lock renews itself in a daemon thread for as long as its holder runs; the
executor calls :meth:`ClusterLock.verify` before every step, which raises
:class:`reconciler.common.errors.LockLostError` once the lock is gone.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self
from urllib.parse import SplitResult, urlsplit, urlunsplit

from reconciler.common.errors import LockHeldError, ReconcilerError, StaleLockError

LOCK_ENV = "RECONCILE_LOCK"
PASSWORD_ENV = "RECONCILE_LOCK_PASSWORD"
TOKEN_ENV = "RECONCILE_LOCK_TOKEN"
DEFAULT_ETCD_PREFIX = "/cms-reconciler/locks"
DEFAULT_LEASE_TTL = 15.0
POLL_SECONDS = 0.5
# The CMS database cluster's own database (cmslab/pgdb.py DB; CMS's "cluster" database).
CMS_DATABASES = frozenset({"cluster"})


class LockUrlError(ReconcilerError):
    """A ``--lock`` / ``$RECONCILE_LOCK`` URL that cannot be used."""


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class LockInfo:
    """Who holds a cluster's lock (stored as JSON by every backend)."""

    cluster: str
    holder: str  # user@host
    host: str
    pid: int
    run_id: str
    started_at: str  # ISO 8601, UTC ("since")
    expires_at: str | None = None  # file backend only; etcd/postgres expire by lease/session

    def describe(self) -> str:
        text = f"{self.holder} (pid {self.pid}, run {self.run_id}) since {self.started_at}"
        return text + (f", expires {self.expires_at}" if self.expires_at else "")

    @classmethod
    def for_this_process(cls, cluster: str, run_id: str | None = None) -> LockInfo:
        host = socket.gethostname()
        return cls(
            cluster=cluster,
            holder=f"{getpass.getuser()}@{host}",
            host=host,
            pid=os.getpid(),
            run_id=run_id or uuid.uuid4().hex[:12],
            started_at=_now().isoformat(),
        )

    @classmethod
    def from_mapping(cls, data: dict[str, object]) -> LockInfo:
        """From stored JSON; KeyError/TypeError/ValueError when it is not a holder record."""
        expires = data.get("expires_at")
        return cls(
            cluster=str(data["cluster"]),
            holder=str(data["holder"]),
            host=str(data["host"]),
            pid=int(str(data["pid"])),
            run_id=str(data["run_id"]),
            started_at=str(data["started_at"]),
            expires_at=None if expires is None else str(expires),
        )


class ClusterLock(Protocol):
    """A held lock. ``verify()`` before every step; ``release()`` (or ``with``) at the end."""

    info: LockInfo

    @property
    def backend(self) -> str:
        """A printable description of where the lock lives (password redacted)."""
        ...

    @property
    def token(self) -> int | None:
        """A fencing token that grows with every new holder (etcd create_revision), or None."""
        ...

    def verify(self) -> None:
        """Raise LockLostError unless this run still holds the lock."""
        ...

    def release(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> None: ...


class ReleasedOnExit:
    """``with lock:`` releases it: the context manager every backend shares."""

    def release(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> None:
        self.release()


# ----------------------------------------------------------------------------- URLs
@dataclass(frozen=True)
class LockUrl:
    scheme: str  # "file" | "etcd" | "postgresql"
    raw: str
    host: str = ""
    port: int | None = None
    path: str = ""  # file: directory (may be ""); etcd: key prefix; postgresql: database
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    query: str = ""

    @property
    def shown(self) -> str:
        return redact(self.raw)


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (userinfo and ``password=`` parameters)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:***@{hostport}"
    query = re.sub(r"(?i)((?:^|&)(?:password|token)=)[^&]*", r"\1***", parts.query)
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, query, parts.fragment))


def parse_lock_url(url: str | None = None) -> LockUrl:
    """The lock URL: ``url``, else ``$RECONCILE_LOCK``, else ``file:``. LockUrlError if bad."""
    raw = url if url else os.environ.get(LOCK_ENV) or "file:"
    shown = redact(raw)
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise LockUrlError(f"lock URL {shown}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise LockUrlError(f"lock URL {shown}: a file lock is local; use file:/DIRECTORY")
        return LockUrl("file", raw, path=parts.path)
    if scheme not in ("etcd", "postgresql", "postgres"):
        raise LockUrlError(
            f"lock URL {shown}: unknown scheme {parts.scheme!r}; use file:, "
            "etcd://HOST:PORT[/PREFIX] or postgresql://[USER@]HOST[:PORT]/DBNAME"
        )
    if not parts.hostname:
        raise LockUrlError(f"lock URL {shown}: no host; e.g. {scheme}://lockhost:PORT/...")
    if scheme == "etcd":
        if port is None:
            raise LockUrlError(f"lock URL {shown}: no port; e.g. etcd://{parts.hostname}:2379")
        prefix = parts.path.rstrip("/") or DEFAULT_ETCD_PREFIX
        return LockUrl(
            "etcd",
            raw,
            host=parts.hostname,
            port=port,
            path=prefix,
            username=parts.username,
            password=parts.password,
        )
    database = parts.path.lstrip("/")
    if not database:
        raise LockUrlError(
            f"lock URL {shown}: no database; name one the administrators run for locks, "
            f"e.g. postgresql://{parts.hostname}/reconciler"
        )
    if database.lower() in CMS_DATABASES:
        raise LockUrlError(
            f"lock URL {shown}: refusing the CMS cluster's own database {database!r}; "
            "the lock must live on a PostgreSQL the administrators run, not on the cluster "
            "it protects"
        )
    return LockUrl(
        "postgresql",
        raw,
        host=parts.hostname,
        port=port,
        path=database,
        username=parts.username,
        password=parts.password,
        query=parts.query,
    )


# ------------------------------------------------------------------------ durations
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def parse_duration(text: str) -> float:
    """``30s``, ``5m``, ``1h``, ``500ms`` or plain seconds -> seconds (argparse type)."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (e.g. 30s, 5m, 1h or seconds)")
    scale = {"ms": 0.001, "s": 1.0, None: 1.0, "m": 60.0, "h": 3600.0}[match.group(2)]
    return float(match.group(1)) * scale


def _duration_arg(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# -------------------------------------------------------------------------- factory
def acquire_lock(
    url: str | LockUrl | None,
    *,
    state_dir: Path,
    cluster: str,
    break_lock: bool = False,
    run_id: str | None = None,
    timeout: float = 0.0,
    ttl: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ClusterLock:
    """Acquire ``cluster``'s lock on the backend ``url`` names; LockHeldError if held.

    ``timeout`` > 0: wait up to that long (polling every 0.5 s) for the holder to let go.
    """
    where = url if isinstance(url, LockUrl) else parse_lock_url(url)
    run_id = run_id or uuid.uuid4().hex[:12]
    deadline = time.monotonic() + max(0.0, timeout)
    while True:
        try:
            return _acquire_once(where, state_dir, cluster, break_lock, run_id, ttl)
        except StaleLockError:
            raise  # a dead holder's file lock does not go away by waiting
        except LockHeldError as exc:
            if time.monotonic() >= deadline:
                if timeout > 0:
                    raise type(exc)(f"{exc} (waited {timeout:g}s for it)") from None
                raise
        sleep(POLL_SECONDS)


def _acquire_once(
    where: LockUrl,
    state_dir: Path,
    cluster: str,
    break_lock: bool,
    run_id: str,
    ttl: float | None,
) -> ClusterLock:
    if where.scheme == "file":
        from reconciler.apply.locks.file import DEFAULT_TTL_SECONDS, ApplyLock

        directory = Path(where.path) if where.path else state_dir
        return ApplyLock.acquire(
            directory,
            cluster,
            ttl=ttl or DEFAULT_TTL_SECONDS,
            break_lock=break_lock,
            run_id=run_id,
        )
    if where.scheme == "etcd":
        from reconciler.apply.locks.etcd import EtcdLock

        return EtcdLock.acquire(
            where, cluster, ttl=ttl or DEFAULT_LEASE_TTL, break_lock=break_lock, run_id=run_id
        )
    from reconciler.apply.locks.postgres import PostgresLock

    return PostgresLock.acquire(
        where, cluster, ttl=ttl or DEFAULT_LEASE_TTL, break_lock=break_lock, run_id=run_id
    )


NOTHING_TO_BREAK = (
    " (--break-lock has nothing to do here: a dead holder's {what} by itself, "
    "and a live holder's lock is never broken)"
)


def add_lock_arguments(p: argparse.ArgumentParser) -> None:
    """``--lock URL`` and ``--lock-timeout DURATION`` (apply and watch)."""
    p.add_argument(
        "--lock",
        metavar="URL",
        default=None,
        help=f"where the cluster lock lives: file: (default, the state dir), "
        f"etcd://HOST:PORT[/PREFIX] or postgresql://[USER@]HOST[:PORT]/DBNAME "
        f"(default ${LOCK_ENV}; password from ${PASSWORD_ENV})",
    )
    p.add_argument(
        "--lock-timeout",
        type=_duration_arg,
        default=0.0,
        metavar="DURATION",
        help="wait this long for a held lock (e.g. 30s, 5m) instead of failing at once",
    )
