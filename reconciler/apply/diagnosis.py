"""Diagnosis printed when apply stops: what the failed node shows and why it may have failed.

Gathered (best effort, never raising) after a step failed:

* the node's fresh `database cluster status`;
* the recent `syslog` lines of the processes that matter for clustering
  (postgres, sfpool, schema_builder, dbcluster_watcher);
* for a node that needs the master's database (join, connect, upgrade_schema,
  or a replica that sees its master disconnected): whether the master's TCP 5432
  accepts a connection from the admin host — the firewall case;
* hints for the documented troubleshooting cases (schema error, firewall).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from reconciler.common.errors import ReconcilerError, TransportError
from reconciler.observe.snapshot_model import Observed
from reconciler.observe.status_parser import parse_status
from reconciler.plan.cluster_view import build_view
from reconciler.plan.model import Action, Step
from reconciler.spec.model import ClusterSpec
from reconciler.transport.interface import STATUS_COMMAND, Transport, target_for

SYSLOG_COMMAND = "syslog"
LOG_PROCESSES = ("postgres", "sfpool", "schema_builder", "dbcluster_watcher")
MAX_LOG_LINES = 25


@dataclass(frozen=True)
class PortCheck:
    address: str
    port: int
    open: bool
    detail: str


@dataclass
class Diagnosis:
    node: str
    step: Step | None
    error: str
    status_text: str | None = None
    log_lines: list[str] = field(default_factory=list)
    log_note: str | None = None
    port_check: PortCheck | None = None
    hints: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = ["", "Diagnosis", "========="]
        if self.step is not None:
            what = self.step.command or self.step.action.value
            lines.append(f"step {self.step.id} on {self.node}: {what}")
        lines.append(f"error: {self.error}")
        lines.append("")
        lines.append(f"{self.node}: database cluster status")
        if self.status_text is not None:
            lines.extend("  " + line for line in self.status_text.rstrip().splitlines())
        else:
            lines.append("  (not available)")
        lines.append("")
        lines.append(f"{self.node}: recent syslog ({', '.join(LOG_PROCESSES)})")
        if self.log_lines:
            lines.extend("  " + line for line in self.log_lines)
        else:
            lines.append("  " + (self.log_note or "(no matching lines)"))
        if self.port_check is not None:
            pc = self.port_check
            state = "open" if pc.open else "NOT reachable"
            lines.append("")
            lines.append(
                f"master database port {pc.address}:{pc.port} from the admin host: {state} "
                f"({pc.detail})"
            )
        if self.hints:
            lines.append("")
            lines.extend(f"hint: {h}" for h in self.hints)
        lines.append("")
        lines.append(
            "Nothing further was run. Fix the cause, then run apply again: it re-plans "
            "from a fresh observation and continues."
        )
        return "\n".join(lines) + "\n"


async def check_port(address: str, port: int, timeout: float = 3.0) -> PortCheck:
    """TCP connect from the admin host (loopback-only in the lab)."""
    host = address.strip("[]")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=timeout)
    except TimeoutError:
        return PortCheck(address, port, False, f"no answer within {timeout:g}s (filtered?)")
    except OSError as exc:
        return PortCheck(address, port, False, exc.strerror or type(exc).__name__)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return PortCheck(address, port, True, "TCP connect succeeded")


def relevant_log_lines(text: str, limit: int = MAX_LOG_LINES) -> list[str]:
    """The last ``limit`` lines written by the clustering processes."""
    wanted = []
    for line in text.splitlines():
        head = line.split(": ", 1)[0]
        if any(f" {p}[" in head or f" {p}:" in f"{head}:" for p in LOG_PROCESSES):
            wanted.append(line.rstrip())
    return wanted[-limit:]


def _master_address(spec: ClusterSpec, observed: Observed, step: Step | None) -> str | None:
    if step is not None and step.action in (Action.JOIN, Action.CONNECT) and step.command:
        return step.command.split()[-1]
    view = build_view(spec, observed)
    if view.master is not None:
        return view.master
    try:
        return spec.node(spec.master).address
    except KeyError:
        return None


def _needs_master_port(step: Step | None, status_text: str | None) -> bool:
    if step is not None and step.action in (Action.JOIN, Action.CONNECT, Action.UPGRADE_SCHEMA):
        return True
    if status_text is None:
        return False
    status = parse_status(status_text)
    me = status.me
    master_member = next((m for m in status.members if m.role.value == "master"), None)
    return (me is not None and me.role.value == "replica") and (
        master_member is None or not master_member.connected
    )


async def diagnose(
    spec: ClusterSpec,
    transport: Transport,
    node: str,
    error: ReconcilerError,
    observed: Observed,
    step: Step | None = None,
) -> Diagnosis:
    diagnosis = Diagnosis(node=node, step=step, error=str(error))
    target = target_for(spec, node)
    try:
        session = await transport.session(target)
        diagnosis.status_text = (await session.run(STATUS_COMMAND)).stdout
        try:
            log_text = (await session.run(SYSLOG_COMMAND)).stdout
            diagnosis.log_lines = relevant_log_lines(log_text)
        except TransportError as exc:
            diagnosis.log_note = f"(syslog not available: {exc.detail})"
    except TransportError as exc:
        diagnosis.log_note = f"(node not reachable: {exc.detail})"
    if _needs_master_port(step, diagnosis.status_text):
        master = _master_address(spec, observed, step)
        if master is not None:
            diagnosis.port_check = await check_port(master, spec.database_port)
    diagnosis.hints = _hints(diagnosis)
    return diagnosis


def _hints(d: Diagnosis) -> list[str]:
    hints: list[str] = []
    pc = d.port_check
    if pc is not None and not pc.open:
        hints.append(
            f"the master's database port {pc.address}:{pc.port} does not accept connections: "
            "a firewall between the nodes probably blocks TCP 5432 (CMS needs it open from "
            "every node to the master; capture with `pcap <iface>` and filter tcp.port==5432 "
            "— no return traffic means a firewall)"
        )
    logs = "\n".join(d.log_lines)
    if "could not connect to server" in logs and not hints:
        hints.append(
            "sfpool cannot connect to a peer's database (see the Health check lines): "
            "check TCP 5432 between the nodes"
        )
    status = parse_status(d.status_text) if d.status_text else None
    if status is not None and status.error and "schema" in status.error.lower():
        hints.append(
            "schema error: the repair is `database cluster clear error`, then "
            "`database cluster upgrade_schema` on this node (apply plans it; "
            "upgrade_schema needs the master's 5432 reachable)"
        )
    return hints
