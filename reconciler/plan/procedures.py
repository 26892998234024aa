"""Building blocks of a plan: step drafts, the projected cluster state, multi-step procedures.

Pure. :class:`PlanContext` holds what the planner has decided so far and *projects* the
cluster forward through its own steps (who is master, who is a member, which interface,
certificate names and files each node has), so that every later decision is made
against the state the earlier steps leave. The procedures:

* :meth:`PlanContext.prepare` — a node's uploads, `localnode`, `certs` (only while it is
  not clustered);
* :func:`rejoin` — rotation of a replica's (or a client's) interface or certificates:
  `remove`, [uploads], [`localnode`], [`certs`], `join <master>` (`connect` for clients);
* :func:`master_move` — assumption A4: `remove` every other replica, then the master,
  each followed by its preparation; the removed nodes rejoin in the joins phase;
* :func:`schema_repair` — A6: `clear error` (when in error), `upgrade_schema`;
* :func:`remove_extra` — `remove` on a member the spec does not list.

The majority guard :meth:`PlanContext.remove_keeps_majority` is applied to every
`remove`, however the node's role was inferred, against the deduplicated membership.
A node whose interface or certificate lines were not shown has no value in the
projection (``unknown``): nothing is planned from it, and it never counts as drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.common.addresses import normalize_address
from reconciler.observe.snapshot_model import Observed
from reconciler.observe.status_evidence import certificates_gap, interface_gap
from reconciler.observe.status_model import ClusterStatus, CommandResult
from reconciler.plan.cluster_view import ClusterView, NodeView
from reconciler.plan.model import Action, Blocked, Upload
from reconciler.spec.local_file import LocalFile
from reconciler.spec.model import ClusterSpec, NodeRole, remote_name

REJOIN = "rejoin"
MASTER_MOVE = "master-move"
SCHEMA_REPAIR = "schema-repair"
REMOVE_EXTRA = "remove-extra"

ALL = "*"  # node wildcard in `touches`: the fact changes on every node
_MEMBERSHIP_KEYS = ("state", "role", "master", "sync", "in_progress", "error")

CertNames = tuple[str | None, str | None, str | None, str | None, str | None]
Pair = tuple[str, str]


def _last_command_was(status: ClusterStatus, command: str, result: CommandResult) -> bool:
    last = status.last_command
    return (
        last is not None
        and last.command is not None
        and " ".join(last.command.split()) == command
        and last.result is result
    )


def schema_repair_pending(status: ClusterStatus) -> bool:
    """A6: the node shows a schema error, or its last `upgrade_schema` failed."""
    if status.error is not None and "schema" in status.error.lower():
        return True
    return _last_command_was(status, "database cluster upgrade_schema", CommandResult.FAILED)


def left_by_remove(status: ClusterStatus) -> bool:
    """The node's last command was a successful `remove`: joining it again is a rejoin."""
    return _last_command_was(status, "database cluster remove", CommandResult.SUCCESS)


@dataclass(frozen=True)
class Draft:
    """A step before ids and depends_on are assigned (see planner.finalize)."""

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


