"""What every held lock shares: who holds it, ``with`` releases it, a thread keeps it alive.

* :class:`LockInfo`: the holder record (user@host, pid, run id, since) every backend stores
  as JSON and names in a refusal.
* :class:`ReleasedOnExit`: ``with lock:`` calls ``release()``.
* :class:`RenewedLock`: the skeleton of a lock kept alive by a background daemon thread:
  it renews every ``max(0.2, ttl / 3)`` seconds until released, marks the lock lost
  (:meth:`RenewedLock._lose`) when a renewal says it is gone, and ``verify()`` raises
  :class:`reconciler.common.errors.LockLostError` from then on. A backend supplies its
  parts as small methods: ``_renew_once`` (one renewal), ``_check_held`` (``verify``'s
  own check) and ``_let_go`` (the release proper).
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import structlog

from reconciler.common.errors import LockLostError

log = structlog.get_logger(__name__)

NOTHING_TO_BREAK = (
    " (--break-lock has nothing to do here: a dead holder's {what} by itself, "
    "and a live holder's lock is never broken)"
)


def now_utc() -> datetime:
    """Now, in UTC, to the second (the times a lock records)."""
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
            started_at=now_utc().isoformat(),
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


class RenewedLock(ReleasedOnExit, ABC):
    """A held lock kept alive by a background daemon thread (see the module docstring).

    A backend's ``acquire`` builds it once the lock is held and calls
    :meth:`_start_renewal`. Its subclass names itself (``backend``, and ``_shown`` for the
    "lost the lock ..." messages), and supplies ``_renew_once``, ``_check_held`` and
    ``_let_go``; ``JOIN_TIMEOUT`` is how long ``release`` waits for a renewal under way.
    """

    JOIN_TIMEOUT = 5.0

    def __init__(self, info: LockInfo, ttl: float, thread_name: str) -> None:
        self.info = info
        self.ttl = ttl
        self.lost: str | None = None  # why the lock is gone, once it is
        self._stopped = threading.Event()
        self._renewer = threading.Thread(target=self._renew_loop, name=thread_name, daemon=True)

    @property
    @abstractmethod
    def backend(self) -> str:
        """A printable description of where the lock lives (password redacted)."""

    @property
    def token(self) -> int | None:
        """A fencing token that grows with every new holder, or None (the default)."""
        return None

    @property
    def _shown(self) -> str:
        """How "lost the lock ..." messages and log lines name the lock."""
        return self.backend

    # ---------------------------------------------------------------- renewal
    def _start_renewal(self) -> None:
        self._renewer.start()

    def _renew_loop(self) -> None:
        while not self._stopped.wait(max(0.2, self.ttl / 3)):
            if not self._renew_once():
                return

    @abstractmethod
    def _renew_once(self) -> bool:
        """Renew the lock once; False to stop renewing (after :meth:`_lose`, or released)."""

    def _lose(self, why: str) -> None:
        """Mark the lock lost (the first reason stays): ``verify()`` raises from now on."""
        if self.lost is None:
            self.lost = f"lost the lock {self._shown}: {why}"
            log.error("lock lost", lock=self._shown, reason=why)

    # ---------------------------------------------------------------- verify / release
    def verify(self) -> None:
        """Raise LockLostError unless this run still holds the lock (before every step)."""
        if self.lost is not None:
            raise LockLostError(self.lost)
        self._check_held()
        if self.lost is not None:
            raise LockLostError(self.lost)

    @abstractmethod
    def _check_held(self) -> None:
        """The backend's own check: :meth:`_lose` (or raise LockLostError) if not held."""

    def release(self) -> None:
        """Stop the renewal, then let the lock go (once; a second call does nothing)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._renewer.is_alive() and self._renewer is not threading.current_thread():
            self._renewer.join(timeout=self.JOIN_TIMEOUT)
        self._let_go()

    @abstractmethod
    def _let_go(self) -> None:
        """Give the lock up on its backend (the renewal has stopped)."""
