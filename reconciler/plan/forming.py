"""Forming the cluster: `initialize`, the joins of database nodes, the connects of clients.

Pure. Phases 3, 6 and 8 of the plan:

* **initialize** (phase 3) — only when no node belongs to a cluster or sees a master, every
  reachable spec node shows the explicit not-clustered layout (positive evidence, never the
  mere absence of members), the reachable, unclustered database nodes are more than half of
  the spec's database nodes, and the intended master is one of them and configured;
* **joins** (phase 6) — database nodes that are not clustered join the (projected) master,
  spec order, after the earlier steps; never more database members than
  ``policy.max_database_nodes`` (an unclustered node held back by an unknown value keeps
  its place);
* **connects** (phase 8) — client nodes, spec order; a connected client whose interface or
  certificates must change rotates like a replica (:func:`reconciler.plan.rotation.rotate`).

None of them while ``cluster_hold`` is set, and only on a node whose projected interface
and certificate names are the spec's (the preparation blocks the others).
"""

from __future__ import annotations

from reconciler.common.majority import has_majority
from reconciler.plan.context import LATER_RUN, PlanContext
from reconciler.plan.rotation import rotate
from reconciler.plan.step_builders import add_initialize, add_join
from reconciler.spec.model import NodeRole


def plan_initialize(ctx: PlanContext) -> None:
    """Phase 3: `initialize` on the intended master (see the module docstring)."""
    view, spec = ctx.view, ctx.spec
    if view.masters or view.membership or view.any_clustered:
        return
    unproven = [
        nv.key
        for nv in view.nodes
        if nv.in_spec
        and (nv.observation.unreadable is not None or nv.reachable)
        and (nv.gaps or not nv.unclustered)
    ]
    if unproven:
        ctx.block(
            None,
            "initialize refused: "
            + ", ".join(unproven)
            + " not shown to be unclustered (`initialize` needs every reachable node to show "
            "the not-clustered layout: `Status : Disabled`, an empty `Nodes:`, "
            "`Node in use : none`)",
        )
        return
    db = spec.database_nodes
    ready = [
        n.name
        for n in db
        if n.name not in ctx.held
        and (nv := view.node(n.name)) is not None
        and nv.reachable
        and nv.unclustered
    ]
    if not has_majority(len(ready), len(db)):
        ctx.block(
            None,
            f"initialize refused: only {len(ready)} of {len(db)} database nodes are reachable "
            "and not clustered; an unreachable node may belong to a cluster with a master. "
            "Bring more than half of the database nodes back first",
        )
        return
    target = spec.master
    if target not in ready:
        ctx.block(target, f"initialize waits for the intended master {target}")
        return
    if ctx.cluster_hold is not None:
        ctx.block(None, f"initialize waits: {ctx.cluster_hold}")
        return
    if not ctx.configured(target):
        return  # blocked by prepare (no server pair, or unknown values)
    add_initialize(ctx, target)


def plan_joins(ctx: PlanContext) -> None:
    """Phase 6: database nodes that are not clustered join the master."""
    max_nodes = ctx.spec.policy.max_database_nodes
    reserved = 0  # earlier nodes that would join but whose values are unknown keep their place
    for n in ctx.spec.database_nodes:
        nv = ctx.node_view(n.name)
        if nv.key in ctx.held:
            reserved += nv.key in ctx.unknown and nv.unclustered
            continue
        if not ctx.clustered[nv.key]:
            if ctx.master is None:
                if ctx.view.masters or ctx.view.membership or ctx.view.any_clustered:
                    ctx.block(nv.key, f"{nv.key} cannot join: there is no master")
                continue
            if ctx.cluster_hold is not None:
                ctx.block(nv.key, f"join of {nv.key} waits: {ctx.cluster_hold}")
                continue
            if len(ctx.members) + reserved + 1 > max_nodes:
                ctx.block(
                    nv.key,
                    f"join of {nv.key} refused: the cluster would have more than "
                    f"policy.max_database_nodes={max_nodes} database nodes; it is {LATER_RUN} "
                    "if members leave",
                )
                continue
            if not ctx.configured(nv.key):
                continue  # blocked by prepare (no server pair, or unknown values)
            add_join(ctx, nv.key, ctx.procedure_for(nv.key))


def plan_connects(ctx: PlanContext) -> None:
    """Phase 8: clients connect (or rotate, when connected and they must change)."""
    for n in ctx.spec.nodes:
        if n.role is not NodeRole.CLIENT:
            continue
        nv = ctx.node_view(n.name)
        if nv.key in ctx.held:
            continue
        if not ctx.clustered[nv.key]:
            if ctx.master is None:
                ctx.block(nv.key, f"{nv.key} cannot connect: there is no master")
            elif ctx.cluster_hold is not None:
                ctx.block(nv.key, f"connect of {nv.key} waits: {ctx.cluster_hold}")
            elif ctx.configured(nv.key):
                add_join(ctx, nv.key, ctx.procedure_for(nv.key), client=True)
            continue
        if nv.role != "client":
            ctx.block(
                nv.key,
                f"{nv.key} is a database member but the spec says client: change it by hand "
                "(remove it from the cluster, then plan again)",
            )
            continue
        why = ctx.needs_rotation(nv.key)
        if why:
            rotate(ctx, nv, why, client=True)
