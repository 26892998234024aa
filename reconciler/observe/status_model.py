"""Frozen model of one node's `database cluster status` output.

Produced by :func:`reconciler.observe.status_parser.parse_status`; pure data, no I/O.
Every field that the MMP may print in an unknown form keeps its raw text next
to the interpreted value, so nothing is lost and nothing crashes.

A value is only as good as the line it came from: ``shown`` records which lines
the text had, and ``incomplete`` why a block could not be read whole. A field
whose line is missing is *unknown* (see :mod:`reconciler.observe.status_evidence`),
never "none": ``interface=None`` with ``Line.INTERFACE`` not in ``shown`` means
"not shown", with it means "`Interface : none`".
"""

from __future__ import annotations

from enum import StrEnum

from reconciler.common.frozen import Frozen


class ClusterState(StrEnum):
    """The `Status` line."""

    ENABLED = "enabled"  # clustered (master, replica or connected client)
    DISABLED = "disabled"  # not clustered (documented assumption, docs/status-format.md)
    ERROR = "error"  # `Status : Error`, cleared with `database cluster clear error`
    UNKNOWN = "unknown"  # line missing or a value we do not know (raw text kept)


class Line(StrEnum):
    """A line of the status output; ``ClusterStatus.shown`` holds those the text had."""

    ERROR = "error"
    STATUS = "status"
    NODES = "nodes"  # the `Nodes:` header
    NODE_IN_USE = "node_in_use"
    INTERFACE = "interface"
    SERVER_KEY = "server_key"
    SERVER_CERT = "server_cert"
    CLIENT_KEY = "client_key"
    CLIENT_CERT = "client_cert"
    CA_CERT = "ca_cert"
    LAST_COMMAND = "last_command"


CERTIFICATE_LINES = (
    Line.SERVER_KEY,
    Line.SERVER_CERT,
    Line.CLIENT_KEY,
    Line.CLIENT_CERT,
    Line.CA_CERT,
)
EVERY_LINE = frozenset(Line)


class MemberRole(StrEnum):
    MASTER = "master"  # `Master` (older releases) or `Primary` (newer)
    REPLICA = "replica"  # `Slave` (older releases) or `Replica` (newer)
    UNKNOWN = "unknown"


class SyncState(StrEnum):
    IN_SYNC = "in-sync"  # `( In Sync )`
    SYNCING = "syncing"  # connected replica without the in-sync suffix, a master in view
    NO_MASTER = "no-master"  # connected replica without the suffix in a view with no master
    UNKNOWN = "unknown"  # master, disconnected node or unrecognised text


class CommandResult(StrEnum):
    SUCCESS = "success"
    FAILED = "failed"
    IN_PROGRESS = "in-progress"
    OTHER = "other"


class Member(Frozen):
    """One indented line under `Nodes:`."""

    address: str  # IPv4, IPv6 or host name, exactly as printed (without `(me)`)
    is_me: bool
    connected: bool
    role: MemberRole
    sync: SyncState
    raw: str  # the value text after the colon, e.g. `Connected Slave ( In Sync )`


class LastCommand(Frozen):
    command: str | None  # e.g. `database cluster join 10.48.36.61`; None when `none`
    result: CommandResult
    raw: str  # the whole value text


class Certificates(Frozen):
    """File names as the MMP prints them; None when not set (`none`) or missing."""

    server_key: str | None = None
    server_cert: str | None = None
    client_key: str | None = None
    client_cert: str | None = None
    ca_cert: str | None = None


class ClusterStatus(Frozen):
    state: ClusterState
    state_raw: str | None  # raw `Status` value, None when the line is missing
    error: str | None  # text of the `ERROR` line, if any
    members: tuple[Member, ...]
    node_in_use: str | None
    interface: str | None  # `a`..`d`, None when not set / missing
    certificates: Certificates
    last_command: LastCommand | None
    wording: str | None  # "master" (Master/Slave) or "primary" (Primary/Replica), if detectable
    unparsed: tuple[str, ...] = ()  # non-blank lines the parser did not recognise
    shown: frozenset[Line] = frozenset()  # the lines the text had (empty: nothing was seen)
    incomplete: tuple[str, ...] = ()  # why a block could not be read whole

    # ----- derived views used by the planner (pure) -----
    @property
    def me(self) -> Member | None:
        return next((m for m in self.members if m.is_me), None)

    @property
    def master(self) -> Member | None:
        """The connected member reported as master, if any."""
        return next((m for m in self.members if m.role is MemberRole.MASTER and m.connected), None)

    @property
    def command_in_progress(self) -> bool:
        return (
            self.last_command is not None and self.last_command.result is CommandResult.IN_PROGRESS
        )
