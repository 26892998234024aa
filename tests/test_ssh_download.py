"""`SshSession.download` (what `reconcile import` copies certificates with) against the real
in-process asyncssh server of ``test_ssh_transport``: the bytes whole, and bounded like
every read (a regular file only, at most CERT_LIMIT), failures as CommandFailedError."""

from __future__ import annotations

import pytest
from test_ssh_transport import SshServer, client_key, server, trusted  # noqa: F401

from reconciler.common.errors import CommandFailedError
from reconciler.common.file_limits import CERT_LIMIT
from reconciler.transport.ssh import SshSettings, SshTransport


async def _download(server: SshServer, settings: SshSettings, name: str) -> bytes:  # noqa: F811
    transport = SshTransport(settings)
    try:
        session = await transport.session(server.target())
        return await session.download(name)
    finally:
        await transport.close()


async def test_download_returns_the_bytes(server: SshServer, trusted: SshSettings) -> None:  # noqa: F811
    data = bytes(range(256)) * 300  # binary (a DER certificate), several read chunks
    (server.root / "ca.der").write_bytes(data)
    assert await _download(server, trusted, "ca.der") == data


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (None, "No such file"),
        ("dir", "not a regular file"),
        ("large", "too large"),
    ],
)
async def test_download_refuses_what_is_no_certificate_file(
    server: SshServer,  # noqa: F811
    trusted: SshSettings,  # noqa: F811
    make: str | None,
    reason: str,
) -> None:
    if make == "dir":
        (server.root / "x").mkdir()
    elif make == "large":
        (server.root / "x").write_bytes(b"0" * (CERT_LIMIT + 1))
    with pytest.raises(CommandFailedError) as caught:
        await _download(server, trusted, "x")
    assert reason.lower() in str(caught.value).lower()
    assert "sftp get x" in str(caught.value)
