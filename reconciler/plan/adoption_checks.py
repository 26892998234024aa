"""Adopting a cluster built by hand: what the joined view must show before a spec is written.

Pure. :func:`view_problems` reads the planner's view of the imported nodes
(:func:`reconciler.plan.cluster_view.build_view`) and says, one sentence per problem,
why it cannot be adopted: a view that cannot be attributed to its node (identity) or has
a gap; no connected master, or more than one; a master not accepted
(:mod:`reconciler.plan.master_acceptance`: its own view, its majority, no view
contradicting it); members whose lists differ from the master's; no majority of the
membership connected (:func:`reconciler.common.majority.has_majority`, A1); and for every
node the lines the spec is written from: the interface (one for the whole cluster) and
the certificate names (a database member needs its server pair). :func:`node_certs` is
those names.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.common.addresses import normalize_address
from reconciler.common.majority import has_majority
from reconciler.observe.status_evidence import certificates_gap, interface_gap
from reconciler.observe.status_model import ClusterStatus
from reconciler.plan.cluster_view import ClusterView, NodeView
from reconciler.spec.model import NodeRole


@dataclass(frozen=True)
class NodeCerts:
    """The file names a node's status shows (``server_*`` None for a client)."""

    ca: str
    client_cert: str
    client_key: str
    server_cert: str | None = None
    server_key: str | None = None


def node_certs(status: ClusterStatus) -> NodeCerts:
    """The names of a status that :func:`view_problems` accepted."""
    c = status.certificates
    assert c.ca_cert is not None and c.client_cert is not None and c.client_key is not None
    return NodeCerts(
        ca=c.ca_cert,
        client_cert=c.client_cert,
        client_key=c.client_key,
        server_cert=c.server_cert,
        server_key=c.server_key,
    )


def label(nv: NodeView) -> str:
    return f"{nv.key} ({nv.address})"


def view_problems(view: ClusterView) -> list[str]:
    """Why the view cannot be adopted (empty: it can); see the module docstring."""
    problems = [f"{label(nv)}: {gap}" for nv in view.nodes for gap in nv.gaps]
    problems += [f"{nv.address}: listed as a member but not read" for nv in view.extras]
    if problems:
        return problems
    if not view.masters:
        return [
            "no node shows a connected master: import adopts a running cluster whose master "
            "a majority accepts (A1); bring the members back, then import"
        ]
    if len(view.masters) > 1:
        return [
            f"the statuses name {len(view.masters)} connected masters ("
            + ", ".join(view.label(m) for m in view.masters)
            + "): they are not one cluster, or it is split"
        ]
    if view.master_problem is not None:
        return [view.master_problem]
    if view.contradictions or view.master is None:
        return list(view.contradictions) or ["no master is accepted"]
    problems = _membership_problems(view)
    if problems:
        return problems
    return [p for nv in view.nodes for p in _line_problems(nv)] + _interface_problems(view)


def _members(status: ClusterStatus) -> frozenset[str]:
    return frozenset(normalize_address(m.address) for m in status.members)


def _listed(status: ClusterStatus) -> str:
    return ", ".join(m.address for m in status.members)


def _membership_problems(view: ClusterView) -> list[str]:
    master = view.master_node
    assert master is not None and master.status is not None
    reference = _members(master.status)
    out: list[str] = []
    for nv in view.nodes:
        if nv is master or nv.status is None or not nv.clustered:
            continue
        if _members(nv.status) != reference:
            out.append(
                f"{label(nv)} lists the members {_listed(nv.status)}, but the master "
                f"{label(master)} lists {_listed(master.status)}: the statuses disagree about "
                "the membership"
            )
    up, members = len(view.connected), len(view.membership)
    if not out and not has_majority(up, members):
        out.append(
            f"the master {label(master)} shows {up} of {members} members connected: a "
            "master needs more than half (A1)"
        )
    return out


def _line_problems(nv: NodeView) -> list[str]:
    st = nv.status
    assert st is not None
    gaps = [g for g in (interface_gap(st), certificates_gap(st)) if g is not None]
    if gaps:
        return [f"{label(nv)}: {gap}" for gap in gaps]
    out: list[str] = []
    if st.interface is None:
        out.append(f"{label(nv)}: its status shows `Interface : none`")
    c = st.certificates
    wanted = [("Client Key", c.client_key), ("Client Certificate", c.client_cert)]
    wanted.append(("CA Certificate", c.ca_cert))
    if nv.spec_role is NodeRole.DATABASE:
        wanted = [("Server Key", c.server_key), ("Server Certificate", c.server_cert), *wanted]
    unset = [name for name, value in wanted if value is None]
    if unset:
        shown = ", ".join(f"`{name} : none`" for name in unset)
        out.append(f"{label(nv)}: its status shows {shown}: a clustered node uses these files")
    return out


def _interface_problems(view: ClusterView) -> list[str]:
    seen: dict[str, list[str]] = {}
    for nv in view.nodes:
        if nv.status is not None and nv.status.interface is not None:
            seen.setdefault(nv.status.interface, []).append(nv.key)
    if len(seen) <= 1:
        return []
    uses = "; ".join(f"{iface} on {', '.join(keys)}" for iface, keys in sorted(seen.items()))
    return [f"the nodes cluster on different interfaces ({uses}): a spec has one interface"]
