"""The schema repair (A6): `clear error` when in error, then `upgrade_schema`, master first.

Pure. Phase 4 of the plan. A clustered node whose status shows a schema error, or whose
last `upgrade_schema` failed (:func:`reconciler.plan.procedures.schema_repair_pending`), is
repaired only while the cluster has a master: the master first, then the replicas; a
replica the master shows disconnected or not in sync waits, and so does every repair
while ``cluster_hold`` is set (`upgrade_schema` changes the cluster).
"""

from __future__ import annotations

from reconciler.plan.cluster_view import NodeView
from reconciler.plan.context import PlanContext
from reconciler.plan.holds import actionable, quiet
from reconciler.plan.procedures import SCHEMA_REPAIR, schema_repair_pending
from reconciler.plan.step_builders import add_clear_error, add_upgrade_schema


def plan_schema_repairs(ctx: PlanContext) -> None:
    """Phase 4: the schema repairs (see the module docstring)."""
    if ctx.master is None:
        return
    candidates = [
        nv
        for nv in actionable(ctx)
        if nv.clustered and nv.status is not None and schema_repair_pending(nv.status)
    ]
    candidates.sort(key=lambda nv: nv.role != "master")
    for nv in candidates:
        if nv.role != "master" and quiet(nv):
            ctx.block(nv.key, f"schema repair on {nv.key} waits until it is connected and in sync")
            continue
        if ctx.cluster_hold is not None:
            ctx.block(nv.key, f"schema repair on {nv.key} waits: {ctx.cluster_hold}")
            continue
        schema_repair(ctx, nv)


def schema_repair(ctx: PlanContext, nv: NodeView) -> None:
    """A6 on one node: `clear error` when the node shows Error, then `upgrade_schema`."""
    st = nv.status
    assert st is not None
    if st.error is not None or st.state.value == "error":
        add_clear_error(ctx, nv.key, st.error, SCHEMA_REPAIR)
    add_upgrade_schema(ctx, nv.key)
