"""What one node's status text proves, and what it leaves unknown (pure).

A fact is known only when the line it comes from was printed (``ClusterStatus.shown``)
and its block was read whole (``ClusterStatus.incomplete`` is empty). The table of which
lines each decision needs is in ``docs/status-format.md`` ("What a view must show"):

* :func:`clustering` — the one definition of "clustered" in the code base: ``YES`` on
  positive evidence of membership (a member line, or `Status : Enabled|Error` with a
  `Node in use`), ``NO`` only on the explicit not-clustered layout (`Status : Disabled`
  or `Error`, an empty `Nodes:` block closed by `Node in use : none`), else ``UNKNOWN``;
* :func:`base_gaps` — the lines every decision about a node needs (`Status`, a whole
  `Nodes:` block, `Node in use`, a readable `Last command`); a node with a gap gets no
  step and holds back every cluster-changing step;
* :func:`interface_gap`, :func:`certificates_gap` — the lines a `localnode`, a `certs`
  or a rotation needs;
* :func:`in_progress` / :func:`error_known` — tri-state readings of `Last command` and
  of the `ERROR` line.

Every gap is a sentence naming the missing line, for the operator.
"""

from __future__ import annotations

from enum import StrEnum

from reconciler.observe.status_model import (
    CERTIFICATE_LINES,
    ClusterState,
    ClusterStatus,
    CommandResult,
    Line,
    MemberRole,
)

UNKNOWN = "unknown"  # the value of a fact whose line was not shown


class Clustering(StrEnum):
    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"


_LABEL = {
    Line.ERROR: "ERROR",
    Line.STATUS: "Status",
    Line.NODES: "Nodes:",
    Line.NODE_IN_USE: "Node in use",
    Line.INTERFACE: "Interface",
    Line.SERVER_KEY: "Server Key",
    Line.SERVER_CERT: "Server Certificate",
    Line.CLIENT_KEY: "Client Key",
    Line.CLIENT_CERT: "Client Certificate",
    Line.CA_CERT: "CA Certificate",
    Line.LAST_COMMAND: "Last command",
}
_BASE = (Line.STATUS, Line.NODES, Line.NODE_IN_USE, Line.LAST_COMMAND)


def label(line: Line) -> str:
    return _LABEL[line]


def missing(status: ClusterStatus, lines: tuple[Line, ...]) -> tuple[Line, ...]:
    return tuple(line for line in lines if line not in status.shown)


def _no_line(lines: tuple[Line, ...]) -> str:
    names = [f"`{label(line)}`" for line in lines]
    return (
        "the status has no "
        + (names[0] if len(names) == 1 else ", ".join(names))
        + (" line" if len(names) == 1 else " lines")
    )


def clustering(status: ClusterStatus) -> Clustering:
    """Whether the node belongs to (or is connected to) a cluster, on positive evidence."""
    if status.members:
        return Clustering.YES
    state_shown = Line.STATUS in status.shown
    in_use_shown = Line.NODE_IN_USE in status.shown
    enabled = status.state in (ClusterState.ENABLED, ClusterState.ERROR)
    if state_shown and enabled and in_use_shown and status.node_in_use is not None:
        return Clustering.YES
    if (
        state_shown
        and status.state in (ClusterState.DISABLED, ClusterState.ERROR)
        and Line.NODES in status.shown
        and in_use_shown
        and status.node_in_use is None
        and not status.incomplete
    ):
        return Clustering.NO
    return Clustering.UNKNOWN


def in_progress(status: ClusterStatus) -> bool | None:
    """`Last command` shows `(In progress)`: True; a finished or no command: False; else None."""
    last = status.last_command
    if Line.LAST_COMMAND not in status.shown or last is None:
        return None
    if last.result is CommandResult.IN_PROGRESS:
        return True
    if last.result in (CommandResult.SUCCESS, CommandResult.FAILED):
        return False
    if last.command is None and " ".join(last.raw.split()).lower() in ("", "none"):
        return False
    return None


def error_known(status: ClusterStatus) -> bool:
    """The error is known: an `ERROR` line, or a `Status` line (the `ERROR` line precedes it)."""
    return Line.ERROR in status.shown or Line.STATUS in status.shown


def base_gaps(status: ClusterStatus) -> tuple[str, ...]:
    """Why this view cannot be used for any decision about its node (empty: it can)."""
    gaps: list[str] = []
    absent = missing(status, _BASE)
    if absent:
        gaps.append(_no_line(absent))
    elif status.state is ClusterState.UNKNOWN:
        gaps.append(f"the `Status` line shows {status.state_raw!r}, a value we do not know")
    gaps.extend(status.incomplete)
    if Line.LAST_COMMAND in status.shown and in_progress(status) is None:
        raw = status.last_command.raw if status.last_command is not None else ""
        gaps.append(f"the `Last command` line shows {raw!r}: whether a command runs is unknown")
    if not gaps and clustering(status) is Clustering.UNKNOWN:
        gaps.append("the status shows neither members nor the not-clustered layout")
    masters = [m.address for m in status.members if m.connected and m.role is MemberRole.MASTER]
    if len(masters) > 1:
        gaps.append("`Nodes:` shows more than one connected master: " + ", ".join(masters))
    me = status.me
    if me is not None and clustering(status) is Clustering.YES and me.role is MemberRole.UNKNOWN:
        gaps.append(f"its own line shows {me.raw!r}: its role is unknown")
    return tuple(gaps)


def interface_gap(status: ClusterStatus) -> str | None:
    if Line.INTERFACE in status.shown:
        return None
    return "interface unknown: " + _no_line((Line.INTERFACE,))


def certificates_gap(status: ClusterStatus) -> str | None:
    absent = missing(status, CERTIFICATE_LINES)
    if not absent:
        return None
    if len(absent) == len(CERTIFICATE_LINES):
        return "certificates unknown: the status has no `Certificates` lines"
    return "certificates unknown: " + _no_line(absent)
