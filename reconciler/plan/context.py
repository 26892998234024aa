"""The planner's bookkeeping: what it has decided so far, and the cluster projected through it.

Pure. :class:`PlanContext` holds the plan being built — its step drafts (:class:`Draft`),
drift, warnings and blocked entries — and the holds set by :mod:`reconciler.plan.holds`:
``held`` nodes get no steps at all, ``cluster_hold`` says why every cluster-changing step is
held back, ``destructive_hold`` why every `remove` (and the master move) is. It also
*projects* the cluster forward through its own steps (who is master, who is a member, which
interface, certificate names and files each node has), so that every later decision is made
against the state the earlier steps leave; the builders of :mod:`reconciler.plan.step_builders`
move the projection with each step they write.

A node whose interface or certificate lines were not shown has no value in the projection
(``unknown``): nothing is planned from it, and it never counts as drift. The majority guard
:meth:`PlanContext.remove_keeps_majority` is applied to every `remove`, however the node's
role was inferred, against the deduplicated membership.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.common.addresses import normalize_address
from reconciler.common.majority import has_majority
from reconciler.observe.snapshot_model import Observed
from reconciler.observe.status_evidence import certificates_gap, interface_gap
from reconciler.plan.cluster_view import ClusterView, NodeView
from reconciler.plan.model import Action, Blocked, Upload
from reconciler.plan.procedures import REJOIN, left_by_remove
from reconciler.spec.local_file import LocalFile
from reconciler.spec.model import ClusterSpec, NodeRole, remote_name

# Marks a blocked entry whose work becomes possible once this plan has run (deferred work):
# re-planning after part of such a plan may add steps (see docs/planner.md).
LATER_RUN = "planned on a later run"
ALL = "*"  # node wildcard in `touches`: the fact changes on every node

CertNames = tuple[str | None, str | None, str | None, str | None, str | None]
Pair = tuple[str, str]


@dataclass(frozen=True)
class Draft:
    """A step before its id and depends_on are set (:func:`reconciler.plan.planner.finalize`)."""

    node: str
    action: Action
    command: str | None
    reason: str
    expect: str
    relies: tuple[Pair, ...]  # (node, fact key) pairs the step relies on
    touches: tuple[Pair, ...]  # (node | ALL, fact key) pairs the step changes
    destructive: bool = False
    confirm: bool = False
    procedure: str | None = None
    upload: Upload | None = None
    backup: str | None = None


@dataclass
class PlanContext:
    """The plan being built, its holds, and the cluster projected through its steps."""

    spec: ClusterSpec
    observed: Observed
    view: ClusterView
    local_files: Mapping[str, LocalFile] | None
    steps: list[Draft] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)
    held: set[str] = field(default_factory=set)  # nodes that get no steps at all
    cluster_hold: str | None = None  # why cluster-changing steps are held back
    destructive_hold: str | None = None  # why `remove` (and the master move) is held back
    unknown: dict[str, list[str]] = field(default_factory=dict)  # node -> unknown facts
    # projection of the cluster through the steps planned so far
    master: str | None = None
    members: list[str] = field(default_factory=list)  # addresses as printed
    connected: set[str] = field(default_factory=set)  # normalised addresses
    clustered: dict[str, bool] = field(default_factory=dict)
    interface: dict[str, str | None] = field(default_factory=dict)
    certs: dict[str, CertNames] = field(default_factory=dict)
    files: dict[str, dict[str, str] | None] = field(default_factory=dict)
    rejoining: set[str] = field(default_factory=set)  # left by `remove` (observed or planned)

    @classmethod
    def start(
        cls,
        spec: ClusterSpec,
        observed: Observed,
        view: ClusterView,
        local_files: Mapping[str, LocalFile] | None,
    ) -> PlanContext:
        ctx = cls(spec=spec, observed=observed, view=view, local_files=local_files)
        ctx.master = view.master
        ctx.members = list(view.membership)  # deduplicated by normalised address
        ctx.connected = set(view.connected)
        for nv in view.nodes:
            st = nv.status
            ctx.clustered[nv.key] = nv.clustered
            ctx.files[nv.key] = nv.observation.files if nv.reachable else None
            if st is None:
                continue
            gaps = [g for g in (interface_gap(st), certificates_gap(st)) if g is not None]
            if gaps:
                ctx.unknown[nv.key] = gaps
            if interface_gap(st) is None:
                ctx.interface[nv.key] = st.interface
            c = st.certificates
            if certificates_gap(st) is None:
                ctx.certs[nv.key] = (
                    c.server_key,
                    c.server_cert,
                    c.client_key,
                    c.client_cert,
                    c.ca_cert,
                )
            if left_by_remove(st) and nv.unclustered:
                ctx.rejoining.add(nv.key)
        return ctx

    # ----- what the spec wants -----
    def node_view(self, key: str) -> NodeView:
        nv = self.view.node(key)
        if nv is None:
            raise KeyError(key)
        return nv

    def is_db(self, key: str) -> bool:
        return self.node_view(key).spec_role is not NodeRole.CLIENT

    def spec_paths(self, key: str) -> tuple[str, ...] | None:
        """Certificate files in `certs` argument order; None: database node without server pair."""
        cs = self.spec.certificates_for(key)
        client = (cs.client.key_ref, cs.client.cert, cs.ca)
        if not self.is_db(key):
            return client
        if cs.server is None:
            return None
        return (cs.server.key_ref, cs.server.cert, *client)

    def keys_not_on_node(self, key: str) -> list[str]:
        """What is wrong with the keys that live on the node (``key_on_node``): each one
        the node's file listing lacks, or that the listing was not seen."""
        cs = self.spec.certificates_for(key)
        pairs = [cs.client] if not self.is_db(key) or cs.server is None else [cs.server, cs.client]
        names = [p.key_on_node for p in pairs if p.key_on_node is not None]
        listing = self.files.get(key)
        if names and listing is None:
            return [f"its file listing was not seen, so key(s) {', '.join(names)} are unknown"]
        return [
            f"key {n} is not on the node (keys named by key_on_node are never uploaded: make "
            f"it there with `pki csr`)"
            for n in names
            if listing is not None and n not in listing
        ]

    def remote_name(self, path: str) -> str:
        if self.local_files is not None and path in self.local_files:
            return self.local_files[path].remote_name
        return remote_name(path)

    def wanted_certs(self, key: str) -> CertNames | None:
        paths = self.spec_paths(key)
        if paths is None:
            return None
        names = tuple(self.remote_name(p) for p in paths)
        if len(names) == 3:
            return (None, None, names[0], names[1], names[2])
        return (names[0], names[1], names[2], names[3], names[4])

    def uploads_needed(self, key: str, *, absent_only: bool = False) -> list[tuple[str, LocalFile]]:
        """(spec path, local file) pairs to upload; none without local files or a listing."""
        paths = self.spec_paths(key)
        listing = self.files.get(key)
        if self.local_files is None or listing is None or paths is None:
            return []
        out: list[tuple[str, LocalFile]] = []
        seen: set[str] = set()
        for path in paths:
            lf = self.local_files.get(path)
            if lf is None or lf.remote_name in seen:
                continue
            seen.add(lf.remote_name)
            have = listing.get(lf.remote_name)
            if have == lf.sha256 or (absent_only and have is not None):
                continue
            out.append((path, lf))
        return out

    def interface_known(self, key: str) -> bool:
        return key in self.interface

    def certs_known(self, key: str) -> bool:
        return key in self.certs

    def configured(self, key: str) -> bool:
        """The projected interface and certificate names are known and the spec's."""
        wanted = self.wanted_certs(key)
        return (
            wanted is not None
            and self.certs_known(key)
            and self.certs[key] == wanted
            and self.interface_known(key)
            and self.interface[key] == self.spec.interface
        )

    def needs_rotation(self, key: str) -> list[str]:
        """Why a clustered node's interface or certificates must change (empty: they need not).

        Only shown values count: an unknown interface or certificate name is no reason.
        """
        why: list[str] = []
        if self.interface_known(key) and self.interface[key] != self.spec.interface:
            why.append(f"interface {self.interface.get(key) or 'none'} -> {self.spec.interface}")
        wanted = self.wanted_certs(key)
        if wanted is not None and self.certs_known(key) and self.certs[key] != wanted:
            why.append("certificate names differ from the spec")
        differing = [lf.remote_name for _, lf in self.uploads_needed(key) if self._present(key, lf)]
        if differing:
            why.append("certificate file content changed: " + ", ".join(differing))
        return why

    def _present(self, key: str, lf: LocalFile) -> bool:
        listing = self.files.get(key)
        return listing is not None and lf.remote_name in listing

    # ----- projection helpers -----
    def master_key(self) -> str | None:
        if self.master is None:
            return None
        nv = self.view.by_address(self.master)
        return nv.key if nv is not None else self.master

    def master_address(self) -> str | None:
        """The projected master's address as the spec writes it (what `join` targets)."""
        if self.master is None:
            return None
        nv = self.view.by_address(self.master)
        return nv.address if nv is not None else self.master

    def is_member(self, address: str) -> bool:
        wanted = normalize_address(address)
        return any(normalize_address(m) == wanted for m in self.members)

    def is_member_key(self, key: str) -> bool:
        nv = self.view.node(key)
        return nv is not None and self.is_member(nv.address)

    def add_member(self, address: str) -> None:
        if not self.is_member(address):
            self.members.append(address)
        self.connected.add(normalize_address(address))

    def member_problems(self, skip: tuple[str, ...]) -> list[str]:
        """Why the members other than ``skip`` may not all leave now (the master move and the
        rebuild take every member out): each must be observed, connected and in sync, and
        listed by the spec unless ``policy.allow_remove``."""
        problems: list[str] = []
        for address in self.members:
            nv = self.view.by_address(address)
            if nv is None:
                problems.append(f"member {address} is not known")
            elif nv.key in skip:
                continue
            elif nv.key in self.held or not nv.reachable:
                problems.append(f"{nv.key} cannot be observed")
            elif nv.sync != "in-sync":
                problems.append(f"{nv.key} is not connected and in sync (it shows {nv.sync})")
            elif not nv.in_spec and not self.spec.policy.allow_remove:
                problems.append(f"{nv.key} is not in the spec and policy.allow_remove is false")
        return problems

    def remove_keeps_majority(self, address: str) -> bool:
        """After removing `address`, the connected members stay more than half of the rest."""
        norm = normalize_address(address)
        rest = [m for m in self.members if normalize_address(m) != norm]
        up = [m for m in rest if normalize_address(m) in self.connected]
        return has_majority(len(up), len(rest))

    def block(self, node: str | None, reason: str) -> None:
        entry = Blocked(node=node, reason=reason)
        if entry not in self.blocked:
            self.blocked.append(entry)

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def procedure_for(self, key: str) -> str | None:
        """REJOIN for a node that left by `remove` (observed or planned), else None."""
        return REJOIN if key in self.rejoining else None