@dataclass
class PlanContext:
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
        client = (cs.client.key, cs.client.cert, cs.ca)
        if not self.is_db(key):
            return client
        if cs.server is None:
            return None
        return (cs.server.key, cs.server.cert, *client)

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

    def remove_keeps_majority(self, address: str) -> bool:
        """After removing `address`, the connected members stay more than half of the rest."""
        norm = normalize_address(address)
        rest = [m for m in self.members if normalize_address(m) != norm]
        up = [m for m in rest if normalize_address(m) in self.connected]
        return 2 * len(up) > len(rest)

    def block(self, node: str | None, reason: str) -> None:
        entry = Blocked(node=node, reason=reason)
        if entry not in self.blocked:
            self.blocked.append(entry)

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    # ----- step builders (each updates the projection) -----
    def _base(self, key: str) -> tuple[Pair, ...]:
        return ((key, "reachable"), (key, "in_progress"))

    def add_upload(self, key: str, path: str, lf: LocalFile, procedure: str | None) -> None:
        fact = f"file:{lf.remote_name}"
        listing = self.files.get(key)
        what = "missing" if listing is None or lf.remote_name not in listing else "different"
        self.steps.append(
            Draft(
                node=key,
                action=Action.UPLOAD,
                command=None,
                reason=f"{lf.remote_name} on {key} is {what}; the spec names {path}",
                expect=f"{lf.remote_name} in the SFTP root of {key} has sha256 {lf.sha256}",
                relies=(*self._base(key), (key, fact)),
                touches=((key, fact),),
                procedure=procedure,
                upload=Upload(
                    local_path=lf.local_path, remote_name=lf.remote_name, sha256=lf.sha256
                ),
            )
        )
        self.files[key] = {**(listing or {}), lf.remote_name: lf.sha256}

    def add_localnode(self, key: str, procedure: str | None) -> None:
        iface = self.spec.interface
        self.steps.append(
            Draft(
                node=key,
                action=Action.LOCALNODE,
                command=f"database cluster localnode {iface}",
                reason=f"{key} clusters on interface {self.interface.get(key) or 'none'}, "
                f"the spec says {iface}",
                expect=f"Interface : {iface}",
                relies=(*self._base(key), (key, "state"), (key, "interface")),
                touches=((key, "interface"),),
                procedure=procedure,
            )
        )
        self.interface[key] = iface

    def add_certs(self, key: str, wanted: CertNames, procedure: str | None) -> None:
        names = [n for n in wanted if n is not None]
        files = tuple((key, f"file:{n}") for n in names) if self.files.get(key) is not None else ()
        self.steps.append(
            Draft(
                node=key,
                action=Action.CERTS,
                command="database cluster certs " + " ".join(names),
                reason=f"{key}'s certificate names differ from the spec",
                expect="Certificates show " + ", ".join(names),
                relies=(*self._base(key), (key, "state"), (key, "certs"), *files),
                touches=((key, "certs"),),
                procedure=procedure,
            )
        )
        self.certs[key] = wanted

    def add_clear_error(self, key: str, text: str | None, procedure: str | None) -> None:
        self.steps.append(
            Draft(
                node=key,
                action=Action.CLEAR_ERROR,
                command="database cluster clear error",
                reason=f"{key} is in error ({text or 'no ERROR text'}); clear it so that "
                "commands can run",
                expect="Status is no longer Error",
                relies=(*self._base(key), (key, "state"), (key, "error")),
                touches=((key, "state"), (key, "error")),
                procedure=procedure,
            )
        )

    def add_upgrade_schema(self, key: str) -> None:
        mk = self.master_key()
        self.steps.append(
            Draft(
                node=key,
                action=Action.UPGRADE_SCHEMA,
                command="database cluster upgrade_schema",
                reason=f"the schema upgrade on {key} failed (A6): run it again",
                expect="Last command 'database cluster upgrade_schema' (Success), no ERROR",
                relies=(
                    *self._base(key),
                    (key, "state"),
                    (key, "error"),
                    (key, "master"),
                    *(((mk, "role"),) if mk is not None else ()),
                ),
                touches=((key, "state"), (key, "error"), (key, "in_progress")),
                procedure=SCHEMA_REPAIR,
            )
        )

    def add_initialize(self, key: str) -> None:
        others = [(n.name, k) for n in self.spec.database_nodes for k in ("state", "master")]
        self.steps.append(
            Draft(
                node=key,
                action=Action.INITIALIZE,
                command="database cluster initialize",
                reason=f"no database node belongs to a cluster; {key} is the intended master",
                expect=f"{key} is the master of a new one-member cluster",
                relies=(
                    *self._base(key),
                    (key, "interface"),
                    (key, "certs"),
                    *others,
                ),
                touches=tuple((key, k) for k in _MEMBERSHIP_KEYS),
            )
        )
        address = self.node_view(key).address
        self.clustered[key] = True
        self.master = address
        self.members = [address]
        self.connected = {normalize_address(address)}

    def add_join(self, key: str, procedure: str | None, *, client: bool = False) -> None:
        target = self.master_address()
        mk = self.master_key()
        assert target is not None and mk is not None
        verb = "connect" if client else "join"
        what = "uses the cluster" if client else "is a replica, in sync"
        self.steps.append(
            Draft(
                node=key,
                action=Action.CONNECT if client else Action.JOIN,
                command=f"database cluster {verb} {target}",
                reason=(
                    f"{key} left the cluster by `remove` and rejoins; the master is {mk}"
                    if procedure == REJOIN
                    else f"{key} is in the spec but not in the cluster; the master is {mk}"
                ),
                expect=f"{key} {what} with master {target}",
                relies=(
                    *self._base(key),
                    (key, "state"),
                    (key, "role"),
                    (key, "interface"),
                    (key, "certs"),
                    (mk, "role"),
                ),
                touches=tuple((key, k) for k in _MEMBERSHIP_KEYS),
                procedure=procedure,
            )
        )
        self.clustered[key] = True
        if not client:
            self.add_member(self.node_view(key).address)

    def add_remove(
        self,
        key: str,
        procedure: str,
        reason: str,
        expect: str,
        because: tuple[Pair, ...] = (),
    ) -> None:
        """``because``: the facts that are the step's *reason* (beside the role, master and
        sync it needs): when one has changed by the time it would run, the step is not
        run but re-planned (another apply may have dealt with it)."""
        nv = self.node_view(key)
        address = nv.address
        was_master = self.master is not None and normalize_address(self.master) == (
            normalize_address(address)
        )
        member_facts = []
        for m in self.members:
            mv = self.view.by_address(m)
            member_facts.append((mv.key if mv is not None else m, "sync"))
        touches: tuple[Pair, ...] = tuple((key, k) for k in _MEMBERSHIP_KEYS)
        if was_master:
            touches += ((ALL, "role"), (ALL, "master"), (ALL, "sync"))
        self.steps.append(
            Draft(
                node=key,
                action=Action.REMOVE,
                command="database cluster remove",
                reason=reason,
                expect=expect,
                relies=(
                    *self._base(key),
                    (key, "role"),
                    (key, "master"),
                    *member_facts,
                    *because,
                ),
                touches=touches,
                destructive=True,
                confirm=True,
                procedure=procedure,
            )
        )
        self.clustered[key] = False
        norm = normalize_address(address)
        self.members = [m for m in self.members if normalize_address(m) != norm]
        self.connected.discard(norm)
        if nv.in_spec:
            self.rejoining.add(key)

    def prepare(self, key: str, procedure: str | None, *, with_uploads: bool = True) -> bool:
        """Uploads, `localnode`, `certs` for a node that is not clustered. False if it cannot be.

        A node whose interface or certificate lines were not shown is not prepared (an
        unknown value is no drift): it is held back with what is unknown.
        """
        wanted = self.wanted_certs(key)
        if wanted is None:
            self.block(key, f"{key} is a database node but the spec gives no server certificate")
            return False
        if key in self.unknown and not (self.interface_known(key) and self.certs_known(key)):
            self.block(key, f"{key}: " + "; ".join(self.unknown[key]) + ": nothing is planned")
            return False
        if with_uploads:
            for path, lf in self.uploads_needed(key):
                self.add_upload(key, path, lf, procedure)
        if self.interface.get(key) != self.spec.interface:
            self.add_localnode(key, procedure)
        if self.certs.get(key) != wanted:
            self.add_certs(key, wanted, procedure)
        return True

    def procedure_for(self, key: str) -> str | None:
        return REJOIN if key in self.rejoining else None


