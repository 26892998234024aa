"""One node's open SSH connection: MMP commands over exec, files over SFTP.

:class:`SshSession` runs one exec request per MMP command, uploads a file (read
bounded, written into the SFTP root under its bare name), lists or hashes the
root's regular files (sha256, read concurrently) and downloads one (bounded). Library
and OS errors become :mod:`reconciler.common.errors` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import stat
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
import structlog

from reconciler.common.errors import (
    CommandFailedError,
    CommandTimeoutError,
    IncompleteOutputError,
    UnreachableError,
)
from reconciler.common.file_limits import CERT_LIMIT, FileReadError, format_size, read_bounded
from reconciler.transport.interface import CommandOutput, FileCopy, NodeTarget

log = structlog.get_logger(__name__)

_READ_CHUNK = 1 << 16
_T = TypeVar("_T")


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

    async def download(self, remote_name: str) -> bytes:
        chunks: list[bytes] = []
        await self._read_remote(remote_name, CERT_LIMIT, chunks.append)
        return b"".join(chunks)

    async def download_to(self, remote_name: str, local_path: Path, limit: int) -> FileCopy:
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(prefix=f".{local_path.name}.", dir=local_path.parent)
        try:
            with os.fdopen(fd, "wb") as out:  # mkstemp: 0600

                def write(data: bytes) -> None:
                    nonlocal size
                    out.write(data)
                    digest.update(data)
                    size += len(data)

                await self._read_remote(remote_name, limit, write)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, local_path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return FileCopy(size, digest.hexdigest())

    async def _read_remote(
        self, remote_name: str, limit: int, write: Callable[[bytes], None]
    ) -> None:
        """Read a regular file of the SFTP root chunk by chunk, never past ``limit``."""
        what = f"sftp get {remote_name}"
        sftp = await self._sftp_client()

        def refused(reason: str) -> CommandFailedError:
            return CommandFailedError(self.target.name, what, reason, None)

        async def get() -> None:
            # Bounded like every read: a regular file only, never more than the limit + 1.
            attrs = await sftp.stat(remote_name)
            if attrs.permissions is not None and not stat.S_ISREG(attrs.permissions):
                raise refused("not a regular file; refused without reading it")
            if attrs.size is not None and attrs.size > limit:
                raise refused(f"too large ({attrs.size} bytes; the limit is {format_size(limit)})")
            total = 0
            async with sftp.open(remote_name, "rb") as fh:
                while chunk := await fh.read(_READ_CHUNK):
                    data = chunk if isinstance(chunk, bytes) else chunk.encode()
                    total += len(data)
                    if total > limit:
                        raise refused(f"grew over the limit of {format_size(limit)}")
                    write(data)

        await self._sftp_call(what, get())
        log.info("downloaded", node=self.target.name, file=remote_name)

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
