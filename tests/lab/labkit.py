"""Test helpers: start a lab in a temp dir on free ports, talk to its nodes as an admin would."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from cmslab import cleanup, cli, labfiles
from cmslab.config import LabConfig, LabPaths, NodeConfig, make_config
from cmslab.ports import port_is_free
from cmslab.scratch import scratch_dir

UPLOAD_NAMES = {
    "server_key": "dbclusterserver.key",
    "server_crt": "dbclusterserver.cer",
    "client_key": "dbclusterclient.key",
    "client_crt": "dbclusterclient.cer",
    "ca": "labRootca.cer",
}


def free_ports(addresses: list[str]) -> tuple[int, int]:
    """An SSH port and a database port free on every address (plus the derived ports)."""
    for _ in range(200):
        ssh = random.randrange(20000, 29000)
        db = random.randrange(30000, 39000)
        ports = [ssh, ssh + 1000, db, db + 10000]
        if all(port_is_free(a, p) for a in addresses for p in ports):
            return ssh, db
    raise RuntimeError("no free ports")


@dataclass
class Lab:
    paths: LabPaths
    cfg: LabConfig
    password: str

    @property
    def root(self) -> Path:
        return self.paths.root

    def node(self, i: int) -> NodeConfig:
        return self.cfg.nodes[i]

    def fault(self, node: NodeConfig, fault: str, arg: str | None = None) -> dict[str, Any]:
        reply = cli.control(
            self.paths, {"op": "fault", "node": node.name, "fault": fault, "arg": arg}
        )
        assert reply["ok"], reply
        return reply

    def syslog(self, node: NodeConfig, lines: int = 30) -> str:
        path = self.paths.node_dir(node.name) / "syslog"
        return "\n".join(path.read_text().splitlines()[-lines:])

    def status_rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = cli.control(self.paths, {"op": "status"})["nodes"]
        return rows

    async def connect(self, node: NodeConfig) -> asyncssh.SSHClientConnection:
        return await asyncssh.connect(
            node.address,
            node.ssh_port,
            username="admin",
            password=self.password,
            known_hosts=str(self.paths.known_hosts),
            client_keys=None,
            agent_path=None,
        )

    async def mmp(
        self, node: NodeConfig, command: str, stdin: str | None = None
    ) -> tuple[str, int]:
        async with await self.connect(node) as conn:
            r = await conn.run(command, input=stdin, check=False, timeout=120)
        out = str(r.stdout or "")
        return out, int(r.exit_status if r.exit_status is not None else -1)

    async def ok(self, node: NodeConfig, command: str, stdin: str | None = None) -> str:
        out, status = await self.mmp(node, command, stdin)
        assert status == 0 and "FAILURE" not in out, f"{node.name}: {command}: {out}"
        return out

    async def status(self, node: NodeConfig) -> str:
        return await self.ok(node, "database cluster status")

    async def upload_certs(self, node: NodeConfig) -> None:
        root = self.paths.root
        files = {
            UPLOAD_NAMES["server_key"]: root / labfiles.server_key(node.name),
            UPLOAD_NAMES["server_crt"]: root / labfiles.server_cert(node.name),
            UPLOAD_NAMES["client_key"]: root / labfiles.CLIENT_KEY,
            UPLOAD_NAMES["client_crt"]: root / labfiles.CLIENT_CERT,
            UPLOAD_NAMES["ca"]: root / labfiles.CA_CERT,
        }
        async with await self.connect(node) as conn, conn.start_sftp_client() as sftp:
            for name, src in files.items():
                await sftp.put(str(src), name)

    async def prepare(self, node: NodeConfig) -> None:
        await self.upload_certs(node)
        await self.ok(node, "database cluster localnode a")
        names = " ".join(
            UPLOAD_NAMES[k] for k in ("server_key", "server_crt", "client_key", "client_crt", "ca")
        )
        await self.ok(node, f"database cluster certs {names}")

    async def wait_status(
        self, node: NodeConfig, check: Callable[[str], bool], timeout: float = 90
    ) -> str:
        deadline = time.monotonic() + timeout
        out = ""
        while time.monotonic() < deadline:
            try:
                out, _ = await self.mmp(node, "database cluster status")
            except (OSError, asyncssh.Error):
                out = "(no answer)"
            if check(out):
                return out
            await asyncio.sleep(0.3)
        raise AssertionError(f"{node.name}: status never matched:\n{out}")

    async def wait_done(self, node: NodeConfig, command: str, timeout: float = 120) -> str:
        return await self.wait_status(
            node,
            lambda s: f"'{command}' (Success)" in s or f"'{command}' (Failed)" in s,
            timeout,
        )

    async def build_cluster(self) -> None:
        """initialize on node 1, join the others, as an admin would type it."""
        first = self.cfg.nodes[0]
        await asyncio.gather(*(self.prepare(n) for n in self.cfg.nodes))
        await self.ok(first, "database cluster initialize")
        out = await self.wait_done(first, "database cluster initialize")
        assert "(Success)" in out, out + self.syslog(first)
        for n in self.cfg.nodes[1:]:
            await self.ok(n, f"database cluster join {first.address}")
            out = await self.wait_done(n, f"database cluster join {first.address}")
            assert "(Success)" in out, out + self.syslog(n)


def new_lab(base_address: str, nodes: int = 3, **kw: Any) -> Lab:
    """A lab directory (not started) in /tmp on free ports."""
    root = scratch_dir("cmslab-test-")
    ssh, db = free_ports(addresses(base_address, nodes))
    cfg = make_config(nodes, base_address, ssh_port=ssh, db_port=db, **kw)
    return Lab(LabPaths(root), cfg, "")


def start(lab: Lab) -> None:
    cli.up(lab.paths, lab.cfg)
    lab.password = labfiles.read_password(lab.paths)


def running(lab: Lab) -> Iterator[Lab]:
    """Start ``lab`` for a fixture; stop it (and any leftovers) afterwards, whatever happened."""
    try:
        start(lab)
        yield lab
    finally:
        try:
            stop_lab(lab)
        finally:
            cleanup.stop_everything(lab.paths)


def addresses(base: str, n: int) -> list[str]:
    import ipaddress

    b = ipaddress.IPv4Address(base)
    return [str(b + i) for i in range(n)]


def stop_lab(lab: Lab, remove: bool = True) -> None:
    cli.down(lab.paths)
    left = cleanup.running_postmasters(lab.paths)
    assert cleanup.supervisor_pid(lab.paths) is None
    assert not left, f"postgres still running: {left}"
    if remove and not os.environ.get("CMSLAB_TEST_KEEP"):
        shutil.rmtree(lab.root, ignore_errors=True)


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 60, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")
