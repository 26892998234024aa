"""SSH transport (asyncssh): one connection per node per run, one exec per MMP command.

* Authentication: the password from the environment variable named by
  ``ssh.password_env``, a private key file (``ssh.key``) and/or the SSH agent
  (``ssh.agent``). Nothing else: no ~/.ssh/config, no default key files.
* Host keys are verified against ``ssh.known_hosts`` (OpenSSH format; for a port
  other than 22 the entry reads ``[host]:port``). An unknown key is refused with
  its SHA256 fingerprint unless ``accept_new_host_keys`` is set, which appends it
  to the file; a *changed* key is always refused (:mod:`reconciler.transport.host_keys`).
* Library and OS errors are mapped to :mod:`reconciler.common.errors` at this
  boundary. Permanent connect failures (authentication, host key) are
  remembered for the run: a node gets one login attempt per run.

This module holds the settings (:class:`SshSettings`, resolved from the spec) and
the run's connections (:class:`SshTransport`); an open connection, its commands and
its SFTP files are :class:`~reconciler.transport.ssh_session.SshSession`.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import structlog

from reconciler.common.errors import (
    AuthFailedError,
    HostKeyError,
    SpecError,
    TransportError,
    UnreachableError,
)
from reconciler.common.logging_setup import register_secret
from reconciler.spec.model import SshSpec
from reconciler.transport.host_keys import (
    KeyVerdict,
    KnownHosts,
    VerifyingClient,
    unverified_host_key_error,
)
from reconciler.transport.interface import NodeTarget
from reconciler.transport.ssh_session import SshSession

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SshSettings:
    """Everything the SSH transport needs, resolved from the spec (paths absolute)."""

    user: str
    known_hosts: Path
    password_env: str | None = None
    key_file: Path | None = None
    agent: bool = False
    connect_timeout: float = 10.0
    command_timeout: float = 60.0
    accept_new_host_keys: bool = False

    @classmethod
    def from_spec(
        cls,
        ssh: SshSpec,
        base_dir: Path,
        *,
        accept_new_host_keys: bool = False,
        timeout: float | None = None,
    ) -> SshSettings:
        def resolve(path: str) -> Path:
            p = Path(path).expanduser()
            return (p if p.is_absolute() else base_dir / p).resolve()

        return cls(
            user=ssh.user,
            known_hosts=resolve(ssh.known_hosts),
            password_env=ssh.password_env,
            key_file=resolve(ssh.key) if ssh.key else None,
            agent=ssh.agent,
            connect_timeout=timeout or ssh.connect_timeout,
            command_timeout=timeout or ssh.command_timeout,
            accept_new_host_keys=accept_new_host_keys,
        )


class SshTransport:
    """The run's connections, one per node, opened on first use (concurrently across nodes)."""

    def __init__(self, settings: SshSettings) -> None:
        self.settings = settings
        self._password = self._read_password(settings)
        if settings.key_file is not None and not settings.key_file.is_file():
            raise SpecError(f"ssh.key: private key file {settings.key_file} does not exist")
        self.known_hosts = KnownHosts(
            settings.known_hosts, accept_new=settings.accept_new_host_keys
        )
        self._sessions: dict[str, SshSession] = {}
        self._failures: dict[str, TransportError] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.connect_attempts: dict[str, int] = {}

    @staticmethod
    def _read_password(settings: SshSettings) -> str | None:
        if settings.password_env is None:
            return None
        value = os.environ.get(settings.password_env)
        register_secret(value)
        if value is None:
            raise SpecError(
                f"ssh.password_env: environment variable {settings.password_env} is not set "
                f"(it must hold the MMP password for user {settings.user})"
            )
        return value

    def _auth_description(self) -> str:
        ways = []
        if self.settings.password_env:
            ways.append(f"password from ${self.settings.password_env}")
        if self.settings.key_file:
            ways.append(f"key {self.settings.key_file}")
        if self.settings.agent:
            ways.append("SSH agent")
        return ", ".join(ways) or "no credentials configured"

    async def session(self, target: NodeTarget) -> SshSession:
        lock = self._locks.setdefault(target.name, asyncio.Lock())
        async with lock:
            existing = self._sessions.get(target.name)
            if existing is not None:
                return existing
            failure = self._failures.get(target.name)
            if failure is not None:
                raise failure
            try:
                session = await self._connect(target)
            except (AuthFailedError, HostKeyError) as exc:
                self._failures[target.name] = exc  # one login attempt per node per run
                raise
            self._sessions[target.name] = session
            return session

    def forget(self, target: NodeTarget) -> None:
        session = self._sessions.pop(target.name, None)
        if session is not None:
            session.conn.abort()

    async def _connect(self, target: NodeTarget) -> SshSession:
        s = self.settings
        self.connect_attempts[target.name] = self.connect_attempts.get(target.name, 0) + 1
        verdict = KeyVerdict()
        agent_path: str | None = os.environ.get("SSH_AUTH_SOCK") if s.agent else None
        options: dict[str, Any] = {
            "username": s.user,
            "known_hosts": self.known_hosts.for_asyncssh(),
            "client_keys": [str(s.key_file)] if s.key_file else None,
            "agent_path": agent_path,
            "config": None,
            "password": self._password,
            "kbdint_auth": self._password is not None,
            "connect_timeout": s.connect_timeout,
            "login_timeout": s.connect_timeout,
            "client_factory": lambda: VerifyingClient(self.known_hosts, verdict),
        }
        where = f"{s.user}@{target.host}:{target.port}"
        started = time.monotonic()
        try:
            conn = await asyncio.wait_for(
                asyncssh.connect(target.host, target.port, **options),
                timeout=s.connect_timeout * 2,
            )
        except asyncssh.HostKeyNotVerifiable:
            raise unverified_host_key_error(
                target.name, target.host, target.port, verdict, s.known_hosts
            ) from None
        except asyncssh.PermissionDenied:
            raise AuthFailedError(
                target.name,
                f"authentication failed for {where} ({self._auth_description()}); "
                "not retrying in this run",
            ) from None
        except asyncssh.KeyExchangeFailed as exc:
            raise HostKeyError(
                target.name, f"key exchange with {where} failed: {exc.reason}"
            ) from None
        except TimeoutError:
            raise UnreachableError(
                target.name, f"connect to {where} timed out after {s.connect_timeout:g}s"
            ) from None
        except (asyncssh.Error, OSError) as exc:
            reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
            raise UnreachableError(target.name, f"cannot connect to {where}: {reason}") from None
        log.debug(
            "connected",
            node=target.name,
            host=target.host,
            port=target.port,
            seconds=round(time.monotonic() - started, 3),
        )
        return SshSession(target=target, conn=conn, command_timeout=s.command_timeout)

    async def close(self) -> None:
        sessions = list(self._sessions.values())
        self._sessions.clear()
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
