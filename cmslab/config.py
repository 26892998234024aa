"""Lab layout: the nodes, their addresses and ports, and where their files live (DIR/lab.json)."""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

LAB_FILE = "lab.json"
DEFAULT_DIR = ".lab"
DEFAULT_BASE_ADDRESS = "127.0.10.1"
DEFAULT_SSH_PORT = 2222
DEFAULT_DB_PORT = 5432
INTERNAL_PORT_OFFSET = 10000  # PostgreSQL itself listens on db_port + this, behind the proxy
WATCH_PORT_OFFSET = 1000  # dbcluster_watcher endpoint on ssh_port + this


@dataclass(frozen=True)
class NodeConfig:
    name: str
    address: str
    ssh_port: int
    db_port: int
    pg_port: int
    watch_port: int

    @property
    def hostname(self) -> str:
        return self.name


@dataclass(frozen=True)
class LabConfig:
    nodes: tuple[NodeConfig, ...]
    wording: str = "master"
    latency_ms: int = 0
    admin_user: str = "admin"
    light: bool = False  # no pre-cluster PostgreSQL (pg-local): nodes run one only while clustered
    extra: dict[str, str] = field(default_factory=dict)

    def node(self, name_or_address: str) -> NodeConfig:
        for n in self.nodes:
            if name_or_address in (n.name, n.address):
                return n
        raise KeyError(name_or_address)

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, indent=2) + "\n"

    @staticmethod
    def from_json(text: str) -> LabConfig:
        data = json.loads(text)
        nodes = tuple(NodeConfig(**n) for n in data.pop("nodes"))
        return LabConfig(nodes=nodes, **data)


def make_config(
    nodes: int,
    base_address: str = DEFAULT_BASE_ADDRESS,
    ssh_port: int = DEFAULT_SSH_PORT,
    db_port: int = DEFAULT_DB_PORT,
    wording: str = "master",
    latency_ms: int = 0,
    pg_port: int | None = None,
    watch_port: int | None = None,
    light: bool = False,
) -> LabConfig:
    if nodes < 1:
        raise ValueError("--nodes must be at least 1")
    if wording not in ("master", "primary"):
        raise ValueError("--wording must be master or primary")
    base = ipaddress.IPv4Address(base_address)
    if not base.is_loopback:
        raise ValueError("the lab only uses loopback addresses (127.0.0.0/8)")
    out = []
    for i in range(nodes):
        addr = base + i
        if not addr.is_loopback:
            raise ValueError(f"{addr} is not a loopback address")
        out.append(
            NodeConfig(
                name=f"cms-lab-{i + 1}",
                address=str(addr),
                ssh_port=ssh_port,
                db_port=db_port,
                pg_port=pg_port if pg_port is not None else db_port + INTERNAL_PORT_OFFSET,
                watch_port=watch_port if watch_port is not None else ssh_port + WATCH_PORT_OFFSET,
            )
        )
    return LabConfig(nodes=tuple(out), wording=wording, latency_ms=latency_ms, light=light)


@dataclass(frozen=True)
class LabPaths:
    root: Path

    @property
    def lab_json(self) -> Path:
        return self.root / LAB_FILE

    @property
    def lab_yaml(self) -> Path:
        return self.root / "lab.yaml"

    @property
    def ca_dir(self) -> Path:
        return self.root / "ca"

    @property
    def certs_dir(self) -> Path:
        return self.root / "certs"

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def hostkeys_dir(self) -> Path:
        return self.root / "hostkeys"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def password_file(self) -> Path:
        return self.root / "admin-password"

    @property
    def control_sock(self) -> Path:
        return self.root / "control.sock"

    @property
    def supervisor_pid(self) -> Path:
        return self.root / "supervisor.pid"

    @property
    def supervisor_log(self) -> Path:
        return self.root / "supervisor.log"

    @property
    def template_dir(self) -> Path:
        return self.root / "pg-template"

    def node_dir(self, name: str) -> Path:
        return self.root / "nodes" / name


def write_config(paths: LabPaths, cfg: LabConfig) -> None:
    tmp = paths.lab_json.with_suffix(".tmp")
    tmp.write_text(cfg.to_json())
    os.replace(tmp, paths.lab_json)


def read_config(paths: LabPaths) -> LabConfig:
    return LabConfig.from_json(paths.lab_json.read_text())


def with_overrides(
    cfg: LabConfig, wording: str | None, latency_ms: int | None, light: bool | None = None
) -> LabConfig:
    if light is not None:
        cfg = replace(cfg, light=light)
    if wording is not None:
        cfg = replace(cfg, wording=wording)
    if latency_ms is not None:
        cfg = replace(cfg, latency_ms=latency_ms)
    return cfg
