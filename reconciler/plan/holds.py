"""The evidence gates: what holds a node or every cluster change back; when nothing is planned.

Pure. Before any phase runs, :func:`hold_unobservable` sets the holds of the
:class:`~reconciler.plan.context.PlanContext` from the evidence:

* a node that is unreachable, whose status could not be read, whose view has a gap (a
  missing or garbled line, or a `(me)` that is not its own address: see
  :mod:`reconciler.plan.identity`), or that has a command in progress is ``held``: nothing
  is planned for it;
* a status that could not be read, a gap or a command in progress also sets
  ``cluster_hold``: no cluster-changing step (initialize, join, connect, remove,
  upgrade_schema) anywhere;
* an interface or certificate line that was not shown holds its node back, and on a node
  not shown to be unclustered sets ``destructive_hold``: no `remove` and no master move.

:func:`hold_whole_plan` is the list of rules under which nothing at all is planned: two
masters (split brain), views that contradict the master, a claimed master whose own view
cannot be read whole, clustered nodes (or members) and no master (A1), and no master seen
while some view cannot be read whole (it may hide a cluster). :func:`quiet` is a member the
master shows disconnected or not in sync (it gets no steps); :func:`actionable` the spec
nodes that may get steps at all.
"""

from __future__ import annotations

from reconciler.common.addresses import normalize_address
from reconciler.plan.cluster_view import NodeView
from reconciler.plan.context import PlanContext

PORT_ADVICE = (
    "check that TCP port 5432 is open between the nodes and the master (capture with "
    "`pcap <interface>` and filter tcp.port==5432: no return traffic means a firewall)"
)
HELD_BACK = (
    "Nothing is planned for it, nor anything cluster-changing until every view can be read whole"
)
NO_MASTER_ADVICE = (
    "no master: the cluster has lost its majority (A1). Bring members back so that more than "
    "half of the membership see each other; a master is then elected by itself. Never "
    "initialize a new cluster while members exist"
)


def hold_whole_plan(ctx: PlanContext) -> bool:
    """Record why nothing at all is planned (see the module docstring); True if so."""
    view = ctx.view
    if len(view.masters) > 1:
        ctx.drift.append("two masters: " + ", ".join(view.label(m) for m in view.masters))
        ctx.block(
            None,
            "split brain: more than one master ("
            + ", ".join(view.masters)
            + "). Nothing is planned: decide by hand which side keeps its data, run "
            "`database cluster remove` on the nodes of the other side, then plan again",
        )
        return True
    if view.contradictions:
        ctx.drift.append("the nodes' views disagree about the master")
        ctx.block(
            None,
            "the views contradict each other: "
            + "; ".join(view.contradictions)
            + ". Nothing is planned: read `database cluster status` on each node, then plan "
            "again. Views that do not see each other usually mean a network problem: "
            + PORT_ADVICE,
        )
        return True
    if view.master_problem is not None:
        ctx.drift.append("the master cannot be confirmed")
        ctx.block(None, f"{view.master_problem}; nothing is planned until it can be read whole")
        return True
    if view.master is None and (view.any_clustered or view.membership):
        ctx.drift.append("the cluster has no master")
        describe_minority(ctx)
        ctx.block(None, NO_MASTER_ADVICE)
        way_out = _recovery_advice(ctx)
        if way_out is not None:
            ctx.block(None, way_out)
        return True
    unusable = [
        nv.key
        for nv in view.nodes
        if nv.observation.unreadable is not None or (nv.reachable and nv.gaps)
    ]
    if view.master is None and unusable:
        # No master is seen, but a view that cannot be read may hide a cluster (one with
        # no master, where nothing may be done): nothing at all is planned.
        ctx.drift.append("whether a cluster exists is unknown")
        ctx.block(
            None,
            "no master is seen, but "
            + ", ".join(unusable)
            + " cannot be read whole: whether a cluster exists is unknown, so nothing is "
            "planned (no `initialize`, no preparation) until every view can be read",
        )
        return True
    return False


