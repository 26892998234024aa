"""The planner: ``plan(spec, observed) -> Plan``. Purely computational, no I/O, no side effects.

Rules and procedures are explained in ``docs/planner.md``; the semantics planned against are
``docs/assumptions.md`` (A1-A9).

Ordering invariants (every plan, in this order; within a phase, spec order):

1. **uploads** — files that differ or are missing on nodes that are not clustered, and files
   that are missing (never ones that differ: those are in use) on clustered nodes;
2. **preparation** of nodes that are not clustered: `clear error` (errors other than the
   schema error), `localnode`, `certs` — node by node (phases 1-2:
   :mod:`reconciler.plan.preparation`);
3. **initialize** — only when no node belongs to a cluster or sees a master, and the
   reachable, unclustered database nodes are more than half of the spec's database nodes
   (:mod:`reconciler.plan.forming`);
4. **schema repair** (A6) — the master first, then replicas (:mod:`reconciler.plan.repair`);
5. **master move** (A4) — `remove` the other replicas one at a time, then the master, each
   followed by its own preparation (:mod:`reconciler.plan.master_move`);
6. **joins** of database nodes that are not clustered, spec order, to the master *after*
   the earlier steps (:mod:`reconciler.plan.forming`);
7. **rotations** (the "rejoin" procedure), spec order: a clustered replica whose interface or
   certificates must change: `remove`, [uploads], [`localnode`], [`certs`], `join` — replicas
   only, never the master, and after the joins so that new members count for the majority
   (:mod:`reconciler.plan.rotation`);
8. **connects** of client nodes, spec order (rotation of a connected client the same way
   with `connect`; :mod:`reconciler.plan.forming`);
9. **removes** of members the spec does not list (`policy.allow_remove`), replicas only
   (:mod:`reconciler.plan.removal`);
10. **backups** — `backup snapshot` on every reachable member, put right before the first
    destructive step (``policy.backups``; :mod:`reconciler.plan.backups`).

Before the phases, :mod:`reconciler.plan.holds` sets what is held back and decides whether
anything is planned at all, and :mod:`reconciler.plan.drift` describes what differs. The
phases write their steps through :mod:`reconciler.plan.step_builders` into the
:class:`~reconciler.plan.context.PlanContext`, which projects the cluster through them.

Safety invariants: no `initialize` unless every reachable spec node shows the explicit
not-clustered layout (positive evidence, never the mere absence of members); no step at all
with two masters, with clustered nodes and no master, with a master whose own view cannot be
read whole, or with views that contradict it; no `localnode`/`certs` on a node not shown to be
unclustered; every `remove` leaves the connected members more than half of the remaining
(deduplicated) membership; the master is only removed by the master move; nothing on a node
that is unreachable, has a command in progress or whose view has a gap (a missing or garbled
line, or a `(me)` that is not its own address: see :mod:`reconciler.plan.cluster_view`); no
cluster-changing step (initialize, join, connect, remove, upgrade_schema) while any node has
a command in progress or a view with a gap; nothing planned from a value whose line was not
shown (an unknown interface or certificate is no drift); never more database members than
``policy.max_database_nodes``.

``depends_on`` of a step = the observed facts the step relies on, minus every fact an earlier
step of the same plan changes (see :mod:`reconciler.plan.facts`). So all ``depends_on`` of a saved
plan can be checked against a new observation at once, and the executor can check each
step's facts just before it runs.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.observe.snapshot_model import Observed
from reconciler.plan.backups import plan_backups
from reconciler.plan.cluster_view import build_view
from reconciler.plan.context import ALL, Draft, PlanContext
from reconciler.plan.drift import describe_drift
from reconciler.plan.facts import facts_from_view
from reconciler.plan.forming import plan_connects, plan_initialize, plan_joins
from reconciler.plan.holds import describe_minority, hold_unobservable, hold_whole_plan
from reconciler.plan.master_move import plan_master_move
from reconciler.plan.model import Blocked, Plan, Step
from reconciler.plan.preparation import plan_preparation, plan_uploads
from reconciler.plan.removal import plan_removals
from reconciler.plan.repair import plan_schema_repairs
from reconciler.plan.rotation import plan_rotations
from reconciler.spec.local_file import LocalFile
from reconciler.spec.model import ClusterSpec


def plan(
    spec: ClusterSpec, observed: Observed, local_files: Mapping[str, LocalFile] | None = None
) -> Plan:
    """Plan the steps that bring the observed cluster to the spec (see the module docstring)."""
    view = build_view(spec, observed)
    ctx = PlanContext.start(spec, observed, view, local_files)
    hold_unobservable(ctx)
    if hold_whole_plan(ctx):
        return _finish(ctx)
    describe_drift(ctx)
    describe_minority(ctx)
    plan_uploads(ctx)
    plan_preparation(ctx)
    plan_initialize(ctx)
    plan_schema_repairs(ctx)
    plan_master_move(ctx)
    plan_joins(ctx)
    plan_rotations(ctx)
    plan_connects(ctx)
    plan_removals(ctx)
    plan_backups(ctx)
    return _finish(ctx)


def _finish(ctx: PlanContext) -> Plan:
    return Plan(
        cluster=ctx.spec.cluster,
        steps=finalize(ctx, ctx.steps),
        drift=tuple(ctx.drift),
        warnings=tuple(ctx.warnings),
        blocked=tuple(Blocked(node=b.node, reason=b.reason) for b in ctx.blocked),
    )


def finalize(ctx: PlanContext, drafts: list[Draft]) -> tuple[Step, ...]:
    """Assign ids and depends_on (relied-upon facts no earlier step changes)."""
    touched: set[tuple[str, str]] = set()
    steps: list[Step] = []
    for i, d in enumerate(drafts, start=1):
        pairs: list[tuple[str, str]] = []
        for pair in d.relies:
            if pair in pairs or pair in touched or (ALL, pair[1]) in touched:
                continue
            pairs.append(pair)
        steps.append(
            Step(
                id=f"s{i:02d}",
                node=d.node,
                action=d.action,
                command=d.command,
                reason=d.reason,
                destructive=d.destructive,
                procedure=d.procedure,
                depends_on=facts_from_view(ctx.view, ctx.observed, pairs),
                expect=d.expect,
                upload=d.upload,
                confirm=d.confirm,
                backup=d.backup,
            )
        )
        touched.update(d.touches)
    return tuple(steps)
