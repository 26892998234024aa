"""SSH transport against a real in-process asyncssh server on 127.0.0.1, port 0.

The middle tier between the fake transport and the full lab: real key
exchange, host-key checks, password/key authentication, exec and SFTP.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import pytest

from reconciler.common.errors import (
    AuthFailedError,
    CommandFailedError,
    CommandTimeoutError,
    HostKeyError,
    IncompleteOutputError,
    SpecError,
    UnreachableError,
)
from reconciler.transport.host_keys import known_hosts_pattern
from reconciler.transport.interface import NodeTarget
from reconciler.transport.ssh import SshSettings, SshTransport

PASSWORD = "s3cret-pw"
ENV = "TEST_MMP_PASSWORD"
STATUS = """Status                   : Disabled
Nodes:
Node in use              : none
Interface                : none
Last command             : none
"""


@dataclass
class ServerStats:
    connections: int = 0
    password_attempts: int = 0
    commands: list[str] = field(default_factory=list)
    stdin: list[str] = field(default_factory=list)


class _Server(asyncssh.SSHServer):
    def __init__(self, stats: ServerStats, client_key: asyncssh.SSHKey | None) -> None:
        self.stats = stats
        self.client_key = client_key

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.stats.connections += 1
        self.conn = conn

    def begin_auth(self, username: str) -> bool:
        if self.client_key is not None:
            self.conn.set_authorized_keys(
                asyncssh.import_authorized_keys(
                    self.client_key.export_public_key("openssh").decode()
                )
            )
        return True

    def password_auth_supported(self) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return self.client_key is not None

    def validate_password(self, username: str, password: str) -> bool:
        self.stats.password_attempts += 1
        return username == "admin" and password == PASSWORD


async def _mmp(process: asyncssh.SSHServerProcess[str], stats: ServerStats) -> None:
    command = process.command or ""
    stats.commands.append(command)
    if command == "database cluster status":
        process.stdout.write(STATUS)
        process.exit(0)
    elif command == "database cluster remove":
        process.stdout.write("Are you sure? (Y/n) ")
        answer = (await process.stdin.readline()).strip()
        stats.stdin.append(answer)
        process.stdout.write("SUCCESS\n" if answer == "Y" else "FAILURE: not confirmed\n")
        process.exit(0 if answer == "Y" else 1)
    elif command == "prints-failure":
        process.stdout.write("FAILURE: usage: database cluster localnode <a|b|c|d>\n")
        process.exit(0)  # FAILURE in the text is enough
    elif command == "cut-short":
        process.stdout.write(STATUS[: len(STATUS) // 2])
        process.channel.close()  # no exit status
    elif command == "slow":
        await asyncio.sleep(30)
        process.exit(0)
    else:
        process.stdout.write(f"FAILURE: unknown command '{command}' (type 'help')\n")
        process.exit(1)


@dataclass
class SshServer:
    port: int
    host_key: asyncssh.SSHKey
    root: Path
    stats: ServerStats

    def target(self, name: str = "cms1") -> NodeTarget:
        return NodeTarget(name=name, address="127.0.0.1", host="127.0.0.1", port=self.port)

    def known_hosts_line(self, key: asyncssh.SSHKey | None = None) -> str:
        key = key or self.host_key
        public = key.export_public_key("openssh").decode().split()[:2]
        return f"{known_hosts_pattern('127.0.0.1', self.port)} {' '.join(public)}\n"


@pytest.fixture
def client_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


@pytest.fixture
async def server(tmp_path: Path, client_key: asyncssh.SSHKey) -> AsyncIterator[SshServer]:
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    root = tmp_path / "sftp-root"
    root.mkdir()
    stats = ServerStats()
    acceptor = await asyncssh.create_server(
        lambda: _Server(stats, client_key),
        "127.0.0.1",
        0,
        server_host_keys=[host_key],
        process_factory=lambda p: _mmp(p, stats),
        sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(root).encode()),
        encoding="utf-8",
    )
    port = acceptor.sockets[0].getsockname()[1]
    try:
        yield SshServer(port=port, host_key=host_key, root=root, stats=stats)
    finally:
        acceptor.close()
        await acceptor.wait_closed()


def _settings(tmp_path: Path, **overrides: object) -> SshSettings:
    values: dict[str, object] = {
        "user": "admin",
        "known_hosts": tmp_path / "known_hosts",
        "password_env": ENV,
        "connect_timeout": 5.0,
        "command_timeout": 5.0,
    }
    values.update(overrides)
    return SshSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def trusted(tmp_path: Path, server: SshServer, monkeypatch: pytest.MonkeyPatch) -> SshSettings:
    (tmp_path / "known_hosts").write_text(server.known_hosts_line())
    monkeypatch.setenv(ENV, PASSWORD)
    return _settings(tmp_path)


async def test_status_command_over_exec(server: SshServer, trusted: SshSettings) -> None:
    transport = SshTransport(trusted)
    try:
        session = await transport.session(server.target())
        out = await session.run("database cluster status")
    finally:
        await transport.close()
    assert out.stdout == STATUS
    assert out.exit_status == 0
    assert out.node == "cms1"
    assert server.stats.commands == ["database cluster status"]


async def test_one_connection_per_node_per_run(server: SshServer, trusted: SshSettings) -> None:
    transport = SshTransport(trusted)
    try:
        sessions = await asyncio.gather(*(transport.session(server.target()) for _ in range(5)))
        for s in sessions:
            await s.run("database cluster status")
    finally:
        await transport.close()
    assert all(s is sessions[0] for s in sessions)
    assert server.stats.connections == 1
    assert len(server.stats.commands) == 5  # one exec request per command


async def test_confirmation_sent_on_stdin(server: SshServer, trusted: SshSettings) -> None:
    transport = SshTransport(trusted)
    try:
        session = await transport.session(server.target())
        out = await session.run("database cluster remove", stdin="Y\n")
    finally:
        await transport.close()
    assert "SUCCESS" in out.stdout
    assert server.stats.stdin == ["Y"]


async def test_failure_text_and_nonzero_exit_raise(server: SshServer, trusted: SshSettings) -> None:
    transport = SshTransport(trusted)
    try:
        session = await transport.session(server.target())
        with pytest.raises(CommandFailedError) as failure:
            await session.run("prints-failure")
        assert failure.value.exit_status == 0
        assert "usage" in failure.value.output
        with pytest.raises(CommandFailedError) as unknown:
            await session.run("database cluster frobnicate")
        assert unknown.value.exit_status == 1
        assert not unknown.value.retryable
    finally:
        await transport.close()


async def test_command_timeout(server: SshServer, tmp_path: Path, trusted: SshSettings) -> None:
    transport = SshTransport(_settings(tmp_path, command_timeout=0.5))
    try:
        session = await transport.session(server.target())
        with pytest.raises(CommandTimeoutError) as err:
            await session.run("slow")
        assert err.value.retryable
    finally:
        await transport.close()


async def test_channel_closed_without_exit_status_is_a_failed_observation(
    server: SshServer, tmp_path: Path, trusted: SshSettings
) -> None:
    transport = SshTransport(_settings(tmp_path))
    try:
        session = await transport.session(server.target())
        with pytest.raises(IncompleteOutputError) as err:
            await session.run("cut-short")
        assert err.value.retryable
        assert "without an exit status" in err.value.detail
    finally:
        await transport.close()


async def test_sftp_upload_and_hashed_listing(
    server: SshServer, trusted: SshSettings, tmp_path: Path
) -> None:
    local = tmp_path / "dbclusterserver.crt"
    local.write_bytes(b"-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n")
    (server.root / "existing.key").write_bytes(b"key material")
    (server.root / "subdir").mkdir()
    transport = SshTransport(trusted)
    try:
        session = await transport.session(server.target())
        await session.upload(str(local), "dbclusterserver.crt")
        files = await session.list_files()
    finally:
        await transport.close()
    assert (server.root / "dbclusterserver.crt").read_bytes() == local.read_bytes()
    assert files == {
        "dbclusterserver.crt": hashlib.sha256(local.read_bytes()).hexdigest(),
        "existing.key": hashlib.sha256(b"key material").hexdigest(),
    }


async def test_upload_of_a_fifo_is_refused_without_opening_it(
    server: SshServer, trusted: SshSettings, tmp_path: Path
) -> None:
    fifo = tmp_path / "swapped.key"
    os.mkfifo(fifo)  # nobody writes to it: opening it for reading would hang
    transport = SshTransport(trusted)
    try:
        session = await transport.session(server.target())
        with pytest.raises(CommandFailedError) as err:
            await asyncio.wait_for(session.upload(str(fifo), "swapped.key"), timeout=20)
    finally:
        await transport.close()
    assert "not a regular file" in str(err.value)
    assert not (server.root / "swapped.key").exists()


async def test_unknown_host_key_refused_with_fingerprint(
    server: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, PASSWORD)
    transport = SshTransport(_settings(tmp_path))
    try:
        with pytest.raises(HostKeyError) as err:
            await transport.session(server.target())
    finally:
        await transport.close()
    message = str(err.value)
    assert server.host_key.get_fingerprint("sha256") in message
    assert "--accept-new-host-keys" in message
    assert not (tmp_path / "known_hosts").exists()
    assert server.stats.password_attempts == 0  # never authenticated to an unverified host


async def test_accept_new_host_key_writes_bracketed_entry(
    server: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, PASSWORD)
    transport = SshTransport(_settings(tmp_path, accept_new_host_keys=True))
    try:
        await (await transport.session(server.target())).run("database cluster status")
    finally:
        await transport.close()
    text = (tmp_path / "known_hosts").read_text()
    assert text == server.known_hosts_line()
    assert text.startswith(f"[127.0.0.1]:{server.port} ssh-ed25519 ")
    # the next run verifies against the file, without the flag
    transport = SshTransport(_settings(tmp_path))
    try:
        await (await transport.session(server.target())).run("database cluster status")
    finally:
        await transport.close()


async def test_changed_host_key_refused_even_with_accept_new(
    server: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, PASSWORD)
    other = asyncssh.generate_private_key("ssh-ed25519")
    (tmp_path / "known_hosts").write_text(server.known_hosts_line(other))
    transport = SshTransport(_settings(tmp_path, accept_new_host_keys=True))
    try:
        with pytest.raises(HostKeyError) as err:
            await transport.session(server.target())
    finally:
        await transport.close()
    assert "CHANGED" in str(err.value)
    assert server.host_key.get_fingerprint("sha256") in str(err.value)
    assert (tmp_path / "known_hosts").read_text() == server.known_hosts_line(other)


async def test_wrong_password_one_attempt_per_run(
    server: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "known_hosts").write_text(server.known_hosts_line())
    monkeypatch.setenv(ENV, "wrong-password")
    transport = SshTransport(_settings(tmp_path))
    try:
        with pytest.raises(AuthFailedError) as first:
            await transport.session(server.target())
        with pytest.raises(AuthFailedError) as second:
            await transport.session(server.target())
    finally:
        await transport.close()
    assert second.value is first.value
    assert server.stats.connections == 1
    assert transport.connect_attempts == {"cms1": 1}
    assert "wrong-password" not in str(first.value)
    assert f"${ENV}" in str(first.value)
    assert not first.value.retryable


def test_missing_password_env_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(SpecError, match=ENV):
        SshTransport(_settings(tmp_path))


async def test_key_file_authentication(
    server: SshServer, tmp_path: Path, client_key: asyncssh.SSHKey
) -> None:
    (tmp_path / "known_hosts").write_text(server.known_hosts_line())
    key_file = tmp_path / "id_ed25519"
    client_key.write_private_key(str(key_file))
    transport = SshTransport(_settings(tmp_path, password_env=None, key_file=key_file))
    try:
        out = await (await transport.session(server.target())).run("database cluster status")
    finally:
        await transport.close()
    assert out.exit_status == 0
    assert server.stats.password_attempts == 0


async def test_connection_refused_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(ENV, PASSWORD)
    transport = SshTransport(_settings(tmp_path))
    target = NodeTarget(name="gone", address="127.0.0.1", host="127.0.0.1", port=port)
    try:
        with pytest.raises(UnreachableError) as err:
            await transport.session(target)
    finally:
        await transport.close()
    assert err.value.retryable
    assert "gone" in str(err.value)


async def test_file_digests_reads_only_the_named_files(
    server: SshServer, trusted: SshSettings
) -> None:
    (server.root / "server.key").write_bytes(b"key material")
    (server.root / "other.cer").write_bytes(b"not asked for")
    (server.root / "subdir").mkdir()
    transport = SshTransport(trusted)
    try:
        session = await transport.session(server.target())
        digests = await session.file_digests(["server.key", "missing.cer", "subdir"])
    finally:
        await transport.close()
    assert digests == {
        "server.key": hashlib.sha256(b"key material").hexdigest(),
        "missing.cer": None,
        "subdir": None,
    }
