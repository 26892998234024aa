"""What a step must leave behind, checked against the node's fresh status.

Pure: ``outcome_problem(step, observation)`` returns None when the node shows the
expected result, or a sentence saying what it shows instead. Every check needs
positive evidence: after `remove` the explicit not-clustered layout, after `clear
error` a `Status` line that is not `Error`, after `localnode`/`certs` the lines that
show the new values; a missing line is never taken as the expected result.
"""

from __future__ import annotations

from reconciler.common.addresses import normalize_address
from reconciler.observe.snapshot_model import NodeObservation
from reconciler.observe.status_evidence import (
    Clustering,
    base_gaps,
    certificates_gap,
    clustering,
    interface_gap,
)
from reconciler.observe.status_model import ClusterState, CommandResult, Line
from reconciler.plan.cluster_view import role_of
from reconciler.plan.model import Action, Step


def _args(command: str | None) -> list[str]:
    words = (command or "").split()
    return words[3:] if words[:2] == ["database", "cluster"] else []


def same_command(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.split() == b.split()


_NEEDS_WHOLE_VIEW = frozenset(
    {Action.INITIALIZE, Action.JOIN, Action.CONNECT, Action.REMOVE, Action.UPGRADE_SCHEMA}
)


def outcome_problem(step: Step, obs: NodeObservation) -> str | None:
    """None when ``obs`` shows ``step``'s expected outcome."""
    if step.action is Action.UPLOAD:
        if step.upload is None:
            return "upload step without a file"
        have = (obs.files or {}).get(step.upload.remote_name)
        if have == step.upload.sha256:
            return None
        name = step.upload.remote_name
        return f"{name} on the node has sha256 {have}, expected {step.upload.sha256}"
    status = obs.status if obs.reachable else None
    if status is None:
        return f"node not observable after the step: {obs.why_not}"
    args = _args(step.command)
    role = role_of(status)
    last = status.last_command
    if step.action is Action.LOCALNODE and (gap := interface_gap(status)) is not None:
        return gap
    if step.action is Action.CERTS and (gap := certificates_gap(status)) is not None:
        return gap
    if step.action is Action.CLEAR_ERROR and Line.STATUS not in status.shown:
        return "the status has no `Status` line: the error is not shown cleared"
    gaps = base_gaps(status)
    if step.action in _NEEDS_WHOLE_VIEW and gaps:
        return "the status cannot be read whole: " + "; ".join(gaps)
    if step.action is Action.LOCALNODE:
        wanted = args[0] if args else None
        return (
            None
            if status.interface == wanted
            else f"interface is {status.interface!r}, expected {wanted!r}"
        )
    if step.action is Action.CERTS:
        c = status.certificates
        shown = (
            [c.server_key, c.server_cert, c.client_key, c.client_cert, c.ca_cert]
            if len(args) == 5
            else [c.client_key, c.client_cert, c.ca_cert]
        )
        return None if shown == args else f"certificates show {shown}, expected {args}"
    if step.action is Action.INITIALIZE:
        return None if role == "master" else f"node is {role}, expected master"
    if step.action is Action.JOIN:
        target = args[0] if args else ""
        master = status.master
        if role != "replica":
            return f"node is {role}, expected a replica of {target}"
        if master is None or normalize_address(master.address) != normalize_address(target):
            seen = master.address if master is not None else "no connected master"
            return f"node is a replica but sees {seen}, expected master {target}"
        return None
    if step.action is Action.CONNECT:
        target = args[0] if args else ""
        if status.state is not ClusterState.ENABLED or status.node_in_use is None:
            return f"node is not connected (Status {status.state_raw!r})"
        return None
    if step.action is Action.REMOVE:
        if clustering(status) is Clustering.NO:
            return None
        return f"node is {role}, expected the not-clustered layout"
    if step.action is Action.CLEAR_ERROR:
        return (
            None
            if status.state is not ClusterState.ERROR
            else f"node still in error: {status.error}"
        )
    if step.action is Action.UPGRADE_SCHEMA:
        if status.state is ClusterState.ERROR:
            return f"node in error after upgrade_schema: {status.error}"
        if (
            last is None
            or not same_command(last.command, step.command)
            or last.result is not CommandResult.SUCCESS
        ):
            last_text = last.raw if last else "none"
            return f"last command is {last_text}, expected {step.command!r} (Success)"
        return None
    return None
