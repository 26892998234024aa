"""Parse the text of `database cluster status` into a :class:`ClusterStatus`.

Pure (no I/O) and total: :func:`parse_status` accepts any string and never
raises. The layouts it reads are described in ``docs/status-format.md``
("Parser notes" lists the exact rules). Lines it cannot place are kept in
``ClusterStatus.unparsed``; values it does not know are kept raw. Which lines
the text had is recorded in ``ClusterStatus.shown``; anything inside the
`Nodes:` block it could not place (and a text that ends inside the block) is
recorded in ``ClusterStatus.incomplete``, so that a missing or garbled line is
never read as "none".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from reconciler.common.addresses import normalize_address
from reconciler.observe.status_model import (
    Certificates,
    ClusterState,
    ClusterStatus,
    CommandResult,
    LastCommand,
    Line,
    Member,
    MemberRole,
    SyncState,
)

# Normalised label (lower case, single spaces) -> field it fills.
_VALUE_LABELS: dict[str, str] = {
    "error": "error",
    "status": "status",
    "node in use": "node_in_use",
    "interface": "interface",
    "server key": "server_key",
    "server certificate": "server_cert",
    "client key": "client_key",
    "client certificate": "client_cert",
    "ca certificate": "ca_cert",
    "last command": "last_command",
}
_LINES: dict[str, Line] = {label: Line(name) for label, name in _VALUE_LABELS.items()}
_LINES["nodes"] = Line.NODES
_HEADERS = frozenset({"nodes", "certificates"})
KNOWN_LABELS = frozenset(_VALUE_LABELS) | _HEADERS

_ECHO = re.compile(r"^\s*(?:\S*>\s*)?database\s+cluster\s+status\s*$", re.IGNORECASE)


def is_echo(line: str) -> bool:
    """The prompt and command a copied session starts with (skipped as the first line)."""
    return _ECHO.match(line) is not None


_ME = r"\(\s*me\s*\)"
# `<address>[ (me)] : <state>`: the address is one token without whitespace, so the
# first whitespace-then-colon after it is the separator (IPv6 colons are never
# preceded by whitespace). Equivalent to splitting on the last ` : ` whenever the
# state text itself contains no ` : `.
_MEMBER_SPACED = re.compile(
    rf"^\s*(?P<addr>\S+?)(?P<me>\s*{_ME})?\s+:(?P<state>.*)$", re.IGNORECASE | re.DOTALL
)
# `<address>[ (me)]: <state>` (no space before the colon): only when unambiguous,
# i.e. the address does not itself end in `:`.
_MEMBER_TIGHT = re.compile(
    rf"^\s*(?P<addr>\S*?[^\s:])(?P<me>\s*{_ME})?:(?:\s(?P<state>.*))?$",
    re.IGNORECASE | re.DOTALL,
)
_CONNECTED_ROLE = re.compile(
    r"^connected\s+(?P<role>master|primary|slave|replica)(?:\s*(?P<sync>\(\s*in\s*sync\s*\)))?$",
    re.IGNORECASE,
)
_DISCONNECTED = re.compile(r"^disconnected$", re.IGNORECASE)
_LEADING_CONNECTED = re.compile(r"^connected\b", re.IGNORECASE)
_LAST_COMMAND = re.compile(r"^'(?P<cmd>.*)'(?:\s*\((?P<res>[^()]*)\))?$", re.DOTALL)

_STATES = {
    "enabled": ClusterState.ENABLED,
    "error": ClusterState.ERROR,
    "disabled": ClusterState.DISABLED,
}
_RESULTS = {
    "success": CommandResult.SUCCESS,
    "failed": CommandResult.FAILED,
    "in progress": CommandResult.IN_PROGRESS,
}
_WORDING = {"master": "master", "slave": "master", "primary": "primary", "replica": "primary"}


@dataclass(frozen=True)
class MemberState:
    """The meaning of a member's state text."""

    connected: bool
    role: MemberRole
    sync: SyncState
    wording: str | None  # "master" / "primary" when the text names a role