def schema_repair(ctx: PlanContext, nv: NodeView) -> None:
    """A6 on one node: `clear error` when the node shows Error, then `upgrade_schema`."""
    st = nv.status
    assert st is not None
    if st.error is not None or st.state.value == "error":
        ctx.add_clear_error(nv.key, st.error, SCHEMA_REPAIR)
    ctx.add_upgrade_schema(nv.key)


def rejoin(ctx: PlanContext, key: str, why: list[str], *, client: bool = False) -> None:
    """Rotation of a replica's (or client's) interface/certificates: remove, prepare, join."""
    files = tuple((key, f"file:{lf.remote_name}") for _, lf in ctx.uploads_needed(key))
    ctx.add_remove(
        key,
        REJOIN,
        reason=f"{key} must leave the cluster to change: {'; '.join(why)}",
        expect=f"{key} is not clustered; its interface and certificate names are kept",
        because=((key, "interface"), (key, "certs"), *files),
    )
    ctx.prepare(key, REJOIN)
    ctx.add_join(key, REJOIN, client=client)


def master_move(ctx: PlanContext, master: NodeView, target: NodeView) -> None:
    """A4: remove every other member (replicas first), then the master; T is elected.

    Each removed spec node is prepared right after its `remove` (a later re-plan does the
    same in its preparation phase); they rejoin the new master in the joins phase.
    """
    for address in list(ctx.members):
        nv = ctx.view.by_address(address)
        assert nv is not None
        if nv.key in (master.key, target.key):
            continue
        gone = "" if nv.in_spec else " for good (the spec does not list it)"
        _clear_extra_error(ctx, nv, MASTER_MOVE)
        ctx.add_remove(
            nv.key,
            MASTER_MOVE,
            reason=f"master move to {target.key} (A4): {nv.key} leaves{gone} so that only "
            f"{master.key} and {target.key} remain",
            expect=f"{nv.key} is not clustered; {master.key} is still master",
            because=((master.key, "role"), (target.key, "sync")),
        )
        if nv.in_spec:
            ctx.prepare(nv.key, REJOIN)
    _clear_extra_error(ctx, master, MASTER_MOVE)
    ctx.add_remove(
        master.key,
        MASTER_MOVE,
        reason=f"master move to {target.key} (A4): the master leaves last; {target.key} "
        "receives all of its WAL and is elected",
        expect=f"{target.key} is the master; {master.key} is not clustered",
    )
    ctx.master = target.address
    if master.in_spec:
        ctx.prepare(master.key, REJOIN)


def _clear_extra_error(ctx: PlanContext, nv: NodeView, procedure: str) -> None:
    """A member the spec does not list gets no repair; an error is only cleared so it can leave."""
    st = nv.status
    if not nv.in_spec and st is not None and (st.error is not None or st.state.value == "error"):
        ctx.add_clear_error(nv.key, st.error, procedure)


def remove_extra(ctx: PlanContext, nv: NodeView) -> None:
    _clear_extra_error(ctx, nv, REMOVE_EXTRA)
    ctx.add_remove(
        nv.key,
        REMOVE_EXTRA,
        reason=f"{nv.key} is a cluster member the spec does not list (policy.allow_remove)",
        expect=f"{nv.key} is no longer a member",
    )
