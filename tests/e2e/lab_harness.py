"""End-to-end harness: a cmslab per test module, the `reconcile` CLI run as a subprocess.

Each module picks its own loopback range (127.0.20.x and up, never the lab tests'
127.0.11.x/127.0.12.x) and gets free SSH ports; the database listens on 5432 on
each node's own address, as the reconciler expects. The lab always goes down.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import psycopg
from ruamel.yaml import YAML

from cmslab import cli
from cmslab.config import LabConfig, LabPaths, make_config
from cmslab.ports import port_is_free
from cmslab.scratch import discard_lab, scratch_dir

REPO = Path(__file__).resolve().parents[2]
CLI_TIMEOUT = 240.0
DB_PORT = 5432


def free_ssh_port(addresses: Sequence[str]) -> int:
    for port in range(22300, 23900, 7):
        if all(port_is_free(a, p) for a in addresses for p in (port, port + 1000)):
            return port
    raise RuntimeError("no free SSH port")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


@dataclass
class E2ELab:
    paths: LabPaths
    cfg: LabConfig
    password: str

    @property
    def root(self) -> Path:
        return self.paths.root

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.cfg.nodes]

    def address(self, name: str) -> str:
        return self.cfg.node(name).address

    def env(self, **overrides: str | None) -> dict[str, str]:
        env = dict(os.environ)
        env["CMSLAB_PASSWORD"] = self.password
        env.pop("SSH_AUTH_SOCK", None)
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def spec(
        self,
        nodes: int | None = None,
        *,
        master: str | None = None,
        policy: dict[str, Any] | None = None,
        name: str | None = None,
        known_hosts: str | None = None,
    ) -> Path:
        """A variant of the lab's spec (first ``nodes`` nodes), written next to lab.yaml."""
        yaml = YAML()
        data = yaml.load(self.paths.lab_yaml.read_text())
        if nodes is not None:
            data["nodes"] = data["nodes"][:nodes]
        if master is not None:
            data["master"] = master
        if policy:
            data["policy"] = dict(policy)
        if known_hosts is not None:
            data["ssh"]["known_hosts"] = known_hosts
        path = self.root / (name or f"spec-{nodes or len(self.cfg.nodes)}.yaml")
        with path.open("w") as fh:
            yaml.dump(data, fh)
        return path

    def reconcile(
        self, *args: str | Path, env: dict[str, str] | None = None, timeout: float = CLI_TIMEOUT
    ) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "reconciler.cli", *map(str, args)],
            cwd=REPO,
            env=env or self.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def apply(self, spec: Path, *extra: str) -> Result:
        return self.reconcile(
            "apply", spec, "--yes", "--action-timeout", "90", "--settle-seconds", "20", *extra
        )

    def connect(self, name: str) -> Any:
        """An SSH connection to a node's MMP as the admin (password, host key verified)."""
        node = self.cfg.node(name)
        return asyncssh.connect(
            node.address,
            node.ssh_port,
            username="admin",
            password=self.password,
            known_hosts=str(self.paths.known_hosts),
            client_keys=None,
            agent_path=None,
        )

    def mmp(self, name: str, command: str, *, stdin: str | None = None) -> str:
        """One MMP command typed over SSH, as an admin would; its output (asserted SUCCESS)."""

        async def run() -> str:
            async with self.connect(name) as conn:
                result = await conn.run(command, input=stdin, check=False, timeout=60)
            out = str(result.stdout or "")
            assert result.exit_status == 0 and "FAILURE" not in out, f"{name}: {command}: {out}"
            return out

        return asyncio.run(run())

    def fault(self, name: str, fault: str, arg: str | None = None) -> None:
        reply = cli.control(self.paths, {"op": "fault", "node": name, "fault": fault, "arg": arg})
        assert reply["ok"], reply

    def rows(self) -> dict[str, dict[str, Any]]:
        """The lab's own table; a node without a role has role None."""
        rows = cli.control(self.paths, {"op": "status"})["nodes"]
        for r in rows:
            if r.get("role") in ("-", ""):
                r["role"] = None
        return {r["name"]: r for r in rows}

    def wait_for(self, predicate: Any, timeout: float = 60.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.rows()):
                return
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}: {self.rows()}")

    def db(self, name: str) -> psycopg.Connection[Any]:
        """A TLS connection to a node's database as the spec's client (CN postgres)."""
        key = self.root / "keys" / "client.key"
        return psycopg.connect(
            host=self.address(name),
            port=DB_PORT,
            dbname="cluster",
            user="postgres",
            sslmode="verify-ca",
            sslrootcert=str(self.root / "ca" / "ca.crt"),
            sslcert=str(self.root / "certs" / "client.crt"),
            sslkey=str(key),
            connect_timeout=5,
            autocommit=True,
        )


def start_lab(base_address: str, nodes: int) -> E2ELab:
    paths = LabPaths(scratch_dir("reconcile-e2e-") / "lab")
    first = base_address.rsplit(".", 1)
    addresses = [f"{first[0]}.{int(first[1]) + i}" for i in range(nodes)]
    for a in addresses:
        if not port_is_free(a, DB_PORT):
            raise RuntimeError(f"{a}:{DB_PORT} is in use")
    cfg = make_config(nodes, base_address=base_address, ssh_port=free_ssh_port(addresses))
    cli.up(paths, cfg)
    return E2ELab(paths=paths, cfg=cfg, password=(paths.password_file.read_text().strip()))


def stop_lab(lab: E2ELab) -> None:
    discard_lab(lab.paths, lab.root.parent)


def lab_fixture(base_address: str, nodes: int) -> Iterator[E2ELab]:
    lab = start_lab(base_address, nodes)
    try:
        yield lab
    finally:
        stop_lab(lab)


def kill_process(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
