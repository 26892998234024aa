"""The rotation ("rejoin"): a clustered node whose interface or certificates must change.

Pure. Phase 7 of the plan (and, for connected clients, part of phase 8). A clustered node's
interface and certificates cannot change in place, so it leaves and comes back: `remove`,
[uploads], [`localnode`], [`certs`], `join <master>` (`connect` for a client); a database
node connected as a client rejoins the same way. Replicas only, never the master (its
change is the rebuild of the whole cluster, A5: :mod:`reconciler.plan.rebuild`), nor a
member the master shows disconnected or not in sync, and after the joins so that new
members count for the majority. A rotation is not planned on an unknown value, while
``cluster_hold`` or ``destructive_hold`` is set, without a master, when it would take the
cluster over ``policy.max_database_nodes``, or when its `remove` would leave the connected
members no more than half of the rest
(:meth:`~reconciler.plan.context.PlanContext.remove_keeps_majority`).
"""

from __future__ import annotations

from reconciler.common.addresses import normalize_address
from reconciler.plan.cluster_view import NodeView
from reconciler.plan.context import LATER_RUN, PlanContext
from reconciler.plan.holds import quiet
from reconciler.plan.preparation import prepare
from reconciler.plan.procedures import REJOIN
from reconciler.plan.rebuild import plan_rebuild
from reconciler.plan.step_builders import add_join, add_remove


def plan_rotations(ctx: PlanContext) -> None:
    """Clustered database nodes whose interface or certificates must change (after the joins,
    so that every joined node already counts for the majority). When the master must
    change, the whole cluster is rebuilt on it instead (:mod:`reconciler.plan.rebuild`)."""
    master = ctx.view.by_address(ctx.master) if ctx.master is not None else None
    if (
        master is not None
        and master.in_spec
        and master.key not in ctx.held
        and ctx.clustered.get(master.key, False)
        and (why := ctx.needs_rotation(master.key))
        and plan_rebuild(ctx, master, why)
    ):
        return
    for n in ctx.spec.database_nodes:
        nv = ctx.node_view(n.name)
        if nv.key in ctx.held or not ctx.clustered[nv.key] or nv.key in ctx.rejoining:
            continue
        is_master = ctx.master is not None and normalize_address(ctx.master) == (
            normalize_address(nv.address)
        )
        if is_master or quiet(nv):
            continue
        why = ctx.needs_rotation(nv.key)
        if nv.role == "client":
            why = ["it is connected as a client but the spec says database", *why]
        elif not why:
            continue
        rotate(ctx, nv, why, client=False)


def rotate(ctx: PlanContext, nv: NodeView, why: list[str], *, client: bool) -> None:
    """Plan the rotation of ``nv`` (a replica, or a client), or block it with the reason."""
    if nv.key in ctx.unknown:
        ctx.block(
            nv.key,
            f"{nv.key} must leave and rejoin ({'; '.join(why)}), but "
            + "; ".join(ctx.unknown[nv.key])
            + ": the rotation is not planned on an unknown value",
        )
        return
    if ctx.cluster_hold is not None:
        ctx.block(nv.key, f"rotation of {nv.key} waits: {ctx.cluster_hold}")
        return
    if ctx.destructive_hold is not None:
        ctx.block(
            nv.key,
            f"rotation of {nv.key} waits: its `remove` needs every member's whole view "
            f"({ctx.destructive_hold})",
        )
        return
    if ctx.master is None:
        ctx.block(nv.key, f"rotation of {nv.key} needs a master")
        return
    member = nv.role in ("replica", "unknown")
    max_nodes = ctx.spec.policy.max_database_nodes
    if not client and len(ctx.members) + (0 if member else 1) > max_nodes:
        ctx.block(
            nv.key,
            f"{nv.key} must leave and rejoin ({'; '.join(why)}), but the cluster would then have "
            f"more than policy.max_database_nodes={max_nodes} database nodes; it is "
            f"{LATER_RUN} if members leave",
        )
        return
    if not ctx.remove_keeps_majority(nv.address):
        ctx.block(
            nv.key,
            f"{nv.key} must leave and rejoin ({'; '.join(why)}), but removing it now would "
            "leave the cluster without a majority: bring the disconnected members back first",
        )
        return
    if ctx.wanted_certs(nv.key) is None:
        ctx.block(nv.key, f"{nv.key} is a database node but the spec gives no server certificate")
        return
    rejoin(ctx, nv.key, why, client=client)


def rejoin(ctx: PlanContext, key: str, why: list[str], *, client: bool = False) -> None:
    """Rotation of a replica's (or client's) interface/certificates: remove, prepare, join."""
    files = tuple((key, f"file:{lf.remote_name}") for _, lf in ctx.uploads_needed(key))
    add_remove(
        ctx,
        key,
        REJOIN,
        reason=f"{key} must leave the cluster to change: {'; '.join(why)}",
        expect=f"{key} is not clustered; its interface and certificate names are kept",
        because=((key, "interface"), (key, "certs"), *files),
    )
    prepare(ctx, key, REJOIN)
    add_join(ctx, key, REJOIN, client=client)
