"""The rebuild (A5, TAC 216549): the master's certificates or interface change.

Pure. Part of the rotations phase. A clustered node's certificates and interface cannot
change in place, and the master cannot simply leave and rejoin: Cisco's procedure for
renewing the certificates of a running cluster is `remove` on every replica, then on the
master last (it keeps the cluster's data, A3), `certs` with the new files on every node,
`initialize` on the former master, `join` the others. Only with
``policy.allow_cluster_rebuild`` (the cluster has no master from the master's `remove` to
its `initialize`: it is read-only then), and only when every member can be observed
whole, is connected and in sync, and is listed by the spec (or ``policy.allow_remove``).
The backups phase puts a `backup snapshot` of every member before the first `remove`.
"""

from __future__ import annotations

from reconciler.plan.cluster_view import NodeView
from reconciler.plan.context import PlanContext
from reconciler.plan.preparation import prepare
from reconciler.plan.procedures import REBUILD
from reconciler.plan.step_builders import add_initialize, add_join, add_remove


def plan_rebuild(ctx: PlanContext, master: NodeView, why: list[str]) -> bool:
    """Plan the rebuild on ``master``, or block it with the reason. True if planned."""
    what = "; ".join(why)
    if not ctx.spec.policy.allow_cluster_rebuild:
        ctx.block(
            master.key,
            f"{master.key} is the master and must change ({what}). A clustered node's "
            "certificates and interface cannot change; Cisco's procedure (TAC 216549) takes "
            "every member out of the cluster (replicas first, the master last), sets the new "
            "certificates, initializes the former master and joins the others: the cluster "
            "has no master while it runs. Set policy.allow_cluster_rebuild: true to plan it "
            "(backups are taken first), or move the master (change `master`), apply, and "
            "change it back",
        )
        return False
    refusal = _refusal(ctx, master)
    if refusal is not None:
        ctx.block(master.key, f"rebuild of the cluster on {master.key} ({what}) waits: {refusal}")
        return False
    replicas = _replicas(ctx, master)
    ctx.warn(
        f"rebuilding the cluster on {master.key} (TAC 216549, A5) so that it can change "
        f"({what}): {len(replicas)} replica(s) leave, then the master; the cluster has no "
        "master and takes no writes until the former master is initialized again"
    )
    for nv in replicas:
        gone = "" if nv.in_spec else " for good (the spec does not list it)"
        add_remove(
            ctx,
            nv.key,
            REBUILD,
            reason=f"rebuild on {master.key} (TAC 216549): {nv.key} leaves{gone}; replicas "
            "first, the master last",
            expect=f"{nv.key} is not clustered; {master.key} is still master",
            because=((master.key, "role"), (master.key, "interface"), (master.key, "certs")),
        )
    add_remove(
        ctx,
        master.key,
        REBUILD,
        reason=f"rebuild on {master.key} (TAC 216549): the master leaves last and keeps the "
        "cluster's data (A3)",
        expect=f"{master.key} is not clustered and holds the cluster's data",
        because=((master.key, "interface"), (master.key, "certs")),
    )
    ctx.master = None
    ctx.members = []
    ctx.connected = set()
    prepare(ctx, master.key, REBUILD)
    add_initialize(
        ctx,
        master.key,
        procedure=REBUILD,
        reason=f"rebuild (TAC 216549): the former master {master.key} starts the cluster "
        "again from the data it kept",
    )
    for nv in replicas:
        if nv.in_spec:
            prepare(ctx, nv.key, REBUILD)
            add_join(ctx, nv.key, REBUILD)
    return True


def _replicas(ctx: PlanContext, master: NodeView) -> list[NodeView]:
    out: list[NodeView] = []
    for address in ctx.members:
        nv = ctx.view.by_address(address)
        if nv is not None and nv.key != master.key:
            out.append(nv)
    return out


def _refusal(ctx: PlanContext, master: NodeView) -> str | None:
    if ctx.cluster_hold is not None:
        return ctx.cluster_hold
    if ctx.destructive_hold is not None:
        return f"its removes need every member's whole view ({ctx.destructive_hold})"
    if master.key in ctx.unknown:
        return "; ".join(ctx.unknown[master.key])
    if ctx.wanted_certs(master.key) is None:
        return f"{master.key} is a database node but the spec gives no server certificate"
    problems = ctx.member_problems(skip=(master.key,))
    problems += [f"{k}: {'; '.join(v)}" for k, v in ctx.unknown.items() if ctx.is_member_key(k)]
    if problems:
        return "every member must be reachable, in sync and known: " + "; ".join(problems)
    return None
