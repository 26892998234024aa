"""The cluster-wide picture derived from every node's own `database cluster status`.

Pure: built from a :class:`ClusterSpec` and an :class:`Observed` snapshot, no I/O.

Each node prints only its own view, and a view can be incomplete, misattributed or stale.
This module joins the views into one picture and says where the evidence falls short:

* **gaps** (per node) — why the node's view cannot be used for any decision: the lines of
  :func:`reconciler.observe.status_evidence.base_gaps`, and its **identity**: a clustered view's
  `(me)` must be the spec node's own address (after normalisation); a database node with
  no `(me)` line, or one that names another address, is held back (the rules:
  :mod:`reconciler.plan.identity`);
* **claimed masters** — the distinct connected masters any readable view names (more than
  one means split brain);
* **the master** — accepted only when exactly one is claimed, its own view is readable,
  complete (every line, the interface and certificates too) and shows itself
  `Connected Master` with more than half of its members connected (A1), and no usable
  view contradicts it (``contradictions``; the rules: :mod:`reconciler.plan.master_acceptance`).
  Otherwise ``master`` is None and ``master_problem`` or ``contradictions`` say why;
* **membership** — every member address any readable clustered view lists, deduplicated
  by normalised address (the widest membership the evidence allows: the majority is
  checked against it); **connected** — the members the accepted master's own view shows
  connected;
* **which spec node each member address is** — addresses compare after normalisation
  (:mod:`reconciler.common.addresses`);
* **extra members** — member addresses that are no spec database node. Their observation,
  when the observer could read them, is keyed by the member address in ``Observed.nodes``.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.common.addresses import normalize_address, same_address
from reconciler.observe.snapshot_model import NodeObservation, Observed
from reconciler.observe.status_evidence import Clustering, clustering, in_progress
from reconciler.observe.status_model import ClusterStatus, Member, MemberRole, SyncState
from reconciler.plan.identity import view_gaps
from reconciler.plan.master_acceptance import accept_master
from reconciler.spec.model import ClusterSpec, NodeRole

__all__ = [
    "ClusterView",
    "NodeView",
    "build_view",
    "member_sync",
    "role_of",
]


def role_of(status: ClusterStatus) -> str:
    """The `role` fact: master | replica | client | none | unknown (not shown or not known)."""
    state = clustering(status)
    if state is Clustering.NO:
        return "none"
    if state is Clustering.UNKNOWN:
        return "unknown"
    me = status.me
    if me is None:
        return "client"
    if me.role is MemberRole.UNKNOWN:
        return "unknown"
    return me.role.value


def member_sync(member: Member) -> str:
    """A member as a view shows it: master|in-sync|syncing|no-master|disconnected|unknown."""
    if not member.connected:
        return "disconnected"
    if member.role is MemberRole.MASTER:
        return "master"
    if member.sync is SyncState.IN_SYNC:
        return "in-sync"
    if member.sync is SyncState.SYNCING:
        return "syncing"
    if member.sync is SyncState.NO_MASTER:
        return "no-master"
    return "unknown"


@dataclass(frozen=True)
class NodeView:
    key: str  # spec node name, or the member address for a member the spec does not list
    address: str  # spec address, or the member address as printed
    in_spec: bool
    spec_role: NodeRole | None  # None for a member the spec does not list
    observation: NodeObservation
    line: Member | None  # this node's line in the accepted master's view
    gaps: tuple[str, ...] = ()  # why its view cannot be used for any decision

    @property
    def status(self) -> ClusterStatus | None:
        return self.observation.status if self.observation.reachable else None

    @property
    def reachable(self) -> bool:
        return self.observation.reachable

    @property
    def usable(self) -> bool:
        """Reachable with a view that every decision about the node can rest on."""
        return self.reachable and not self.gaps

    @property
    def clustering(self) -> Clustering | None:
        return clustering(self.status) if self.status is not None else None

    @property
    def clustered(self) -> bool:
        """Positive evidence that the node belongs (or is connected) to a cluster."""
        return self.clustering is Clustering.YES

    @property
    def unclustered(self) -> bool:
        """Positive evidence (the explicit not-clustered layout) that it is not clustered."""
        return self.clustering is Clustering.NO

    @property
    def in_progress(self) -> bool:
        return self.status is not None and in_progress(self.status) is True

    @property
    def role(self) -> str | None:
        if self.status is None:
            return None
        return "unknown" if self.gaps else role_of(self.status)

    @property
    def sync(self) -> str | None:
        return member_sync(self.line) if self.line is not None else None


@dataclass(frozen=True)
class ClusterView:
    nodes: tuple[NodeView, ...]  # spec order, then extra members in membership order
    masters: tuple[str, ...]  # distinct connected masters claimed (addresses as printed)
    master: str | None  # the accepted master (see the module docstring)
    master_problem: str | None  # why the one claimed master was not accepted
    contradictions: tuple[str, ...]  # views that disagree about the master
    reference: str | None  # key of the accepted master's node (whose member list counts)
    membership: tuple[str, ...]  # member addresses as first printed, deduplicated
    connected: frozenset[str]  # normalised addresses the accepted master shows connected

    def node(self, key: str) -> NodeView | None:
        for n in self.nodes:
            if n.key == key:
                return n
        return None

    def by_address(self, address: str) -> NodeView | None:
        wanted = normalize_address(address)
        for n in self.nodes:
            if normalize_address(n.address) == wanted:
                return n
        return None

    @property
    def master_node(self) -> NodeView | None:
        return self.by_address(self.master) if self.master is not None else None

    @property
    def extras(self) -> tuple[NodeView, ...]:
        return tuple(n for n in self.nodes if not n.in_spec)

    @property
    def any_clustered(self) -> bool:
        return any(n.clustered for n in self.nodes)

    @property
    def incomplete(self) -> tuple[NodeView, ...]:
        """Reachable nodes whose view has a gap."""
        return tuple(n for n in self.nodes if n.reachable and n.gaps)

    def is_member(self, address: str) -> bool:
        wanted = normalize_address(address)
        return any(normalize_address(a) == wanted for a in self.membership)

    def label(self, address: str) -> str:
        nv = self.by_address(address)
        return f"{nv.key} ({address})" if nv is not None and nv.key != address else address


def _observation_for(observed: Observed, key: str) -> NodeObservation:
    if key in observed.nodes:
        return observed.nodes[key]
    wanted = normalize_address(key)
    for name, obs in observed.nodes.items():
        if normalize_address(name) == wanted:
            return obs
    return NodeObservation(unreachable="not observed")


def build_view(spec: ClusterSpec, observed: Observed) -> ClusterView:
    """Join all nodes' statuses into one picture (see the module docstring)."""
    spec_addresses = {normalize_address(n.address) for n in spec.nodes}
    spec_keys = {n.name for n in spec.nodes}
    readable: list[tuple[str, ClusterStatus]] = [
        (n.name, o.status)
        for n in spec.nodes
        if (o := observed.get(n.name)).reachable and o.status is not None
    ]
    # Statuses of members the spec does not list, when the observer could read them.
    for key, obs in observed.nodes.items():
        if key in spec_keys or normalize_address(key) in spec_addresses:
            continue
        if obs.reachable and obs.status is not None:
            readable.append((key, obs.status))

    masters: list[str] = []
    seen: dict[str, str] = {}
    for _, st in readable:
        if clustering(st) is not Clustering.YES:
            continue
        for m in st.members:  # every master line counts (a view may name two)
            is_master = m.connected and m.role is MemberRole.MASTER
            if is_master and not any(same_address(m.address, known) for known in masters):
                masters.append(m.address)
        for m in st.members:
            seen.setdefault(normalize_address(m.address), m.address)
    membership = tuple(seen.values())

    views = [
        NodeView(
            key=n.name,
            address=n.address,
            in_spec=True,
            spec_role=n.role,
            observation=(o := observed.get(n.name)),
            line=None,
            gaps=view_gaps(n.name, n.address, n.role, o),
        )
        for n in spec.nodes
    ]
    for address in membership:
        if normalize_address(address) in spec_addresses:
            continue
        obs = _observation_for(observed, address)
        views.append(
            NodeView(
                key=address,
                address=address,
                in_spec=False,
                spec_role=None,
                observation=obs,
                line=None,
                gaps=view_gaps(address, address, NodeRole.DATABASE, obs),
            )
        )

    master, problem, contradictions = accept_master(masters, views)

    reference: str | None = None
    connected: frozenset[str] = frozenset()
    if master is not None:
        mv = next(v for v in views if same_address(v.address, master))
        assert mv.status is not None
        reference = mv.key
        lines = {normalize_address(m.address): m for m in mv.status.members}
        connected = frozenset(k for k, m in lines.items() if m.connected)
        views = [
            NodeView(
                key=v.key,
                address=v.address,
                in_spec=v.in_spec,
                spec_role=v.spec_role,
                observation=v.observation,
                line=lines.get(normalize_address(v.address)),
                gaps=v.gaps,
            )
            for v in views
        ]
    return ClusterView(
        nodes=tuple(views),
        masters=tuple(masters),
        master=master,
        master_problem=problem,
        contradictions=tuple(contradictions),
        reference=reference,
        membership=membership,
        connected=connected,
    )
