"""Adopting a cluster built by hand (`reconcile import`), part 1: node readings -> a draft.

Pure. The command reads every node it is given (``--host``) and every member their
statuses list (:func:`members_to_read` says which are still unread, reached on the SSH
port of the node that listed them), then :func:`adopt` judges the evidence with the
planner's own view (:func:`reconciler.plan.cluster_view.build_view`: identity, master
acceptance, the majority of A1) and returns either the problems that refuse the import,
one sentence each naming the node, or a :class:`Draft`: every node's name, role, address
and MMP endpoint, the accepted master, the interface and each node's certificate names.

Evidence before action. Each of these refuses: a node that cannot be read; a status line
that is missing (unknown, never a default); a node that is not clustered (import adopts a
running cluster: such a node is added to the spec by hand); a command in progress; a node
that shows no ``(me)`` without the evidence of a Call Bridge that only connected (its last
command a `connect`, or its server certificate lines shown as `none`); statuses that
disagree about the membership or the master; no master accepted by a majority. The checks
of the joined view are :mod:`reconciler.plan.adoption_checks`, the names
:mod:`reconciler.plan.adoption_names`, where the files go
:mod:`reconciler.plan.adoption_files` and the spec's text
:mod:`reconciler.plan.adoption_render`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.common.addresses import normalize_address, same_address
from reconciler.observe.snapshot_model import NodeObservation, Observed
from reconciler.observe.status_evidence import Clustering, base_gaps, clustering, in_progress
from reconciler.observe.status_model import ClusterState, ClusterStatus, Line
from reconciler.plan.adoption_checks import NodeCerts, node_certs, view_problems
from reconciler.plan.adoption_names import NAME, choose_names
from reconciler.plan.cluster_view import ClusterView, build_view, member_sync
from reconciler.spec.model import CertificateSet, ClusterSpec, KeyPair, NodeRole, NodeSpec, SshSpec

__all__ = [
    "Adoption",
    "Draft",
    "DraftNode",
    "NodeReading",
    "adopt",
    "members_to_read",
]


@dataclass(frozen=True)
class NodeReading:
    """What one node answered: its status (or why not) and its `hostname`."""

    host: str  # where SSH connected: as given with --host, or as a member line printed it
    port: int
    found_through: str | None  # None: given with --host; else the host whose status listed it
    observation: NodeObservation
    hostname: str | None = None  # what `hostname` printed, when it answered

    @property
    def label(self) -> str:
        how = "--host" if self.found_through is None else f"listed by {self.found_through}"
        return f"{self.host} ({how})"

    @property
    def status(self) -> ClusterStatus | None:
        return self.observation.status if self.observation.reachable else None


@dataclass(frozen=True)
class DraftNode:
    name: str
    address: str  # on the clustering interface: its `(me)` line (a client: the host given)
    role: NodeRole
    host: str  # where its MMP answered SSH
    port: int
    certs: NodeCerts
    seen_as: str  # master | replica (with its sync, as the master shows it) | client
    name_from: str  # --name | hostname | address
    found: str  # how it was found (for the spec's comments)

    @property
    def mmp_host(self) -> str | None:
        return None if same_address(self.host, self.address) else self.host


@dataclass(frozen=True)
class Draft:
    cluster: str
    interface: str
    master: str  # the accepted master's name
    nodes: tuple[DraftNode, ...]  # the master, the other members in its order, then clients
    notes: tuple[str, ...] = ()  # worth knowing, not refusing (shown on stderr)

    def node(self, name: str) -> DraftNode:
        return next(n for n in self.nodes if n.name == name)


@dataclass(frozen=True)
class Adoption:
    draft: Draft | None
    problems: tuple[str, ...] = ()


def members_to_read(readings: Sequence[NodeReading]) -> list[tuple[str, int, str]]:
    """(address, SSH port, listed by) of each member a status lists that no reading is."""
    known = {normalize_address(r.host) for r in readings}
    known |= {normalize_address(st.me.address) for r in readings if (st := r.status) and st.me}
    found: list[tuple[str, int, str]] = []
    for r in readings:
        st = r.status
        if st is None or clustering(st) is not Clustering.YES:
            continue
        for member in st.members:
            if (key := normalize_address(member.address)) not in known:
                known.add(key)
                found.append((member.address, r.port, r.host))
    return found


@dataclass(frozen=True)
class _Placed:
    reading: NodeReading
    spec: NodeSpec
    name_from: str


def adopt(
    readings: Sequence[NodeReading], *, cluster: str, names: Mapping[str, str] | None = None
) -> Adoption:
    """Judge the readings (see the module docstring): the draft, or why not."""
    if not NAME.match(cluster):
        return _refused([f"--cluster {cluster!r}: letters, digits, '_', '.', '-' only"])
    problems = [p for r in readings for p in _reading_problems(r)]
    if problems:
        return _refused(problems)
    found = [(r, *_identify(r)) for r in readings]
    problems = [why for _, _, why in found if why is not None]
    problems += _duplicates([(r, address) for r, address, _ in found])
    if problems:
        return _refused(problems)
    choices, problems, notes = choose_names(
        [(address, r.host, r.hostname) for r, address, _ in found], names or {}
    )
    if problems:
        return _refused(problems)
    placed = [
        _Placed(r, _node_spec(r, address, choice.name), choice.source)
        for (r, address, _), choice in zip(found, choices, strict=True)
    ]
    spec = _provisional_spec(cluster, [p.spec for p in placed])
    view = build_view(spec, Observed(nodes={p.spec.name: p.reading.observation for p in placed}))
    problems = view_problems(view)
    if problems:
        return _refused(problems)
    return Adoption(_draft(cluster, placed, view, notes))


def _refused(problems: Sequence[str]) -> Adoption:
    return Adoption(None, tuple(problems))


def _reading_problems(r: NodeReading) -> list[str]:
    st = r.status
    if st is None:
        return [f"{r.label}: cannot be read: {r.observation.why_not}"]
    gaps = base_gaps(st)
    if gaps:
        return [f"{r.label}: {gap}" for gap in gaps]
    if clustering(st) is Clustering.NO:
        if r.found_through is None:
            return [
                f"{r.label} is not clustered: `reconcile import` adopts a running cluster; "
                "add this node to the spec by hand (`reconcile apply` then joins it)"
            ]
        return [f"{r.label} is listed as a member, but its own status says it is not clustered"]
    if in_progress(st):
        raw = st.last_command.raw if st.last_command is not None else ""
        return [f"{r.label}: a command is in progress ({raw}): import once it has finished"]
    return []


def _identify(r: NodeReading) -> tuple[str, str | None]:
    """The node's clustering address, and why it cannot be placed (None: it can)."""
    st = r.status
    assert st is not None
    if st.me is not None:  # a member; one found in a list must answer as that address
        return (st.me.address if r.found_through is None else r.host), None
    if any(same_address(m.address, r.host) for m in st.members):
        why = "lists its own address as a member but marks no `(me)`: its own line is missing"
        return r.host, f"{r.label}: its status {why}"
    last = st.last_command.command if st.last_command is not None else None
    certs = st.certificates
    no_server = {Line.SERVER_KEY, Line.SERVER_CERT} <= st.shown and not (
        certs.server_key or certs.server_cert
    )
    if (last or "").split()[:3] == ["database", "cluster", "connect"] or no_server:
        return r.host, None  # a Call Bridge that only connects
    return r.host, (
        f"{r.label}: its status marks no member `(me)`, and shows neither a `connect` as its "
        "last command nor `none` server certificates: whether it is a database member whose "
        "own line is missing or a Call Bridge connected as a client cannot be told; add it to "
        "the spec by hand"
    )


