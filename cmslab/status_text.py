"""Render `database cluster status` exactly as docs/status-format.md describes (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

LABEL_WIDTH = 25  # values start at column 27 ("label" padded to 25, then ": ")
CERT_LABELS = (
    "Server Key",
    "Server Certificate",
    "Client Key",
    "Client Certificate",
    "CA Certificate",
)

# member states, computed by the node from PostgreSQL
MASTER = "master"
REPLICA_IN_SYNC = "replica-in-sync"
REPLICA = "replica"
DISCONNECTED = "disconnected"

WORDS = {
    "master": {
        MASTER: "Connected Master",
        REPLICA_IN_SYNC: "Connected Slave ( In Sync )",
        REPLICA: "Connected Slave",
        DISCONNECTED: "Disconnected",
    },
    "primary": {
        MASTER: "Connected Primary",
        REPLICA_IN_SYNC: "Connected Replica ( In Sync )",
        REPLICA: "Connected Replica",
        DISCONNECTED: "Disconnected",
    },
}


@dataclass(frozen=True)
class Member:
    address: str
    state: str
    me: bool = False


@dataclass(frozen=True)
class StatusView:
    status: str  # Enabled | Error | Disabled
    error: str | None = None
    members: tuple[Member, ...] = ()
    node_in_use: str | None = None
    interface: str | None = None
    certs: tuple[str | None, ...] = (None, None, None, None, None)
    last_command: str | None = None
    last_result: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _line(label: str, value: str, indent: str = "") -> str:
    return f"{indent}{label:<{LABEL_WIDTH - len(indent)}}: {value}"


def render(view: StatusView, wording: str) -> str:
    words = WORDS[wording]
    out: list[str] = []
    if view.error:
        out.append(_line("ERROR", view.error))
    out.append(_line("Status", view.status))
    out.append("Nodes:")
    for m in view.members:
        label = f"{m.address} (me)" if m.me else m.address
        out.append(_line(label, words.get(m.state, m.state), "    "))
    out.append(_line("Node in use", view.node_in_use or "none"))
    out.append("")
    out.append(_line("Interface", view.interface or "none"))
    out.append("")
    out.append("Certificates")
    for label, value in zip(CERT_LABELS, view.certs, strict=True):
        out.append(_line(label, value or "none", "  "))
    out.append("")
    if view.last_command:
        out.append(_line("Last command", f"'{view.last_command}' ({view.last_result})"))
    else:
        out.append(_line("Last command", "none"))
    return "\n".join(out) + "\n"


def cert_columns(certs: list[str] | None) -> tuple[str | None, ...]:
    """Map the names given to `certs` (5 for a database node, 3 for a client) onto the 5 lines."""
    if not certs:
        return (None, None, None, None, None)
    if len(certs) == 3:
        return (None, None, certs[0], certs[1], certs[2])
    return tuple(certs)