def _norm(text: str) -> str:
    """Lower case with runs of whitespace collapsed to one space."""
    return " ".join(text.split()).lower()


def parse_member_state(text: str) -> MemberState:
    """Interpret the text after the colon of a member line (see docs/status-format.md)."""
    norm = " ".join(text.split())
    match = _CONNECTED_ROLE.match(norm)
    if match:
        word = match["role"].lower()
        if word in ("slave", "replica"):
            sync = SyncState.IN_SYNC if match["sync"] else SyncState.SYNCING
            return MemberState(True, MemberRole.REPLICA, sync, _WORDING[word])
        if not match["sync"]:  # a master with a sync suffix is not a known text
            return MemberState(True, MemberRole.MASTER, SyncState.UNKNOWN, _WORDING[word])
    if _DISCONNECTED.match(norm):
        return MemberState(False, MemberRole.UNKNOWN, SyncState.UNKNOWN, None)
    connected = _LEADING_CONNECTED.match(norm) is not None
    return MemberState(connected, MemberRole.UNKNOWN, SyncState.UNKNOWN, None)


def parse_state(raw: str) -> ClusterState:
    """Interpret the value of the `Status` line."""
    return _STATES.get(_norm(raw), ClusterState.UNKNOWN)


def parse_last_command(raw: str) -> LastCommand:
    """Interpret the value of `Last command` (`'<cmd>' (<Result>)` or `none`)."""
    match = _LAST_COMMAND.match(raw)
    if match is None:  # `none`, empty or text we do not know
        return LastCommand(command=None, result=CommandResult.OTHER, raw=raw)
    result = CommandResult.OTHER
    if match["res"] is not None:
        result = _RESULTS.get(_norm(match["res"]), CommandResult.OTHER)
    return LastCommand(command=match["cmd"], result=result, raw=raw)


def parse_member_line(line: str) -> Member | None:
    """`<address>[ (me)] : <state>` -> Member, or None when the line is not one."""
    match = _MEMBER_SPACED.match(line) or _MEMBER_TIGHT.match(line)
    if match is None:
        return None
    raw = (match["state"] or "").strip()
    if not raw:
        return None
    state = parse_member_state(raw)
    return Member(
        address=match["addr"],
        is_me=match["me"] is not None,
        connected=state.connected,
        role=state.role,
        sync=state.sync,
        raw=raw,
    )


def split_label(line: str) -> tuple[str, str] | None:
    """A known `Label : value` line (or a bare header) -> (normalised label, value)."""
    label, colon, value = line.partition(":")
    norm = _norm(label)
    if colon and norm in KNOWN_LABELS:
        return norm, value.strip()
    if not colon and norm in _HEADERS:
        return norm, ""
    return None


def optional_value(value: str) -> str | None:
    """`none` (any case) and the empty value mean "not set"."""
    return None if value == "" or value.lower() == "none" else value


def _lines(text: str) -> list[str]:
    text = text.replace("#011", "\t").replace("\r\n", "\n").replace("\r", "\n")
    return text.split("\n")


