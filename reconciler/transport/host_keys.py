"""Host keys: the ``ssh.known_hosts`` file and the check of the key a server presents.

:class:`KnownHosts` is the file (OpenSSH format, ``[host]:port`` for a port other
than 22), read once per run and appended to only for a new host when new keys are
accepted. :class:`VerifyingClient` is asked by asyncssh about a key the file does not
trust and records what it saw in a :class:`KeyVerdict`; :func:`unverified_host_key_error`
turns that into the error (unknown key, or a CHANGED key, always refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import asyncssh
import structlog

from reconciler.common.errors import HostKeyError, SpecError
from reconciler.common.file_limits import KNOWN_HOSTS_LIMIT, FileReadError, read_text_bounded

log = structlog.get_logger(__name__)


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
class KeyVerdict:
    """What the host-key callback saw, for the error message."""

    presented: asyncssh.SSHKey | None = None
    changed: bool = False
    added: bool = False


class VerifyingClient(asyncssh.SSHClient):
    """Called by asyncssh only for a key that known_hosts does not trust."""

    def __init__(self, known_hosts: KnownHosts, verdict: KeyVerdict) -> None:
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


def unverified_host_key_error(
    node: str, host: str, port: int, verdict: KeyVerdict, known_hosts: Path
) -> HostKeyError:
    """The error for a key asyncssh could not verify: unknown, or CHANGED (never accepted)."""
    pattern = known_hosts_pattern(host, port)
    fp = _fingerprint(verdict.presented)
    if verdict.changed:
        message = (
            f"host key CHANGED for {pattern}: the server presented {fp}, which does "
            f"not match {known_hosts}; refusing (possible man-in-the-middle; fix "
            f"the known_hosts entry yourself if the node was really reinstalled)"
        )
    else:
        message = (
            f"unknown host key for {pattern}: the server presented {fp}, not in "
            f"{known_hosts}; verify it and re-run with --accept-new-host-keys"
        )
    return HostKeyError(node, message)