def _duplicates(found: list[tuple[NodeReading, str]]) -> list[str]:
    seen: dict[str, NodeReading] = {}
    out: list[str] = []
    for r, address in found:
        first = seen.setdefault(normalize_address(address), r)
        if first is not r:
            out.append(f"{first.label} and {r.label} are the same node ({address}): give it once")
    return out


def _node_spec(r: NodeReading, address: str, name: str) -> NodeSpec:
    st = r.status
    member = st is not None and st.me is not None
    return NodeSpec(
        name=name,
        address=address,
        role=NodeRole.DATABASE if member else NodeRole.CLIENT,
        mmp_host=None if same_address(r.host, address) else r.host,
        mmp_port=r.port,
    )


_PLACEHOLDER = CertificateSet(ca="-", client=KeyPair(cert="-", key="-"))


def _provisional_spec(cluster: str, nodes: list[NodeSpec]) -> ClusterSpec:
    """A spec of just the nodes, for the planner's view (which reads nothing else of it)."""
    first = next((n.name for n in nodes if n.role is NodeRole.DATABASE), nodes[0].name)
    return ClusterSpec(
        version=1,
        cluster=cluster,
        master=first,
        nodes=tuple(nodes),
        certificates=_PLACEHOLDER,
        ssh=SshSpec(known_hosts="-"),
    )


def _draft(cluster: str, placed: list[_Placed], view: ClusterView, notes: list[str]) -> Draft:
    """The accepted view as a draft: the master first, members in its order, then clients."""
    master = view.master_node
    assert master is not None and master.status is not None
    order = {normalize_address(m.address): i for i, m in enumerate(master.status.members)}

    def position(p: _Placed) -> tuple[int, int]:
        if p.spec.role is NodeRole.CLIENT:
            return 2, 0
        first = 0 if p.spec.name == master.key else 1
        return first, order.get(normalize_address(p.spec.address), len(order))

    nodes: list[DraftNode] = []
    for p in sorted(placed, key=position):
        nv = view.node(p.spec.name)
        assert nv is not None and nv.status is not None
        seen = "client" if p.spec.role is NodeRole.CLIENT else nv.role or "unknown"
        if nv.line is not None and seen == "replica":
            seen = f"replica ({member_sync(nv.line)})"
        r = p.reading
        nodes.append(
            DraftNode(
                name=p.spec.name,
                address=p.spec.address,
                role=p.spec.role,
                host=r.host,
                port=r.port,
                certs=node_certs(nv.status),
                seen_as=seen,
                name_from=p.name_from,
                found="given with --host"
                if r.found_through is None
                else f"listed by {r.found_through}",
            )
        )
    interface = master.status.interface
    assert interface is not None
    return Draft(
        cluster=cluster,
        interface=interface,
        master=master.key,
        nodes=tuple(nodes),
        notes=(*notes, *_degraded(view)),
    )


def _degraded(view: ClusterView) -> list[str]:
    """What `reconcile plan` will report about the imported cluster (not a refusal)."""
    out: list[str] = []
    for nv in view.nodes:
        st = nv.status
        if st is not None and (st.error is not None or st.state is ClusterState.ERROR):
            why = st.error or "Status : Error"
            out.append(f"{nv.key} is in error ({why}): `reconcile plan` shows the repair")
        if nv.line is not None and member_sync(nv.line) not in ("master", "in-sync"):
            out.append(f"the master shows {nv.key} `{nv.line.raw}`")
    return out
