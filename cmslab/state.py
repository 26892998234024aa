"""A node's persistent state (DIR/nodes/<name>/state.json): what the MMP was told."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

ROLE_DATABASE = "database"  # initialized or joined: hosts a cluster database
ROLE_CLIENT = "client"  # ran `connect`: uses the cluster without a database of its own


@dataclass
class NodeState:
    interface: str | None = None
    certs: list[str] | None = None  # 5 names (database node) or 3 (client)
    role: str | None = None  # None = not clustered
    node_in_use: str | None = None  # client role: the address it connected to
    known_members: list[str] = field(default_factory=list)  # client role: last member list seen
    last_command: str | None = None
    last_result: str | None = None  # Success | Failed | In progress
    error: str | None = None  # shown as `ERROR : ...` and `Status : Error`
    schema_error_armed: bool = False
    rejoin: bool = False  # was master when it lost power: re-copy from an elected master
    latency_ms: int = 0

    @staticmethod
    def load(path: Path) -> NodeState:
        if not path.exists():
            return NodeState()
        data = json.loads(path.read_text())
        known = {f.name for f in fields(NodeState)}
        return NodeState(**{k: v for k, v in data.items() if k in known})

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, path)
