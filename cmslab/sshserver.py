"""The node's MMP over SSH (asyncssh): password auth for the admin user, exec, shell, SFTP."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import TYPE_CHECKING

import asyncssh

from cmslab import labfiles, mmp

if TYPE_CHECKING:
    from cmslab.node import LabNode

CONFIRM_TIMEOUT = 60.0


class MmpSshServer(asyncssh.SSHServer):
    def __init__(self, node: LabNode) -> None:
        self.node = node
        self.conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        self.node.ssh_conns.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.node.ssh_conns.discard(self.conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        good_user = secrets.compare_digest(username, self.node.lab.cfg.admin_user)
        good_pw = secrets.compare_digest(password.encode(), self.node.lab.password.encode())
        return good_user and good_pw


class Closed(Exception):
    pass


async def _latency(node: LabNode) -> None:
    ms = node.state.latency_ms
    if ms > 0:
        await asyncio.sleep(ms / 1000)


def _writer(process: asyncssh.SSHServerProcess[str]) -> mmp.Write:
    async def write(text: str) -> None:
        if process.is_closing() or process.channel.is_closing():
            raise Closed
        if text:
            process.stdout.write(text)
            await process.stdout.drain()

    return write


def _asker(process: asyncssh.SSHServerProcess[str]) -> mmp.Ask:
    async def ask(prompt: str) -> str:
        await _writer(process)(prompt)
        try:
            line = await asyncio.wait_for(process.stdin.readline(), CONFIRM_TIMEOUT)
        except (TimeoutError, asyncssh.BreakReceived, asyncssh.TerminalSizeChanged):
            return ""
        return str(line)

    return ask


async def _one(node: LabNode, process: asyncssh.SSHServerProcess[str], line: str) -> int:
    write = _writer(process)
    result = await mmp.run_command(node, line, _asker(process), write)
    await _latency(node)
    await write(result.text)
    return result.status


async def _shell(node: LabNode, process: asyncssh.SSHServerProcess[str]) -> int:
    write = _writer(process)
    status = 0
    while True:
        await write(f"{node.name}> ")
        try:
            line = await process.stdin.readline()
        except (asyncssh.TerminalSizeChanged, asyncssh.BreakReceived):
            continue
        if not line:
            return status
        text = str(line).strip()
        if text in ("exit", "quit", "logout"):
            return status
        if text == "syslog follow":
            await _follow_until_key(node, process)
            status = 0
        elif text:
            status = await _one(node, process, text)


async def _follow_until_key(node: LabNode, process: asyncssh.SSHServerProcess[str]) -> None:
    """In the shell, `syslog follow` streams until Enter, Ctrl-C or end of input."""
    follow = asyncio.create_task(mmp.follow_syslog(node, _writer(process)))
    stop = asyncio.create_task(process.stdin.readline())
    done, _ = await asyncio.wait({follow, stop}, return_when=asyncio.FIRST_COMPLETED)
    for task in (follow, stop):
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
    if follow in done and not follow.cancelled() and follow.exception() is not None:
        raise Closed


async def handle_process(node: LabNode, process: asyncssh.SSHServerProcess[str]) -> None:
    status = 0
    try:
        if process.command is None:
            status = await _shell(node, process)
        else:
            status = await _one(node, process, process.command)
    except (Closed, BrokenPipeError, ConnectionError, asyncssh.Error):
        return
    except Exception as exc:
        node.syslog.log("mmp", f"internal error: {exc!r}", severity="err")
        with contextlib.suppress(Exception):
            process.stdout.write("FAILURE: internal error\n")
        status = 1
    with contextlib.suppress(Exception):
        process.exit(status)


async def start_ssh(node: LabNode) -> asyncssh.SSHAcceptor:
    key = asyncssh.read_private_key(str(labfiles.host_key_path(node.lab.paths, node.name)))
    chroot = str(node.upload).encode()

    def sftp_factory(chan: asyncssh.SSHServerChannel[bytes]) -> asyncssh.SFTPServer:
        return asyncssh.SFTPServer(chan, chroot=chroot)

    async def process_factory(process: asyncssh.SSHServerProcess[str]) -> None:
        await handle_process(node, process)

    return await asyncssh.create_server(
        lambda: MmpSshServer(node),
        node.address,
        node.cfg.ssh_port,
        server_host_keys=[key],
        process_factory=process_factory,
        sftp_factory=sftp_factory,
        allow_scp=False,
        agent_forwarding=False,
        x11_forwarding=False,
        reuse_address=True,
        login_timeout=30,
    )
