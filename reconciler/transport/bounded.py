"""A shared bound on SSH work across every watched cluster.

:class:`BoundedTransport` wraps one run's transport so that each SSH handshake, exec
request and SFTP transfer holds a slot of one ``asyncio.Semaphore`` shared by all
clusters (`reconcile watch --max-ssh`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from reconciler.transport.interface import (
    CommandOutput,
    FileCopy,
    NodeSession,
    NodeTarget,
    Transport,
)


class BoundedSession:
    """A session whose commands and transfers each take a slot of the shared limit."""

    def __init__(self, inner: NodeSession, limit: asyncio.Semaphore) -> None:
        self._inner = inner
        self._limit = limit

    @property
    def target(self) -> NodeTarget:
        return self._inner.target

    async def run(self, command: str, *, stdin: str | None = None) -> CommandOutput:
        async with self._limit:
            return await self._inner.run(command, stdin=stdin)

    async def upload(self, local_path: str, remote_name: str) -> None:
        async with self._limit:
            await self._inner.upload(local_path, remote_name)

    async def list_files(self) -> dict[str, str]:
        async with self._limit:
            return await self._inner.list_files()

    async def file_digests(self, names: Iterable[str]) -> dict[str, str | None]:
        async with self._limit:
            return await self._inner.file_digests(names)

    async def download(self, remote_name: str) -> bytes:
        async with self._limit:
            return await self._inner.download(remote_name)

    async def download_to(self, remote_name: str, local_path: Path, limit: int) -> FileCopy:
        async with self._limit:
            return await self._inner.download_to(remote_name, local_path, limit)

    async def close(self) -> None:
        await self._inner.close()


class BoundedTransport:
    """Wraps a run's transport: connecting and every exec/SFTP request hold a slot.

    One semaphore is shared by all clusters' transports, so at most ``limit``
    SSH handshakes or requests are in flight in the whole process however many
    clusters are watched; a long asynchronous MMP command (polled with
    ``status``) does not hold a slot while it runs on the node.
    """

    def __init__(self, inner: Transport, limit: asyncio.Semaphore) -> None:
        self._inner = inner
        self._limit = limit
        self._sessions: dict[str, BoundedSession] = {}

    async def session(self, target: NodeTarget) -> NodeSession:
        async with self._limit:
            inner = await self._inner.session(target)
        wrapped = self._sessions.get(target.name)
        if wrapped is None or wrapped._inner is not inner:
            wrapped = BoundedSession(inner, self._limit)
            self._sessions[target.name] = wrapped
        return wrapped

    def forget(self, target: NodeTarget) -> None:
        self._sessions.pop(target.name, None)
        self._inner.forget(target)

    async def close(self) -> None:
        self._sessions.clear()
        await self._inner.close()
