"""The recovery: the cluster rebuilt on a node the operator names, when its master is lost.

Pure. ``reconcile recover SPEC --initialize-on NODE`` (never watch: choosing whose data
survives is a person's decision, as with `patronictl failover --force`). It is planned
only when the cluster has no master, no command runs, and NODE is a reachable database
node of the spec that is **not clustered**: a replica's `remove` takes it back to the
database it had before it joined (facts), so rebuilding on a replica would set aside the
data it holds, and that is refused with the way out. A former master keeps the cluster's
data after its `remove` (A3), which makes it the node to name after a failed master move.

The evidence comes first (each node's reachability, role, `Last command`, and, from the
database view, its WAL position where it can be read); warnings say when NODE is not the
most advanced or its position is unknown. The steps, by the documented sequence (TAC
215421): `backup snapshot` on NODE and every reachable clustered node, `remove` on every
reachable clustered node (replicas with no master leave locally, A9), NODE prepared and
`initialize`d, every other reachable database node of the spec prepared and `join`ed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.observe.snapshot_model import Observed
from reconciler.plan.backups import backup_name
from reconciler.plan.cluster_view import NodeView, build_view
from reconciler.plan.context import PlanContext
from reconciler.plan.model import Blocked, Plan
from reconciler.plan.planner import finalize
from reconciler.plan.preparation import prepare
from reconciler.plan.procedures import RECOVERY
from reconciler.plan.step_builders import add_backup, add_initialize, add_join, add_remove
from reconciler.spec.local_file import LocalFile
from reconciler.spec.model import ClusterSpec, NodeRole


@dataclass(frozen=True)
class DbPosition:
    """A node's WAL position as its database reports it (``lsn`` None: not read, ``note``
    says why)."""

    lsn: str | None
    note: str = ""

    @property
    def value(self) -> int | None:
        if self.lsn is None or "/" not in self.lsn:
            return None
        high, low = self.lsn.split("/", 1)
        try:
            return (int(high, 16) << 32) + int(low, 16)
        except ValueError:
            return None


@dataclass(frozen=True)
class NodeEvidence:
    node: str
    reachable: bool
    role: str  # master | replica | not clustered | unreachable | unknown
    last_command: str
    position: DbPosition

    def render(self) -> str:
        where = self.position.lsn or f"unknown ({self.position.note})"
        return f"{self.node:<16} {self.role:<14} position {where}; last command {self.last_command}"


@dataclass(frozen=True)
class Recovery:
    plan: Plan
    evidence: tuple[NodeEvidence, ...]

    @property
    def refused(self) -> bool:
        return not self.plan.steps


def plan_recovery(
    spec: ClusterSpec,
    observed: Observed,
    initialize_on: str,
    positions: Mapping[str, DbPosition],
    local_files: Mapping[str, LocalFile] | None = None,
) -> Recovery:
    """The recovery on ``initialize_on``, or why not (a plan with no steps, ``blocked``)."""
    view = build_view(spec, observed)
    ctx = PlanContext.start(spec, observed, view, local_files)
    evidence = tuple(_evidence(nv, positions) for nv in view.nodes)
    refusal = _refusal(ctx, initialize_on)
    if refusal is None:
        node = ctx.node_view(initialize_on)
        _warn_positions(ctx, node, evidence)
        _steps(ctx, node)
    else:
        ctx.block(initialize_on, refusal)
    plan = Plan(
        cluster=spec.cluster,
        steps=finalize(ctx, ctx.steps) if refusal is None and not ctx.blocked else (),
        drift=("the cluster has no master",) if view.master is None else (),
        warnings=tuple(ctx.warnings),
        blocked=tuple(Blocked(node=b.node, reason=b.reason) for b in ctx.blocked),
    )
    return Recovery(plan, evidence)


def _evidence(nv: NodeView, positions: Mapping[str, DbPosition]) -> NodeEvidence:
    status = nv.status
    if status is None:
        why = nv.observation.why_not or "not observed"
        return NodeEvidence(nv.key, False, "unreachable", "-", DbPosition(None, why))
    role = "not clustered" if nv.unclustered else (nv.role or "unknown")
    last = status.last_command.raw if status.last_command is not None else "not shown"
    return NodeEvidence(
        nv.key, True, role, last, positions.get(nv.key, DbPosition(None, "not read"))
    )


def _refusal(ctx: PlanContext, key: str) -> str | None:
    view = ctx.view
    if len(view.masters) > 1:
        return "two masters (split brain): decide by hand which side keeps its data"
    if view.master is not None:
        return (
            f"the cluster has a master ({view.label(view.master)}): there is nothing to "
            "recover; `reconcile apply` converges it"
        )
    if view.master_problem is not None or view.contradictions:
        why = view.master_problem or "; ".join(view.contradictions)
        return f"the evidence is not whole ({why}); read every node's status first"
    if not view.any_clustered and not view.membership:
        return "no node is clustered: there is no cluster to recover (`reconcile apply` forms one)"
    busy = [nv.key for nv in view.nodes if nv.in_progress]
    if busy:
        return "a clustering command is still running on " + ", ".join(busy) + "; wait for it"
    gaps = [f"{nv.key} ({'; '.join(nv.gaps)})" for nv in view.nodes if nv.reachable and nv.gaps]
    if gaps:
        return "these views cannot be read whole: " + ", ".join(gaps)
    nv = view.node(key)
    if nv is None or not nv.in_spec:
        return f"{key} is not a node of the spec"
    if nv.spec_role is not NodeRole.DATABASE:
        return f"{key} is a client node: only a database node can start the cluster"
    if not nv.reachable:
        return f"{key} cannot be reached ({nv.observation.why_not}): it cannot start the cluster"
    if nv.clustered:
        return (
            f"{key} is a clustered {nv.role}: its `remove` would take it back to the database it "
            "had before it joined, setting aside the data it holds, so the cluster is not "
            "rebuilt on it. Name the former master if it left by `remove` (it keeps the "
            "cluster's data, A3); otherwise restore a backup by hand (`backup rollback`)"
        )
    return None


def _warn_positions(ctx: PlanContext, node: NodeView, evidence: tuple[NodeEvidence, ...]) -> None:
    mine = next(e for e in evidence if e.node == node.key)
    known = [e for e in evidence if e.position.value is not None and e.node != node.key]
    best = max(known, key=lambda e: e.position.value or 0, default=None)
    if mine.position.value is not None:
        if best is not None and (best.position.value or 0) > mine.position.value:
            ctx.warn(
                f"{node.key} is not the most advanced: {best.node} has replayed to "
                f"{best.position.lsn}, {node.key} to {mine.position.lsn}; what {best.node} "
                f"received after that is lost"
            )
    else:
        ahead = (
            f"; the most advanced readable is {best.node} at {best.position.lsn}" if best else ""
        )
        ctx.warn(
            f"{node.key}'s position cannot be read ({mine.position.note}){ahead}. The new "
            f"cluster starts from {node.key}'s database: a former master keeps the cluster's "
            "data after its `remove` (A3); a node that left as a replica went back to its own "
            "database from before it joined"
        )
    status = node.status
    last = status.last_command if status is not None else None
    if last is None or last.command is None or "remove" not in last.command:
        ctx.warn(
            f"{node.key}'s last command is not a `remove`: it may never have held this "
            "cluster's data"
        )


def _steps(ctx: PlanContext, node: NodeView) -> None:
    view = ctx.view
    leaving = [nv for nv in view.nodes if nv.reachable and nv.clustered]
    lost = [nv.key for nv in view.nodes if not nv.reachable]
    name = backup_name(ctx.spec.cluster, ctx.observed.observed_at)
    for nv in [node, *leaving]:
        reason = f"a backup of {nv.key} before the cluster is rebuilt on {node.key}"
        ctx.steps.append(add_backup(ctx, nv.key, name, reason))
    for nv in leaving:
        add_remove(
            ctx,
            nv.key,
            RECOVERY,
            reason=f"recovery on {node.key}: {nv.key} leaves the cluster that has no master",
            expect=f"{nv.key} is not clustered",
        )
    ctx.master = None
    ctx.members = []
    ctx.connected = set()
    if not prepare(ctx, node.key, RECOVERY):
        return
    add_initialize(
        ctx,
        node.key,
        procedure=RECOVERY,
        reason=f"recovery: {node.key} starts the cluster again from its database",
    )
    for n in ctx.spec.database_nodes:
        nv = ctx.node_view(n.name)
        if nv.key == node.key or not nv.reachable:
            continue
        if prepare(ctx, nv.key, RECOVERY):
            add_join(ctx, nv.key, RECOVERY)
    if lost:
        ctx.warn(
            "left out, they cannot be reached: " + ", ".join(lost) + ". One that comes back "
            "still believes it is a member of the old cluster: run `database cluster remove` "
            "on it, then `reconcile apply` joins it to the new one"
        )
