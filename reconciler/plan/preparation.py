"""The node-local phases: uploads, and the preparation of nodes that are not clustered.

Pure. Phase 1, :func:`plan_uploads`: files that differ or are missing on nodes that are
not clustered, and files that are missing (never ones that differ: those are in use and
change only by rotation) on clustered nodes. Phase 2, :func:`plan_preparation`, node by
node in spec order: `clear error` (any error but the schema error of a clustered node,
which is the schema repair's), then :func:`prepare` on a node shown to be unclustered.

:func:`prepare` is also how the rotation and the master move end for each node they
take out: `localnode` and `certs` are only planned on a node that is not clustered (or
has just been removed), and never from a value whose line was not shown.
"""

from __future__ import annotations

from reconciler.observe.status_model import ClusterState
from reconciler.plan.context import PlanContext
from reconciler.plan.holds import actionable
from reconciler.plan.procedures import schema_repair_pending
from reconciler.plan.step_builders import add_certs, add_clear_error, add_localnode, add_upload


def plan_uploads(ctx: PlanContext) -> None:
    """Phase 1: the uploads (see the module docstring)."""
    for nv in actionable(ctx):
        # A file that differs on a clustered node is in use: it changes only by rotation.
        absent_only = ctx.clustered[nv.key]
        for path, lf in ctx.uploads_needed(nv.key, absent_only=absent_only):
            add_upload(ctx, nv.key, path, lf, ctx.procedure_for(nv.key))


def plan_preparation(ctx: PlanContext) -> None:
    """Phase 2: `clear error`, then the preparation of unclustered nodes."""
    for nv in actionable(ctx):
        st = nv.status
        assert st is not None
        in_error = st.error is not None or st.state is ClusterState.ERROR
        if in_error and not (nv.clustered and schema_repair_pending(st)):
            if not nv.unclustered and ctx.cluster_hold is not None:
                ctx.block(nv.key, f"clearing the error on {nv.key} waits: {ctx.cluster_hold}")
                continue
            ctx.warn(
                f"{nv.key} is in error ({st.error or 'no ERROR text'}): the error is cleared "
                "and the step that failed is planned again; check the node's log "
                "(`syslog follow`) if it fails again"
            )
            add_clear_error(ctx, nv.key, st.error, None)
        if nv.unclustered:
            prepare(ctx, nv.key, ctx.procedure_for(nv.key), with_uploads=False)


def prepare(
    ctx: PlanContext, key: str, procedure: str | None, *, with_uploads: bool = True
) -> bool:
    """Uploads, `localnode`, `certs` for a node that is not clustered. False if it cannot be.

    A node whose interface or certificate lines were not shown is not prepared (an
    unknown value is no drift): it is held back with what is unknown.
    """
    wanted = ctx.wanted_certs(key)
    if wanted is None:
        ctx.block(key, f"{key} is a database node but the spec gives no server certificate")
        return False
    if key in ctx.unknown and not (ctx.interface_known(key) and ctx.certs_known(key)):
        ctx.block(key, f"{key}: " + "; ".join(ctx.unknown[key]) + ": nothing is planned")
        return False
    missing = ctx.keys_not_on_node(key) if ctx.certs.get(key) != wanted else []
    if missing:
        ctx.block(key, f"{key}: " + "; ".join(missing) + ": its certificates are not set")
        return False
    if with_uploads:
        for path, lf in ctx.uploads_needed(key):
            add_upload(ctx, key, path, lf, procedure)
    if ctx.interface.get(key) != ctx.spec.interface:
        add_localnode(ctx, key, procedure)
    if ctx.certs.get(key) != wanted:
        add_certs(ctx, key, wanted, procedure)
    return True
