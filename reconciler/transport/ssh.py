"""SSH transport (asyncssh): one connection per node per run, one exec per MMP command.

* Authentication: the password from the environment variable named by
  ``ssh.password_env``, a private key file (``ssh.key``) and/or the SSH agent
  (``ssh.agent``). Nothing else: no ~/.ssh/config, no default key files.
* Host keys are verified against ``ssh.known_hosts`` (OpenSSH format; for a port
  other than 22 the entry reads ``[host]:port``). An unknown key is refused with
  its SHA256 fingerprint unless ``accept_new_host_keys`` is set, which appends it
  to the file; a *changed* key is always refused.
* Library and OS errors are mapped to :mod:`reconciler.common.errors` at this
  boundary. Permanent connect failures (authentication, host key) are
  remembered for the run: a node gets one login attempt per run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import stat
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
import structlog

from reconciler.common.errors import (
    AuthFailedError,
    CommandFailedError,
    CommandTimeoutError,
    HostKeyError,
    IncompleteOutputError,
    SpecError,
    TransportError,
    UnreachableError,
)
from reconciler.common.file_limits import (
    CERT_LIMIT,
    KNOWN_HOSTS_LIMIT,
    FileReadError,
    read_bounded,
    read_text_bounded,
)
from reconciler.common.logging_setup import register_secret
from reconciler.spec.model import SshSpec
from reconciler.transport.interface import CommandOutput, NodeTarget

log = structlog.get_logger(__name__)

_READ_CHUNK = 1 << 16
_T = TypeVar("_T")


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


def known_hosts_pattern(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


class KnownHosts:
    """The known_hosts file: read once per run, appended to only for new hosts."""

    def __init__(self, path: Path, *, accept_new: bool) -> None:
        self.path = path
        self.accept_new = accept_new
        try:  # bounded, a regular file only (reconciler.common.file_limits)
            self._text = read_text_bounded(path, KNOWN_HOSTS_LIMIT, "known_hosts file")
        except FileReadError as exc:
            if not exc.missing:
                raise SpecError(f"ssh.known_hosts: cannot read {path}: {exc.reason}") from None
            self._text = ""
        self.added: list[str] = []

    def for_asyncssh(self) -> asyncssh.SSHKnownHosts:
        return asyncssh.import_known_hosts(self._text)

    def known_keys(self, host: str, addr: str, port: int) -> list[asyncssh.SSHKey]:
        trusted = asyncssh.match_known_hosts(
            self.for_asyncssh(), host, addr, port if port != 22 else None
        )
        return list(trusted[0])

    def add(self, host: str, port: int, key: asyncssh.SSHKey) -> None:
        algorithm, data = key.export_public_key("openssh").decode("ascii").split()[:2]
        line = f"{known_hosts_pattern(host, port)} {algorithm} {data}\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        prefix = "" if not self._text or self._text.endswith("\n") else "\n"
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(prefix + line)
        self._text += prefix + line
        self.added.append(line.strip())


@dataclass
class _KeyVerdict:
    """What the host-key callback saw, for the error message."""

    presented: asyncssh.SSHKey | None = None
    changed: bool = False
    added: bool = False


class _VerifyingClient(asyncssh.SSHClient):
    """Called by asyncssh only for a key that known_hosts does not trust."""

    def __init__(self, known_hosts: KnownHosts, verdict: _KeyVerdict) -> None:
        self._known_hosts = known_hosts
        self._verdict = verdict

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self._verdict.presented = key
        self._verdict.changed = bool(self._known_hosts.known_keys(host, addr, port))
        if self._verdict.changed or not self._known_hosts.accept_new:
            return False
        self._known_hosts.add(host, port, key)
        self._verdict.added = True
        log.warning(
            "host key added to known_hosts",
            host=known_hosts_pattern(host, port),
            fingerprint=key.get_fingerprint("sha256"),
            known_hosts=str(self._known_hosts.path),
        )
        return True


def _fingerprint(key: asyncssh.SSHKey | None) -> str:
    return key.get_fingerprint("sha256") if key is not None else "unknown"


@dataclass
class SshSession:
    """One node's open SSH connection (and its SFTP channel, opened on first use)."""

    target: NodeTarget
    conn: asyncssh.SSHClientConnection
    command_timeout: float
    _sftp: asyncssh.SFTPClient | None = field(default=None, repr=False)

    async def run(self, command: str, *, stdin: str | None = None) -> CommandOutput:
        name = self.target.name
        started = time.monotonic()
        try:
            result = await asyncio.wait_for(
                self.conn.run(command, input=stdin, check=False, errors="replace"),
                timeout=self.command_timeout,
            )
        except (TimeoutError, asyncssh.TimeoutError):
            raise CommandTimeoutError(
                name, f"{command!r} timed out after {self.command_timeout:g}s"
            ) from None
        except (asyncssh.Error, OSError) as exc:
            raise UnreachableError(name, f"connection lost during {command!r}: {exc}") from exc
        if result.exit_status is None:
            # The channel closed without an exit status (or with a signal): whatever text
            # came may be cut, so it is never read as the command's output.
            raise IncompleteOutputError(
                name,
                f"{command!r} ended without an exit status (the channel closed early); "
                "its output is not used",
            )
        output = CommandOutput(
            node=name,
            command=command,
            stdout=_as_text(result.stdout),
            stderr=_as_text(result.stderr),
            exit_status=result.exit_status,
            duration=time.monotonic() - started,
        )
        log.debug(
            "command",
            node=name,
            command=command,
            exit_status=output.exit_status,
            duration=round(output.duration, 3),
        )
        if output.failed:
            raise CommandFailedError(name, command, output.text, output.exit_status)
        return output

    async def _sftp_client(self) -> asyncssh.SFTPClient:
        if self._sftp is None:
            try:
                self._sftp = await asyncio.wait_for(
                    self.conn.start_sftp_client(), timeout=self.command_timeout
                )
            except TimeoutError:
                raise CommandTimeoutError(self.target.name, "SFTP start timed out") from None
            except (asyncssh.Error, OSError) as exc:
                raise UnreachableError(self.target.name, f"SFTP unavailable: {exc}") from exc
        return self._sftp

    async def upload(self, local_path: str, remote_name: str) -> None:
        what = f"sftp put {remote_name}"
        try:
            # Read here, bounded and regular files only (a file swapped for a FIFO after
            # planning is refused, never opened by the SFTP client).
            data = read_bounded(local_path, CERT_LIMIT, "file to upload")
        except FileReadError as exc:
            raise CommandFailedError(self.target.name, what, str(exc), None) from None
        sftp = await self._sftp_client()

        async def put() -> None:
            async with sftp.open(remote_name, "wb") as remote:
                await remote.write(data)

        try:
            await asyncio.wait_for(put(), timeout=self.command_timeout)
        except TimeoutError:
            raise CommandTimeoutError(self.target.name, f"{what} timed out") from None
        except asyncssh.SFTPError as exc:
            raise CommandFailedError(self.target.name, what, str(exc.reason), None) from exc
        except OSError as exc:
            raise CommandFailedError(
                self.target.name, what, f"local file: {exc.strerror}", None
            ) from exc
        except asyncssh.Error as exc:
            raise UnreachableError(self.target.name, f"connection lost during {what}") from exc
        log.info("uploaded", node=self.target.name, file=remote_name)

    async def list_files(self) -> dict[str, str]:
        sftp = await self._sftp_client()
        return await self._sftp_call("SFTP listing", self._hash_all(sftp))

    async def file_digests(self, names: Iterable[str]) -> dict[str, str | None]:
        wanted = list(dict.fromkeys(names))
        sftp = await self._sftp_client()

        async def digest_or_none(name: str) -> str | None:
            try:
                return await _digest_of(sftp, name)
            except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPFileIsADirectory):
                return None
            except asyncssh.SFTPFailure:
                # some servers open a directory and fail the read: not a regular file
                # (as the listing skips it); any other failure is raised
                perms = (await sftp.stat(name)).permissions
                if perms is not None and not stat.S_ISREG(perms):
                    return None
                raise

        async def all_of() -> dict[str, str | None]:
            # concurrently, like the listing: the requests are pipelined on the channel
            digests = await asyncio.gather(*(digest_or_none(n) for n in wanted))
            return dict(zip(wanted, digests, strict=True))

        return await self._sftp_call("sftp read " + " ".join(wanted), all_of())

    async def _sftp_call(self, what: str, call: Coroutine[Any, Any, _T]) -> _T:
        try:
            return await asyncio.wait_for(call, timeout=self.command_timeout)
        except TimeoutError:
            raise CommandTimeoutError(self.target.name, f"{what} timed out") from None
        except asyncssh.SFTPError as exc:
            raise CommandFailedError(self.target.name, what, str(exc.reason), None) from exc
        except asyncssh.Error as exc:
            raise UnreachableError(self.target.name, f"connection lost during {what}") from exc

    async def _hash_all(self, sftp: asyncssh.SFTPClient) -> dict[str, str]:
        names: list[str] = []
        for entry in await sftp.readdir("."):
            name = entry.filename
            if not isinstance(name, str) or name in (".", ".."):
                continue
            perms = entry.attrs.permissions
            if perms is not None and not stat.S_ISREG(perms):
                continue
            names.append(name)
        # The files are read concurrently (SFTP requests are pipelined on the channel): the
        # listing costs a few round trips instead of four per file.
        digests = await asyncio.gather(*(_digest_of(sftp, n) for n in names))
        return dict(sorted(zip(names, digests, strict=True)))

    async def close(self) -> None:
        if self._sftp is not None:
            self._sftp.exit()
            self._sftp = None
        self.conn.close()
        with contextlib.suppress(TimeoutError, asyncssh.Error, OSError):
            await asyncio.wait_for(self.conn.wait_closed(), timeout=5)


