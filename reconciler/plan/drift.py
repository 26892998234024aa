"""The drift: what differs between the spec and the observed cluster, in the operator's words.

Pure. :func:`describe_drift` lists what is not as the spec says: the master; then, for every
node whose status was read, a member the spec does not list and, when its view has no gap,
an error, its membership (not in the cluster, a client connected as a database member or
the reverse), the interface, the certificate names and files, and whether the master shows
it disconnected, does not list it or shows it not in sync (with a warning saying what to
check). Only shown values count: an unknown interface or certificate name is no drift.
Drift plans nothing; the phases plan the steps.
"""

from __future__ import annotations

from reconciler.common.addresses import normalize_address
from reconciler.observe.status_model import ClusterState
from reconciler.plan.context import PlanContext
from reconciler.plan.holds import PORT_ADVICE, quiet
from reconciler.spec.model import NodeRole


def describe_drift(ctx: PlanContext) -> None:
    """Append to ``ctx.drift`` (and warnings) what differs from the spec."""
    view, spec = ctx.view, ctx.spec
    intended = spec.node(spec.master)
    if view.master is not None and normalize_address(view.master) != normalize_address(
        intended.address
    ):
        ctx.drift.append(
            f"the master is {view.label(view.master)}; the spec says {intended.name} "
            f"({intended.address})"
        )
    for nv in view.nodes:
        if nv.key in ctx.held and not nv.reachable:
            continue
        st = nv.status
        if st is None:
            continue
        if not nv.in_spec:
            ctx.drift.append(f"{nv.key} is a cluster member the spec does not list")
            continue
        if nv.gaps:
            continue  # held back with its gaps (nothing about it is known well enough)
        if st.error is not None or st.state is ClusterState.ERROR:
            ctx.drift.append(f"{nv.key} is in error: {st.error or st.state_raw}")
        if nv.spec_role is NodeRole.CLIENT:
            if not nv.clustered:
                ctx.drift.append(f"{nv.key} (client) is not connected to the cluster")
            elif nv.role != "client":
                ctx.drift.append(f"{nv.key} is a database member; the spec says client")
        elif nv.unclustered:
            ctx.drift.append(f"{nv.key} is not in the cluster")
        elif nv.role == "client":
            ctx.drift.append(f"{nv.key} is connected as a client; the spec says database")
        if ctx.interface_known(nv.key) and ctx.interface[nv.key] != spec.interface:
            ctx.drift.append(
                f"{nv.key}: interface is {ctx.interface.get(nv.key) or 'none'}; "
                f"the spec says {spec.interface}"
            )
        wanted = ctx.wanted_certs(nv.key)
        if wanted is not None and ctx.certs_known(nv.key) and ctx.certs[nv.key] != wanted:
            have = ", ".join(n or "none" for n in ctx.certs[nv.key])
            ctx.drift.append(
                f"{nv.key}: certificates are {have}; the spec says "
                + ", ".join(n or "none" for n in wanted)
            )
        listing = ctx.files.get(nv.key)
        for path, lf in ctx.uploads_needed(nv.key):
            state = "missing" if listing is None or lf.remote_name not in listing else "different"
            ctx.drift.append(f"{nv.key}: file {lf.remote_name} is {state} (spec: {path})")
        if quiet(nv):
            if nv.sync == "disconnected":
                ctx.drift.append(f"{nv.key} is shown Disconnected by the master")
                ctx.warn(f"{nv.key} is clustered but Disconnected: {PORT_ADVICE}")
            elif nv.sync is None:
                ctx.drift.append(f"{nv.key} is clustered but the master does not list it")
                ctx.warn(f"{nv.key} believes it is clustered but the master does not list it")
            else:
                ctx.drift.append(f"{nv.key} is not in sync ({nv.sync})")
                ctx.warn(
                    f"{nv.key} is connected but not in sync: wait for replication to catch up; "
                    f"if it stays behind, {PORT_ADVICE}"
                )
