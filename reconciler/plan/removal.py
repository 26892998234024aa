"""The removal of extra members: `remove` on a member the spec does not list.

Pure. Phase 9 of the plan, only with ``policy.allow_remove``, replicas only (a master the
spec does not list leaves only through the master move). The member must be observed and
connected (in sync or syncing), no ``cluster_hold`` or ``destructive_hold`` may be set, and
its `remove` must leave the connected members more than half of the remaining membership.
A member the spec does not list gets no repair: its error is only cleared so that it can
leave (:func:`clear_extra_error`, also used by the master move).
"""

from __future__ import annotations

from reconciler.common.addresses import normalize_address
from reconciler.plan.cluster_view import NodeView
from reconciler.plan.context import PlanContext
from reconciler.plan.procedures import REMOVE_EXTRA
from reconciler.plan.step_builders import add_clear_error, add_remove


def plan_removals(ctx: PlanContext) -> None:
    """Phase 9: `remove` the members the spec does not list, or say why not."""
    for nv in ctx.view.extras:
        if not ctx.is_member(nv.address):
            continue
        if not ctx.spec.policy.allow_remove:
            ctx.block(
                nv.key,
                f"{nv.key} is a member the spec does not list; set policy.allow_remove to "
                "remove it (or add it to the spec)",
            )
            continue
        if ctx.master is not None and normalize_address(ctx.master) == normalize_address(
            nv.address
        ):
            ctx.block(
                nv.key,
                f"{nv.key} is the master and not in the spec: it leaves only through a master "
                "move to the spec's master",
            )
            continue
        if nv.key in ctx.held or not nv.reachable:
            ctx.block(nv.key, f"{nv.key} cannot be observed, so it cannot run `remove`")
            continue
        if nv.sync not in ("in-sync", "syncing"):
            ctx.block(nv.key, f"{nv.key} is not connected; `remove` is left to the operator")
            continue
        if ctx.cluster_hold is not None:
            ctx.block(nv.key, f"removal of {nv.key} waits: {ctx.cluster_hold}")
            continue
        if ctx.destructive_hold is not None:
            ctx.block(
                nv.key,
                f"removal of {nv.key} waits: `remove` needs every member's whole view "
                f"({ctx.destructive_hold})",
            )
            continue
        if not ctx.remove_keeps_majority(nv.address):
            ctx.block(nv.key, f"removing {nv.key} now would leave the cluster without a majority")
            continue
        remove_extra(ctx, nv)


def remove_extra(ctx: PlanContext, nv: NodeView) -> None:
    """`remove` on a member the spec does not list (its error cleared first)."""
    clear_extra_error(ctx, nv, REMOVE_EXTRA)
    add_remove(
        ctx,
        nv.key,
        REMOVE_EXTRA,
        reason=f"{nv.key} is a cluster member the spec does not list (policy.allow_remove)",
        expect=f"{nv.key} is no longer a member",
    )


def clear_extra_error(ctx: PlanContext, nv: NodeView, procedure: str) -> None:
    """A member the spec does not list gets no repair; an error is only cleared so it can leave."""
    st = nv.status
    if not nv.in_spec and st is not None and (st.error is not None or st.state.value == "error"):
        add_clear_error(ctx, nv.key, st.error, procedure)
