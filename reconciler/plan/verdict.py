"""The one-word health of a cluster for `reconcile status`: pure, from spec + observation.

* ``no master``  — no reachable node reports a connected master (or two masters: split brain);
* ``unknown``    — the evidence cannot say: a master is claimed but its own view cannot be
  read whole, the views contradict each other, or a node's view has a gap;
* ``degraded``   — a master exists but a spec node is unreachable, in error, disconnected,
  still syncing, or has a command in progress;
* ``drifted``    — healthy, but the planner would change something, or the database's own
  view disagrees with the MMP;
* ``converged``  — none of the above.

The first that applies wins. `status` exits 0 only for ``converged`` (2 otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from reconciler.observe.snapshot_model import Observed
from reconciler.observe.status_model import ClusterState
from reconciler.plan.cluster_view import build_view
from reconciler.plan.model import Plan
from reconciler.spec.model import ClusterSpec, NodeRole


class Verdict(StrEnum):
    CONVERGED = "converged"
    DRIFTED = "drifted"
    DEGRADED = "degraded"
    NO_MASTER = "no master"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ClusterVerdict:
    verdict: Verdict
    reasons: tuple[str, ...]


def cluster_verdict(
    spec: ClusterSpec,
    observed: Observed,
    plan: Plan | None,
    db_problems: Sequence[str] = (),
) -> ClusterVerdict:
    view = build_view(spec, observed)
    if not view.masters:
        return ClusterVerdict(Verdict.NO_MASTER, ("no reachable node reports a connected master",))
    if len(view.masters) > 1:
        return ClusterVerdict(
            Verdict.NO_MASTER, (f"more than one master reported: {', '.join(view.masters)}",)
        )
    unknown = [*view.contradictions]
    if view.master_problem is not None:
        unknown.append(view.master_problem)
    unknown.extend(f"{nv.key}: " + "; ".join(nv.gaps) for nv in view.incomplete)
    if unknown:
        return ClusterVerdict(Verdict.UNKNOWN, tuple(unknown))
    degraded: list[str] = []
    for node in spec.nodes:
        nv = view.node(node.name)
        if nv is None or not nv.reachable:
            reason = nv.observation.why_not if nv is not None else "not observed"
            degraded.append(f"{node.name} unreachable: {reason}")
            continue
        status = nv.status
        if status is not None and status.state is ClusterState.ERROR:
            degraded.append(f"{node.name} in error: {status.error or status.state_raw}")
        if nv.in_progress:
            degraded.append(f"{node.name} has a command in progress")
        if node.role is NodeRole.DATABASE and nv.sync in ("disconnected", "syncing"):
            degraded.append(f"{node.name} is {nv.sync}")
    if degraded:
        return ClusterVerdict(Verdict.DEGRADED, tuple(degraded))
    drifted: list[str] = []
    if plan is not None:
        drifted.extend(plan.drift)
        if plan.steps and not plan.drift:
            drifted.append(f"the plan has {len(plan.steps)} step(s)")
        drifted.extend(f"held back: {b.node or 'cluster'}: {b.reason}" for b in plan.blocked)
    drifted.extend(db_problems)
    if drifted:
        return ClusterVerdict(Verdict.DRIFTED, tuple(drifted))
    return ClusterVerdict(Verdict.CONVERGED, ())