@dataclass
class _Builder:
    values: dict[str, str | None] = field(default_factory=dict)
    last_command: LastCommand | None = None
    state_raw: str | None = None
    members: list[Member] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)
    shown: set[Line] = field(default_factory=set)
    incomplete: list[str] = field(default_factory=list)

    def gap(self, why: str) -> None:
        if why not in self.incomplete:
            self.incomplete.append(why)

    def take(self, label: str, value: str, line: str) -> None:
        """Fill the field of ``label``; a field that already holds a value keeps it."""
        self.shown.add(_LINES[label])
        name = _VALUE_LABELS[label]
        if name == "status":
            if self.state_raw is not None:
                self.unparsed.append(line)
            else:
                self.state_raw = value
        elif name == "last_command":
            if self.last_command is not None:
                self.unparsed.append(line)
            else:
                self.last_command = parse_last_command(value)
        elif self.values.get(name) is not None:
            self.unparsed.append(line)
        else:
            self.values[name] = optional_value(value)

    def check_members(self) -> None:
        """The same member twice (in any spelling) with different states: not readable."""
        seen: dict[str, Member] = {}
        for m in self.members:
            key = normalize_address(m.address)
            other = seen.setdefault(key, m)
            if other is not m and (other.is_me, other.connected, other.role, other.sync) != (
                m.is_me,
                m.connected,
                m.role,
                m.sync,
            ):
                self.gap(
                    f"`Nodes:` lists {other.address} ({other.raw}) and {m.address} ({m.raw}): "
                    "the same member twice, with different states"
                )

    def build(self) -> ClusterStatus:
        wording = next(
            (w for m in self.members if (w := parse_member_state(m.raw).wording) is not None),
            None,
        )
        if not any(m.connected and m.role is MemberRole.MASTER for m in self.members):
            # A replica without `( In Sync )` in a view with no master has nothing to be
            # in sync with (the published minority capture): "no master", not "syncing".
            self.members = [
                m.model_copy(update={"sync": SyncState.NO_MASTER})
                if m.sync is SyncState.SYNCING
                else m
                for m in self.members
            ]
        self.check_members()
        v = self.values
        return ClusterStatus(
            state=ClusterState.UNKNOWN if self.state_raw is None else parse_state(self.state_raw),
            state_raw=self.state_raw,
            error=v.get("error"),
            members=tuple(self.members),
            node_in_use=v.get("node_in_use"),
            interface=v.get("interface"),
            certificates=Certificates(
                server_key=v.get("server_key"),
                server_cert=v.get("server_cert"),
                client_key=v.get("client_key"),
                client_cert=v.get("client_cert"),
                ca_cert=v.get("ca_cert"),
            ),
            last_command=self.last_command,
            wording=wording,
            unparsed=tuple(self.unparsed),
            shown=frozenset(self.shown),
            incomplete=tuple(self.incomplete),
        )


def _excerpt(line: str) -> str:
    text = line.strip()
    return text if len(text) <= 60 else text[:57] + "..."


def parse_status(text: str) -> ClusterStatus:
    """Parse one node's `database cluster status` output. Never raises on a str."""
    out = _Builder()
    # The `Nodes:` block: "before" it is seen, "open" while members are read, "blank"
    # after a blank line that follows a member, "closed" once a label line ended it.
    block = "before"
    first = True
    for raw_line in _lines(text):
        line = raw_line.rstrip()
        if not line.strip():
            if block == "open" and out.members:
                block = "blank"  # a blank line after members closes the block
            continue
        if first:
            first = False
            if is_echo(line):
                continue
        labelled = split_label(line)
        if block == "open":
            indented = line[0].isspace()
            if labelled is None or indented:
                member = parse_member_line(line)
                if member is not None:
                    out.members.append(member)
                    continue
            if labelled is None:
                out.unparsed.append(line)
                out.gap(f"a line inside `Nodes:` in an unknown layout: {_excerpt(line)!r}")
                continue
            block = "closed"
        if labelled is None:
            out.unparsed.append(line)
            if block == "blank" and parse_member_line(line) is not None:
                out.gap(f"a member line after a blank line inside `Nodes:`: {_excerpt(line)!r}")
            continue
        if block == "blank":
            block = "closed"
        label, value = labelled
        if label == "nodes":
            if value:
                out.unparsed.append(line)
                out.gap(f"the `Nodes:` header has text after it: {_excerpt(line)!r}")
            elif Line.NODES in out.shown:
                out.unparsed.append(line)
                out.gap("the `Nodes:` header appears twice")
            else:
                out.shown.add(Line.NODES)
                block = "open"
        elif label == "certificates":
            if value:
                out.unparsed.append(line)
        else:
            out.take(label, value, line)
    if block in ("open", "blank"):
        out.gap("the text ends inside the `Nodes:` block")
    return out.build()