def hold_unobservable(ctx: PlanContext) -> None:
    """Set ``held``, ``cluster_hold`` and ``destructive_hold`` from the evidence."""
    for nv in ctx.view.nodes:
        if nv.observation.unreadable is not None:
            why = nv.observation.unreadable
            ctx.held.add(nv.key)
            ctx.cluster_hold = ctx.cluster_hold or f"the status of {nv.key} could not be read"
            ctx.drift.append(f"{nv.key}'s status could not be read ({why})")
            ctx.block(
                nv.key,
                f"{nv.key} answered but its status could not be read ({why}): nothing is "
                f"planned for it; {HELD_BACK}",
            )
            continue
        if not nv.reachable:
            why = nv.observation.why_not
            ctx.held.add(nv.key)
            ctx.drift.append(f"{nv.key} is unreachable ({why})")
            ctx.warn(f"{nv.key} is unreachable ({why}); its steps are held back until it answers")
            ctx.block(nv.key, f"{nv.key} is unreachable ({why}): nothing is planned for it")
            continue
        st = nv.status
        assert st is not None
        if nv.gaps:
            ctx.held.add(nv.key)
            ctx.cluster_hold = ctx.cluster_hold or f"the view of {nv.key} has a gap"
            missing = [*nv.gaps, *ctx.unknown.get(nv.key, [])]
            ctx.block(nv.key, f"{nv.key} is held back: " + "; ".join(missing) + f". {HELD_BACK}")
            continue
        elif nv.in_progress:
            cmd = st.last_command.command if st.last_command else None
            ctx.held.add(nv.key)
            ctx.cluster_hold = f"{nv.key} is running '{cmd}'"
            ctx.block(
                nv.key,
                f"{nv.key} has '{cmd}' in progress: wait for it to finish, then plan again",
            )
        unknowns = ctx.unknown.get(nv.key, [])
        if unknowns and not nv.unclustered:
            ctx.destructive_hold = ctx.destructive_hold or f"{nv.key}: {unknowns[0]}"
        if unknowns and nv.key not in ctx.held:
            ctx.held.add(nv.key)
            ctx.block(
                nv.key,
                f"{nv.key} is held back: " + "; ".join(unknowns) + ". Nothing is planned for it",
            )


def describe_minority(ctx: PlanContext) -> None:
    """A replica whose `Node in use` names itself sees no master: it is on the minority side."""
    for nv in ctx.view.nodes:
        st = nv.status
        if st is None or st.me is None or st.node_in_use is None:
            continue
        if normalize_address(st.node_in_use) == normalize_address(nv.address) and st.master is None:
            ctx.warn(
                f"{nv.key} sees no master to follow (its `Node in use` names itself and it "
                f"shows itself `{st.me.raw}`): it is on the minority side"
            )


def quiet(nv: NodeView) -> bool:
    """A clustered member the reference view shows disconnected or not in sync: no steps."""
    return (
        nv.clustered
        and nv.role in ("master", "replica", "unknown")
        and (nv.sync not in ("master", "in-sync"))
    )


def actionable(ctx: PlanContext) -> list[NodeView]:
    """The spec nodes that are not held: the only ones that may get steps."""
    return [nv for nv in ctx.view.nodes if nv.in_spec and nv.key not in ctx.held]


def _recovery_advice(ctx: PlanContext) -> str | None:
    """When members listed by the membership have left or cannot be reached, waiting may
    never bring the majority back: the explicit way out (never run by watch)."""
    left: list[str] = []
    lost: list[str] = []
    for address in ctx.view.membership:
        nv = ctx.view.by_address(address)
        if nv is None or not nv.reachable:
            lost.append(nv.key if nv is not None else address)
        elif nv.unclustered:
            left.append(nv.key)
    if not left and not lost:
        return None
    parts = []
    if left:
        parts.append(
            f"{', '.join(left)} {'has' if len(left) == 1 else 'have'} left (its own status "
            "shows it is not clustered) and cannot come back as a member"
        )
    if lost:
        parts.append(f"{', '.join(lost)} cannot be reached")
    return (
        "the membership still lists nodes that are gone: "
        + "; ".join(parts)
        + ". If they cannot come back, rebuild the cluster on one node: `reconcile recover "
        "SPEC --initialize-on NODE` (it shows each node's evidence, takes backups, asks for "
        "the cluster's name, and is never run by watch); name the former master if it left "
        "by `remove` (it keeps the cluster's data, A3)"
    )
