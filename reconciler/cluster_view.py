"""The cluster-wide picture derived from every node's own `database cluster status`.

Pure: built from a :class:`ClusterSpec` and an :class:`Observed` snapshot, no I/O.

Each node prints only its own view. This module joins the views into one picture:

* **masters** – the distinct connected masters any reachable node reports (more than one
  means split brain);
* **reference view** – whose member list counts: the master's own status when it can be
  read, otherwise the first reachable node (spec order, database nodes before clients)
  that sees that master connected; with no master, no reference;
* **membership / connected** – the member addresses of the reference view and which of
  them it shows connected (with no reference: the union of all views, for reporting);
* **which spec node each member address is** – addresses compare after normalisation
  (IPv6 in compressed form, host names lower case, brackets and a trailing dot dropped);
* **extra members** – member addresses that are no spec database node. Their observation,
  when the observer could read them, is keyed by the member address in ``Observed.nodes``;
* per node: reachable, clustered, in progress, its role and its line in the reference view.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from reconciler.snapshot_model import NodeObservation, Observed
from reconciler.spec_model import ClusterSpec, NodeRole
from reconciler.status_model import ClusterState, ClusterStatus, Member, MemberRole, SyncState


def normalize_address(address: str) -> str:
    """Canonical form used to compare addresses (never shown to users)."""
    text = address.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return text.lower().rstrip(".")


def is_clustered(status: ClusterStatus) -> bool:
    """Belongs to or is connected to a cluster (an unknown state with members counts)."""
    if status.clustered:
        return True
    return status.state is ClusterState.UNKNOWN and bool(status.members)


def status_unreadable(status: ClusterStatus) -> bool:
    """The `Status` line is missing or unknown and nothing else shows membership."""
    return status.state is ClusterState.UNKNOWN and not status.members


def role_of(status: ClusterStatus) -> str:
    """The `role` fact: master | replica | client | none (| unknown for unknown text)."""
    if not is_clustered(status):
        return "none"
    me = status.me
    if me is None:
        return "client"
    if me.role is MemberRole.UNKNOWN:
        return "unknown"
    return me.role.value


def member_sync(member: Member) -> str:
    """A member as the reference shows it: master|in-sync|syncing|disconnected|unknown."""
    if not member.connected:
        return "disconnected"
    if member.role is MemberRole.MASTER:
        return "master"
    if member.sync is SyncState.IN_SYNC:
        return "in-sync"
    if member.sync is SyncState.SYNCING:
        return "syncing"
    return "unknown"


@dataclass(frozen=True)
class NodeView:
    key: str  # spec node name, or the member address for a member the spec does not list
    address: str  # spec address, or the member address as printed
    in_spec: bool
    spec_role: NodeRole | None  # None for a member the spec does not list
    observation: NodeObservation
    line: Member | None  # this node's line in the reference view

    @property
    def status(self) -> ClusterStatus | None:
        return self.observation.status if self.observation.reachable else None

    @property
    def reachable(self) -> bool:
        return self.observation.reachable

    @property
    def clustered(self) -> bool:
        return self.status is not None and is_clustered(self.status)

    @property
    def in_progress(self) -> bool:
        return self.status is not None and self.status.command_in_progress

    @property
    def role(self) -> str | None:
        return role_of(self.status) if self.status is not None else None

    @property
    def sync(self) -> str | None:
        return member_sync(self.line) if self.line is not None else None


@dataclass(frozen=True)
class ClusterView:
    nodes: tuple[NodeView, ...]  # spec order, then extra members in membership order
    masters: tuple[str, ...]  # distinct connected masters (addresses as printed)
    reference: str | None  # key of the node whose member list is the reference
    membership: tuple[str, ...]  # member addresses as printed
    connected: frozenset[str]  # normalised addresses shown connected by the reference

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
    def master(self) -> str | None:
        return self.masters[0] if len(self.masters) == 1 else None

    @property
    def master_node(self) -> NodeView | None:
        return self.by_address(self.master) if self.master is not None else None

    @property
    def extras(self) -> tuple[NodeView, ...]:
        return tuple(n for n in self.nodes if not n.in_spec)

    @property
    def any_clustered(self) -> bool:
        return any(n.clustered for n in self.nodes)

    def is_member(self, address: str) -> bool:
        wanted = normalize_address(address)
        return any(normalize_address(a) == wanted for a in self.membership)


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
    spec_obs = [(n, observed.get(n.name)) for n in spec.nodes]
    statuses = [(n.name, n.role, o.status) for n, o in spec_obs if o.reachable and o.status]
    # Statuses of members the spec does not list, when the observer could read them.
    spec_addresses = {normalize_address(n.address) for n in spec.nodes}
    spec_keys = {n.name for n in spec.nodes}
    for key, obs in observed.nodes.items():
        if key in spec_keys or normalize_address(key) in spec_addresses:
            continue
        if obs.reachable and obs.status is not None:
            statuses.append((key, NodeRole.DATABASE, obs.status))

    masters: list[str] = []
    for _, _, st in statuses:
        if is_clustered(st) and st.master is not None:
            addr = st.master.address
            if normalize_address(addr) not in {normalize_address(m) for m in masters}:
                masters.append(addr)

    reference: ClusterStatus | None = None
    reference_key: str | None = None
    if len(masters) == 1:
        wanted = normalize_address(masters[0])
        ordered = sorted(statuses, key=lambda s: s[1] is not NodeRole.DATABASE)
        for key, _, st in ordered:
            me = st.me
            if me is not None and normalize_address(me.address) == wanted:
                reference, reference_key = st, key
                break
        if reference is None:
            for key, _, st in ordered:
                if is_clustered(st) and st.master is not None:
                    reference, reference_key = st, key
                    break

    if reference is not None:
        membership = tuple(m.address for m in reference.members)
        connected = frozenset(
            normalize_address(m.address) for m in reference.members if m.connected
        )
        lines = {normalize_address(m.address): m for m in reference.members}
    else:
        seen: dict[str, str] = {}
        for _, _, st in statuses:
            if is_clustered(st):
                for m in st.members:
                    seen.setdefault(normalize_address(m.address), m.address)
        membership = tuple(seen.values())
        connected = frozenset()
        lines = {}

    views = [
        NodeView(
            key=n.name,
            address=n.address,
            in_spec=True,
            spec_role=n.role,
            observation=o,
            line=lines.get(normalize_address(n.address)),
        )
        for n, o in spec_obs
    ]
    for address in membership:
        norm = normalize_address(address)
        if norm in spec_addresses:
            continue
        views.append(
            NodeView(
                key=address,
                address=address,
                in_spec=False,
                spec_role=None,
                observation=_observation_for(observed, address),
                line=lines.get(norm),
            )
        )
    return ClusterView(
        nodes=tuple(views),
        masters=tuple(masters),
        reference=reference_key,
        membership=membership,
        connected=connected,
    )
