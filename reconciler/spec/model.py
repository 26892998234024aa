"""The desired-state spec (a user-facing contract: keep field names stable).

Pure pydantic v2 models, frozen. Loading from YAML with line numbers lives in
:mod:`reconciler.spec.loader`; cross-field rules in :mod:`reconciler.spec.rules`;
certificate checks in :mod:`reconciler.spec.cert_checks`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


def remote_name(spec_path: str) -> str:
    """The bare file name a spec path gets on the MMP (its basename): commands name files so."""
    return spec_path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


class SpecModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NodeRole(StrEnum):
    DATABASE = "database"  # hosts a database: initialize / join
    CLIENT = "client"  # Call Bridge without a local database: connect


class KeyPair(SpecModel):
    """A certificate and its private key: the key is a local file the reconciler uploads
    (``key``) or a file that lives on the node only (``key_on_node``, made there by
    ``pki csr``; never read or uploaded). Exactly one of the two is given (a spec rule)."""

    cert: str = Field(description="Certificate file (PEM or DER), relative to the spec file")
    key: str | None = Field(
        default=None, description="Private key file, relative to the spec file (uploaded)"
    )
    key_on_node: str | None = Field(
        default=None,
        description="Bare file name of a private key that lives on the node (made there by "
        "`pki csr`): never read, copied or uploaded. Instead of `key`",
    )

    @property
    def key_ref(self) -> str:
        """How the planner names the key: its spec path, or the bare name on the node."""
        ref = self.key if self.key is not None else self.key_on_node
        if ref is None:  # refused by certificate_rules.check_key_sources before planning
            raise ValueError("a key pair names neither key nor key_on_node")
        return ref


class CertificateSet(SpecModel):
    ca: str = Field(description="CA certificate that signed the server and client certificates")
    server: KeyPair | None = Field(
        default=None, description="Server certificate and key (database nodes only)"
    )
    client: KeyPair = Field(description="Client certificate (CN must be `postgres`) and key")
    server_cn: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9*][A-Za-z0-9.*_-]*$",
        description="CN of the server certificate: what `reconcile certs request` asks for "
        "(default: the node's address) and what validate expects",
    )


class NodeSpec(SpecModel):
    name: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    address: str = Field(
        min_length=1, description="Address on the clustering interface (what `join` targets)"
    )
    role: NodeRole = NodeRole.DATABASE
    mmp_host: str | None = Field(
        default=None, description="Where the node's MMP answers SSH; default = address"
    )
    mmp_port: int | None = Field(
        default=None, ge=1, le=65535, description="SSH port of the MMP; default = ssh.port"
    )
    certificates: CertificateSet | None = Field(
        default=None, description="Per-node certificates overriding the cluster-wide block"
    )


class SshSpec(SpecModel):
    user: str = Field(default="admin", min_length=1)
    password_env: str | None = Field(
        default=None,
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="NAME of the environment variable holding the MMP password (upper case, "
        "digits, '_'; never a literal password)",
    )
    key: str | None = Field(default=None, description="Private key file for SSH authentication")
    agent: bool = Field(default=False, description="Use the SSH agent (SSH_AUTH_SOCK)")
    known_hosts: str = Field(description="known_hosts file used to verify host keys")
    port: int = Field(default=22, ge=1, le=65535)
    connect_timeout: float = Field(default=10.0, gt=0, le=300)
    command_timeout: float = Field(default=60.0, gt=0, le=3600)


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class MaintenanceWindow(SpecModel):
    days: tuple[Weekday, ...] = Field(min_length=1)
    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM, local time")
    end: str = Field(pattern=r"^([01]\d|2[0-4]):[0-5]\d$", description="HH:MM, local time")
    timezone: str = Field(default="UTC", description="IANA time zone, e.g. Europe/London")


class BackupPolicy(SpecModel):
    before_risky_steps: bool = Field(
        default=True,
        description="`backup snapshot` on every member (downloaded, with checksums) before a "
        "master move, a removal, a rotation, a rebuild or a recovery; false switches it off "
        "(the plan says so)",
    )
    keep: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Backup sets kept per cluster in the backup directory (the oldest go)",
    )


class Policy(SpecModel):
    allow_remove: bool = Field(
        default=False, description="Remove clustered nodes that the spec no longer lists"
    )
    allow_master_move: bool = Field(
        default=True, description="Move the master back to `master` when it differs"
    )
    allow_cluster_rebuild: bool = Field(
        default=False,
        description="Change the master's certificates or interface by Cisco's procedure "
        "(TAC 216549): every member leaves, the cluster is rebuilt on the former master, "
        "the others rejoin. The cluster has no master while it runs",
    )
    allow_unsafe_topology: bool = Field(
        default=False, description="Accept an even number or fewer than 3 database nodes"
    )
    max_database_nodes: int = Field(default=5, ge=1, le=32)
    cert_expiry_warning_days: int = Field(default=30, ge=0, le=3650)
    join_concurrency: int = Field(default=1, ge=1, le=8)
    action_timeout_seconds: float = Field(default=600.0, gt=0, le=86400)
    paused: bool = Field(default=False, description="Watch mode: observe and report only")
    maintenance_windows: tuple[MaintenanceWindow, ...] = Field(
        default=(), description="Watch heal mode: destructive steps only inside these windows"
    )
    backups: BackupPolicy = Field(default=BackupPolicy(), description="Backups before risky steps")


class ClusterSpec(SpecModel):
    version: Literal[1]
    cluster: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    interface: Literal["a", "b", "c", "d"] = "a"
    master: str = Field(description="The intended master: a database node's name")
    database_port: int = Field(
        default=5432,
        ge=1,
        le=65535,
        description="TCP port of the database on every node (CMS uses 5432; other values are "
        "for a lab). The reconciler reads the master's database and checks the firewall case "
        "on it",
    )
    nodes: tuple[NodeSpec, ...] = Field(min_length=1)
    certificates: CertificateSet
    ssh: SshSpec
    policy: Policy = Policy()

    def node(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    @property
    def database_nodes(self) -> tuple[NodeSpec, ...]:
        return tuple(n for n in self.nodes if n.role is NodeRole.DATABASE)

    def certificates_for(self, name: str) -> CertificateSet:
        node = self.node(name)
        return node.certificates or self.certificates
