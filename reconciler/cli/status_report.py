"""`reconcile status` output: a row per node, the verdict, certificate expiry, the database view,
the revision last applied (and whether the spec's own, and a watched branch's head, is).

Pure: built from data the CLI gathered (observation, plan, certificate expiry
dates, database view) and rendered as text or JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from reconciler.apply.database_view import DbView
from reconciler.observe.snapshot_model import Observed
from reconciler.observe.status_evidence import UNKNOWN, certificates_gap, interface_gap
from reconciler.observe.status_model import ClusterStatus
from reconciler.plan.cluster_view import build_view
from reconciler.plan.facts import certs_value
from reconciler.plan.verdict import ClusterVerdict
from reconciler.spec.model import ClusterSpec


@dataclass(frozen=True)
class CertExpiry:
    file: str  # as written in the spec
    expires: str | None  # ISO date
    days_left: int | None
    warning: bool
    error: str | None = None


@dataclass(frozen=True)
class NodeRow:
    name: str
    address: str
    reachable: bool
    unreachable_reason: str | None
    role: str | None
    sync: str | None
    interface: str | None
    certificates: str | None
    last_command: str | None


@dataclass(frozen=True)
class RevisionStatus:
    """What the cluster was last applied at, and whether the spec's revision is that."""

    spec: str  # the spec file's revision: "working tree at 3f2a9c1 '...'", or a commit
    spec_applied: str  # "yes: ...", "no: ...", "unknown: ..."
    last_applied: str | None = None  # "3f2a9c1 'add cms-fra-2'" or a local description
    last_applied_at: str | None = None
    last_applied_how: str | None = None  # applied / converged / the audit record's result
    branch: str | None = None  # a watch --git clone's branch head: "main at 4b1e2d0 '...'"
    branch_applied: str | None = None


@dataclass(frozen=True)
class StatusReport:
    cluster: str
    observed_at: str | None
    rows: tuple[NodeRow, ...]
    verdict: ClusterVerdict
    certificates: tuple[CertExpiry, ...]
    database: DbView | None
    master: str | None
    revision: RevisionStatus | None = None


def _interface(status: ClusterStatus | None) -> str | None:
    if status is None:
        return None
    return UNKNOWN if interface_gap(status) else status.interface


def _certificates(status: ClusterStatus | None) -> str | None:
    if status is None:
        return None
    return UNKNOWN if certificates_gap(status) else certs_value(status.certificates)


def node_rows(spec: ClusterSpec, observed: Observed) -> tuple[NodeRow, ...]:
    view = build_view(spec, observed)
    rows = []
    for nv in view.nodes:
        status = nv.status
        rows.append(
            NodeRow(
                name=nv.key,
                address=nv.address,
                reachable=nv.reachable,
                unreachable_reason=None if nv.reachable else nv.observation.why_not,
                role=nv.role if nv.in_spec else f"{nv.role} (not in spec)",
                sync=nv.sync,
                interface=_interface(status),
                certificates=_certificates(status),
                last_command=status.last_command.raw
                if status and status.last_command
                else ("none" if status else None),
            )
        )
    return tuple(rows)


def build_report(
    spec: ClusterSpec,
    observed: Observed,
    verdict: ClusterVerdict,
    certificates: Sequence[CertExpiry],
    database: DbView | None,
    revision: RevisionStatus | None = None,
) -> StatusReport:
    return StatusReport(
        cluster=spec.cluster,
        observed_at=observed.observed_at.isoformat() if observed.observed_at else None,
        rows=node_rows(spec, observed),
        verdict=verdict,
        certificates=tuple(certificates),
        database=database,
        master=build_view(spec, observed).master,
        revision=revision,
    )


def report_to_dict(report: StatusReport) -> dict[str, Any]:
    return {
        "cluster": report.cluster,
        "observed_at": report.observed_at,
        "verdict": report.verdict.verdict.value,
        "reasons": list(report.verdict.reasons),
        "master": report.master,
        "nodes": [asdict(r) for r in report.rows],
        "certificates": [asdict(c) for c in report.certificates],
        "database": report.database.to_dict() if report.database is not None else None,
        "revision": asdict(report.revision) if report.revision is not None else None,
    }


def render_json(report: StatusReport) -> str:
    return json.dumps(report_to_dict(report), indent=2) + "\n"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header).rstrip(), fmt.format(*("-" * w for w in widths)).rstrip()]
    out += [fmt.format(*r).rstrip() for r in rows]
    return out


def render_text(report: StatusReport) -> str:
    lines = [f"Cluster {report.cluster}  (observed {report.observed_at or '?'})", ""]
    table_rows = []
    for r in report.rows:
        table_rows.append(
            [
                r.name,
                r.address,
                "yes" if r.reachable else "NO",
                r.role or "-",
                r.sync or "-",
                r.interface or "-",
                r.certificates or "-",
                r.last_command or "-",
            ]
        )
    lines += _table(
        ["node", "address", "reachable", "role", "sync", "iface", "certificates", "last command"],
        table_rows,
    )
    unreachable = [r for r in report.rows if not r.reachable]
    for r in unreachable:
        lines.append(f"  {r.name}: {r.unreachable_reason}")
    lines.append("")
    db = report.database
    lines.append("Database view (read from the master's database over mutual TLS):")
    if db is None:
        lines.append("  (not read: no single master to ask, or the client key lives on the node)")
    elif not db.reachable:
        lines.append(f"  {db.master_address}: NOT reachable: {db.error}")
    else:
        role = "in recovery (a standby!)" if db.in_recovery else "primary (not in recovery)"
        lines.append(f"  {db.master_address}: {role}")
        if not db.replicas:
            lines.append("  no replica streams")
        for s in db.replicas:
            lag = f"{s.lag_bytes} bytes" if s.lag_bytes is not None else "unknown"
            lines.append(f"  replica {s.address}: {s.state} ({s.sync_state}), lag {lag}")
    lines.append("")
    if report.certificates:
        lines.append("Certificates (local files named in the spec):")
        for c in report.certificates:
            if c.error is not None:
                lines.append(f"  {c.file}: {c.error}")
            else:
                flag = "  <-- renew soon" if c.warning else ""
                lines.append(f"  {c.file}: expires {c.expires}, {c.days_left} days left{flag}")
        lines.append("")
    if report.revision is not None:
        lines += _revision_lines(report.revision)
    lines.append(f"Verdict: {report.verdict.verdict.value}")
    lines += [f"  - {reason}" for reason in report.verdict.reasons]
    return "\n".join(lines) + "\n"


def _revision_lines(r: RevisionStatus) -> list[str]:
    lines = ["Revision (from the state directory's revision record and audit log):"]
    if r.last_applied is None:
        lines.append("  last applied: none recorded")
    else:
        lines.append(
            f"  last applied: {r.last_applied} ({r.last_applied_how}, {r.last_applied_at})"
        )
    lines.append(f"  spec file:    {r.spec}")
    lines.append(f"    applied? {r.spec_applied}")
    if r.branch is not None:
        lines.append(f"  branch:       {r.branch}")
        lines.append(f"    applied? {r.branch_applied}")
    return [*lines, ""]
