"""The transport interface: how the reconciler talks to one node's MMP.

A :class:`Transport` lives for one run (one `observe`, `status` or `apply`) and
hands out at most one :class:`NodeSession` (one SSH connection) per node: the
first call to :meth:`Transport.session` connects, later calls return the same
session. A permanent failure (wrong password, refused host key) is remembered
and raised again without a new attempt, so a run never hammers a node with
logins. Implementations: :mod:`reconciler.transport.ssh` (asyncssh) and
:mod:`tests.fake_transport` (unit tests of the executor).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from reconciler.spec.model import ClusterSpec

STATUS_COMMAND = "database cluster status"


@dataclass(frozen=True)
class NodeTarget:
    """Where a spec node's MMP answers SSH."""

    name: str  # the spec node's name
    address: str  # the clustering address (what `join` targets, the database's host)
    host: str  # where SSH connects (mmp_host, default = address)
    port: int  # SSH port (mmp_port, default = ssh.port)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.host}:{self.port})"


@dataclass(frozen=True)
class CommandOutput:
    """One exec request's result."""

    node: str
    command: str
    stdout: str
    stderr: str
    exit_status: int | None
    duration: float  # seconds

    @property
    def text(self) -> str:
        return self.stdout + self.stderr

    @property
    def failed(self) -> bool:
        """The MMP's convention: `FAILURE` in the output or a non-zero exit status."""
        return "FAILURE" in self.text or (self.exit_status not in (0, None))


@dataclass(frozen=True)
class FileCopy:
    """A file copied from a node: its size and sha256 (of the bytes written locally)."""

    size: int
    sha256: str


class NodeSession(Protocol):
    """An open connection to one node's MMP."""

    @property
    def target(self) -> NodeTarget: ...

    async def run(self, command: str, *, stdin: str | None = None) -> CommandOutput:
        """One exec request. Raises CommandFailedError on `FAILURE`/non-zero exit,
        CommandTimeoutError after the command timeout, UnreachableError when the
        connection is lost."""
        ...

    async def upload(self, local_path: str, remote_name: str) -> None:
        """Copy a local file into the MMP's SFTP root under ``remote_name``."""
        ...

    async def list_files(self) -> dict[str, str]:
        """Regular files in the SFTP root: name -> sha256 hex of the content."""
        ...

    async def file_digests(self, names: Iterable[str]) -> dict[str, str | None]:
        """sha256 hex of just the named files in the SFTP root (None: no such regular
        file). Reads only those files, not the whole root as ``list_files`` does."""
        ...

    async def download(self, remote_name: str) -> bytes:
        """The bytes of the regular file ``remote_name`` in the SFTP root, at most
        :data:`reconciler.common.file_limits.CERT_LIMIT` (read bounded, like every file the
        reconciler reads). Raises CommandFailedError when it is missing, not a regular file
        or too large; CommandTimeoutError, UnreachableError."""
        ...

    async def download_to(self, remote_name: str, local_path: Path, limit: int) -> FileCopy:
        """Stream the regular file ``remote_name`` into a new 0600 ``local_path`` (written
        under a temporary name and renamed whole), refusing it past ``limit`` bytes: for
        files larger than certificates (backups). Same errors as :meth:`download`."""
        ...

    async def close(self) -> None: ...


class Transport(Protocol):
    async def session(self, target: NodeTarget) -> NodeSession:
        """The run's session for ``target`` (connects on first use).

        Raises UnreachableError, AuthFailedError or HostKeyError."""
        ...

    def forget(self, target: NodeTarget) -> None:
        """Drop a session whose connection was lost, so the next call reconnects once."""
        ...

    async def close(self) -> None:
        """Close every session of this run."""
        ...


def node_targets(spec: ClusterSpec) -> dict[str, NodeTarget]:
    """Spec node name -> target, in spec order."""
    return {
        n.name: NodeTarget(
            name=n.name,
            address=n.address,
            host=n.mmp_host or n.address,
            port=n.mmp_port or spec.ssh.port,
        )
        for n in spec.nodes
    }


def target_for(spec: ClusterSpec, key: str) -> NodeTarget:
    """The target of a spec node name, or of a member address the spec does not list
    (reached on that address with the spec's SSH port)."""
    targets = node_targets(spec)
    if key in targets:
        return targets[key]
    return NodeTarget(name=key, address=key, host=key, port=spec.ssh.port)
