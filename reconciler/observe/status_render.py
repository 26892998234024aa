"""Print a :class:`ClusterStatus` in the `database cluster status` layout.

Pure. The layout is the one in ``docs/status-format.md``; the lab prints its
status with this and the parser reads it back (``parse_status(render_status(s))``
gives ``s`` back for every status the layout can express).

Raw texts win when they say what the interpreted fields say (in the requested
wording), so parsed odd spellings survive a round trip; otherwise the canonical
text is printed (e.g. a status built by the lab with ``raw=""``).
"""

from __future__ import annotations

from typing import Literal

from reconciler.observe.status_model import (
    ClusterState,
    ClusterStatus,
    CommandResult,
    LastCommand,
    Line,
    Member,
    MemberRole,
    SyncState,
)
from reconciler.observe.status_parser import (
    is_echo,
    parse_last_command,
    parse_member_state,
    parse_state,
)

Wording = Literal["master", "primary"]

_ROLE_WORDS: dict[Wording, tuple[str, str]] = {
    "master": ("Master", "Slave"),
    "primary": ("Primary", "Replica"),
}
_STATE_TEXT = {
    ClusterState.ENABLED: "Enabled",
    ClusterState.ERROR: "Error",
    ClusterState.DISABLED: "Disabled",
}
_RESULT_TEXT = {
    CommandResult.SUCCESS: "Success",
    CommandResult.FAILED: "Failed",
    CommandResult.IN_PROGRESS: "In progress",
}
INDENT = "  "


def member_state_text(member: Member, wording: Wording) -> str:
    """The state text of a member line in the requested wording."""
    meaning = parse_member_state(member.raw)
    # A bare replica text means "no master" in a view without one (the parser decides).
    sync = SyncState.SYNCING if member.sync is SyncState.NO_MASTER else member.sync
    if (
        member.raw
        and (meaning.connected, meaning.role, meaning.sync) == (member.connected, member.role, sync)
        and meaning.wording in (None, wording)
    ):
        return member.raw
    master, replica = _ROLE_WORDS[wording]
    if member.connected and member.role is MemberRole.MASTER and member.sync is SyncState.UNKNOWN:
        return f"Connected {master}"
    if member.connected and member.role is MemberRole.REPLICA:
        if member.sync is SyncState.IN_SYNC:
            return f"Connected {replica} ( In Sync )"
        if member.sync in (SyncState.SYNCING, SyncState.NO_MASTER):
            return f"Connected {replica}"
    if not member.connected:  # the only documented text for an unreachable member
        return "Disconnected"
    return member.raw  # not expressible otherwise: keep what was printed


def status_text(status: ClusterStatus) -> str | None:
    """The value of the `Status` line, or None when the line is to be left out."""
    raw = status.state_raw
    if raw is not None and parse_state(raw) is status.state:
        return raw
    if status.state is ClusterState.UNKNOWN:
        return raw
    return _STATE_TEXT[status.state]


def last_command_text(last: LastCommand) -> str:
    """The value of the `Last command` line."""
    if parse_last_command(last.raw) == last:
        return last.raw
    if last.command is None:
        return "none"
    if last.result is CommandResult.OTHER:
        return f"'{last.command}'"
    return f"'{last.command}' ({_RESULT_TEXT[last.result]})"


def _line(label: str, value: str | None, column: int) -> str:
    width = max(column - 3, len(label) + 1)
    return f"{label.ljust(width)}: {'none' if value is None else value}".rstrip()


def render_status(status: ClusterStatus, *, wording: Wording = "master", column: int = 25) -> str:
    """The status as the MMP prints it; values start at ``column`` (1-based).

    Only the lines the status was shown with are printed (``status.shown``), so a
    partial capture renders as the same partial capture. A status whose text could not
    be read whole (``status.incomplete``) cannot be printed back faithfully (the lines the
    parser could not place are printed last): keep its raw text instead.
    """
    shown = status.shown
    lines: list[str] = []
    if status.error is not None:
        lines.append(_line("ERROR", status.error, column))
    state = status_text(status)
    if state is not None and Line.STATUS in shown:
        lines.append(_line("Status", state, column))
    if Line.NODES in shown:
        lines.append("Nodes:")
        for member in status.members:
            name = f"{INDENT}{member.address}{' (me)' if member.is_me else ''}"
            lines.append(_line(name, member_state_text(member, wording), column))
    if Line.NODE_IN_USE in shown:
        lines.append(_line("Node in use", status.node_in_use, column))
    if Line.INTERFACE in shown:
        lines.append("")
        lines.append(_line("Interface", status.interface, column))
    certs = status.certificates
    cert_lines = [
        _line(INDENT + label, value, column)
        for line, label, value in (
            (Line.SERVER_KEY, "Server Key", certs.server_key),
            (Line.SERVER_CERT, "Server Certificate", certs.server_cert),
            (Line.CLIENT_KEY, "Client Key", certs.client_key),
            (Line.CLIENT_CERT, "Client Certificate", certs.client_cert),
            (Line.CA_CERT, "CA Certificate", certs.ca_cert),
        )
        if line in shown
    ]
    if cert_lines:
        lines.append("")
        lines.append("Certificates")
        lines.extend(cert_lines)
    if status.last_command is not None and Line.LAST_COMMAND in shown:
        lines.append("")
        lines.append(_line("Last command", last_command_text(status.last_command), column))
    if status.unparsed:
        if not any(lines) and is_echo(status.unparsed[0]):
            # It would be read as the echo a copied session starts with: print that echo.
            lines.append(status.unparsed[0])
        lines.append("")
        lines.extend(status.unparsed)
    return "\n".join(lines) + "\n"
