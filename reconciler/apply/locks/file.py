"""One apply per cluster at a time: a lock file in the state directory.

The file ``<state-dir>/<cluster>.lock`` holds JSON: holder (``user@host``), pid,
start time, expiry and run id. It is created atomically with its content already
in it (written to a temporary file, then hard-linked into place), so a competing
apply never reads an empty or half-written lock.
A daemon thread refreshes the expiry every ttl/3 for as long as the holder runs
(prompts, waits and long polls included), so a live holder's lock never expires;
the executor calls :meth:`ApplyLock.verify` before every step. A second apply
refuses and names the holder. A lock is *stale* when it expired or when its holder ran on
this host and that process is gone (e.g. killed with SIGKILL); a stale lock is
still refused until ``--break-lock`` removes it explicitly — never a live one.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path

import structlog

from reconciler.apply.locks.held import LockInfo, RenewedLock, now_utc
from reconciler.common.errors import LockHeldError, LockLostError, StaleLockError
from reconciler.common.private_files import FILE_MODE, private_dir

__all__ = ["DEFAULT_TTL_SECONDS", "ApplyLock", "lock_path", "read_lock", "stale_reason"]

log = structlog.get_logger(__name__)

DEFAULT_TTL_SECONDS = 3600.0
BROKEN = "it was broken by someone else"


def lock_path(state_dir: Path, cluster: str) -> Path:
    return state_dir / f"{cluster}.lock"


def read_lock(path: Path) -> LockInfo | None:
    """The lock's content; None when there is no lock file. Corrupt content -> ValueError."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("not a lock record")
    return LockInfo.from_mapping(data)


def _create_with_content(path: Path, content: str) -> None:
    """Create ``path`` holding ``content`` in one atomic step; FileExistsError if it exists.

    The content is written to a private temporary file first and then hard-linked
    to ``path`` (link() never replaces an existing file), so a competing apply
    never sees the lock file empty or half written.
    """
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.new")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_reason(info: LockInfo, now: datetime | None = None) -> str | None:
    """Why the lock no longer protects a running apply, or None when it is live."""
    now = now or now_utc()
    if info.expires_at is not None and datetime.fromisoformat(info.expires_at) <= now:
        return f"it expired at {info.expires_at}"
    if info.host == socket.gethostname() and not _pid_alive(info.pid):
        return f"its process {info.pid} on {info.host} is gone"
    return None


class ApplyLock(RenewedLock):
    """A held lock; release it with :meth:`release` or use it as a context manager.

    Its renewal pushes the expiry forward (:meth:`refresh`).
    """

    def __init__(self, path: Path, info: LockInfo, ttl: float) -> None:
        super().__init__(info, ttl, thread_name=f"lock-renewal {info.cluster}")
        self.path = path
        self._guard = threading.Lock()  # one refresh at a time

    @property
    def backend(self) -> str:
        return f"file:{self.path}"

    @property
    def _shown(self) -> str:
        return str(self.path)

    def _renew_once(self) -> bool:
        try:
            self.refresh()
        except LockLostError:
            self._lose(BROKEN)
            return False
        except OSError as exc:  # a full disk, say: try again, the expiry is far off
            log.warning("lock refresh failed", lock=str(self.path), error=str(exc))
        return True

    @classmethod
    def acquire(
        cls,
        state_dir: Path,
        cluster: str,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        break_lock: bool = False,
        run_id: str | None = None,
    ) -> ApplyLock:
        private_dir(state_dir)
        path = lock_path(state_dir, cluster)
        base = LockInfo.for_this_process(cluster, run_id)
        started = datetime.fromisoformat(base.started_at)
        info = LockInfo(
            **{**asdict(base), "expires_at": (started + timedelta(seconds=ttl)).isoformat()}
        )
        content = json.dumps(asdict(info), indent=2) + "\n"
        for attempt in (1, 2):
            try:
                _create_with_content(path, content)
            except FileExistsError:
                if attempt == 2 or not cls._handle_existing(path, cluster, break_lock):
                    raise
                continue
            log.info("lock acquired", cluster=cluster, lock=str(path), run_id=info.run_id)
            held = cls(path, info, ttl)
            held._start_renewal()
            return held
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _handle_existing(path: Path, cluster: str, break_lock: bool) -> bool:
        """Raise LockHeldError, or break a stale lock (with --break-lock) and return True."""
        try:
            held = read_lock(path)
        except (ValueError, KeyError, TypeError, OSError):
            held = None
            reason: str | None = "its content is unreadable"
            who = "an unknown holder"
        else:
            if held is None:  # released between our create and our read: try again
                return True
            reason = stale_reason(held)
            who = held.describe()
        if reason is None:
            hint = " (--break-lock only breaks a stale lock)" if break_lock else ""
            raise LockHeldError(
                f"cluster {cluster} is locked by another apply: {who}; lock file {path}{hint}"
            )
        if not break_lock:
            raise StaleLockError(
                f"cluster {cluster} has a stale lock from {who}: {reason}; make sure no apply "
                f"is running, then re-run with --break-lock (lock file {path})"
            )
        aside = path.with_name(f"{path.name}.broken-{now_utc().strftime('%Y%m%dT%H%M%S')}")
        os.replace(path, aside)
        log.warning(
            "stale lock broken", cluster=cluster, holder=who, reason=reason, moved_to=str(aside)
        )
        return True

    def refresh(self) -> None:
        """Push the expiry forward (the background renewal does, every ttl/3)."""
        with self._guard:
            if self._stopped.is_set():
                return  # released
            current = self._current()
            if current is None or current.run_id != self.info.run_id:
                raise LockLostError(f"lost the lock {self.path}: {BROKEN}")
            expires = now_utc() + timedelta(seconds=self.ttl)
            info = LockInfo(**{**asdict(self.info), "expires_at": expires.isoformat()})
            tmp = self.path.with_name(
                self.path.name + f".{os.getpid()}.{threading.get_ident()}.tmp"
            )
            fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(asdict(info), indent=2) + "\n")
            os.replace(tmp, self.path)
            self.info = info

    def _check_held(self) -> None:
        """The lock file is still this run's."""
        current = self._current()
        if current is None or current.run_id != self.info.run_id:
            who = "it is gone" if current is None else f"it is now held by {current.describe()}"
            raise LockLostError(f"lost the lock {self.path}: {who}")

    def _current(self) -> LockInfo | None:
        try:
            return read_lock(self.path)
        except (ValueError, KeyError, TypeError, OSError):
            return None

    def _let_go(self) -> None:
        current = self._current()
        if current is not None and current.run_id == self.info.run_id:
            self.path.unlink(missing_ok=True)
            log.info("lock released", lock=str(self.path), run_id=self.info.run_id)
