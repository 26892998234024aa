"""One writer per cluster: the lock interface, the factory that picks a backend, the flags.

``--lock URL`` (or ``$RECONCILE_LOCK``; the flag wins; parsed in
:mod:`reconciler.apply.locks.url`) picks the backend:

* ``file:`` (default): a lock file in the state directory (:mod:`reconciler.apply.locks.file`);
  ``file:/some/dir`` puts it in another directory. One admin host only.
* ``etcd://HOST:PORT[/PREFIX]``: a key ``<prefix>/<cluster>`` on a lease kept alive in the
  background (:mod:`reconciler.apply.locks.etcd`); its create_revision is the fencing token.
* ``postgresql://[USER@]HOST[:PORT]/DBNAME``: a session advisory lock on a dedicated
  connection (:mod:`reconciler.apply.locks.postgres`). Never the CMS cluster's own database
  (``cluster``): such a URL is refused.

Credentials come from the environment (``$RECONCILE_LOCK_PASSWORD``; for PostgreSQL also
``$PGPASSWORD`` / ``$PGPASSFILE``; for etcd ``$RECONCILE_LOCK_TOKEN``), and any URL shown in
a message or a log is redacted.

Every held lock renews itself in a daemon thread for as long as its holder runs
(:class:`reconciler.apply.locks.held.RenewedLock`); the executor calls
:meth:`ClusterLock.verify` before every step, which raises
:class:`reconciler.common.errors.LockLostError` once the lock is gone. This is the only
module that imports the backends.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from reconciler.apply.locks.held import LockInfo
from reconciler.apply.locks.url import (
    LOCK_ENV,
    PASSWORD_ENV,
    LockUrl,
    parse_duration,
    parse_lock_url,
)
from reconciler.common.errors import LockHeldError, StaleLockError

DEFAULT_LEASE_TTL = 15.0
POLL_SECONDS = 0.5


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
    # Each backend is imported once it is chosen: a file lock loads neither httpx nor psycopg.
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


# ---------------------------------------------------------------------------- flags
def _duration_arg(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