async def _digest_of(sftp: asyncssh.SFTPClient, name: str) -> str:
    digest = hashlib.sha256()
    async with sftp.open(name, "rb") as fh:
        while True:
            chunk = await fh.read(_READ_CHUNK)
            if not chunk:
                break
            digest.update(chunk if isinstance(chunk, bytes) else chunk.encode())
    return digest.hexdigest()


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


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
        verdict = _KeyVerdict()
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
            "client_factory": lambda: _VerifyingClient(self.known_hosts, verdict),
        }
        where = f"{s.user}@{target.host}:{target.port}"
        started = time.monotonic()
        try:
            conn = await asyncio.wait_for(
                asyncssh.connect(target.host, target.port, **options),
                timeout=s.connect_timeout * 2,
            )
        except asyncssh.HostKeyNotVerifiable:
            pattern = known_hosts_pattern(target.host, target.port)
            fp = _fingerprint(verdict.presented)
            if verdict.changed:
                message = (
                    f"host key CHANGED for {pattern}: the server presented {fp}, which does "
                    f"not match {s.known_hosts}; refusing (possible man-in-the-middle; fix "
                    f"the known_hosts entry yourself if the node was really reinstalled)"
                )
            else:
                message = (
                    f"unknown host key for {pattern}: the server presented {fp}, not in "
                    f"{s.known_hosts}; verify it and re-run with --accept-new-host-keys"
                )
            raise HostKeyError(target.name, message) from None
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
