"""A pure model of a CMS database cluster, for property tests of the planner.

Implements the assumptions A1-A9 of ``docs/assumptions.md`` and the status contract of
``docs/status-format.md`` at the level the planner sees: one cluster, per node its
configured interface, certificate names, uploaded files, whether it is clustered, its
error, a command in progress started elsewhere, whether it is up (reachable over SSH and
by its peers — no partitions), replication sync and WAL position.

* :func:`settle` applies the majority rule and the election (A1, A2) after every change;
* :func:`observe` prints what every node's `database cluster status` would show, as
  :class:`ClusterStatus` models (the master/slave or primary/replica wording per node);
* :func:`apply_step` runs one plan step and returns the new world, or raises
  :class:`StepRefused` where the MMP would answer ``FAILURE`` (and :class:`UnsafeStep`
  for a step that would create a second cluster).

Besides the documented behaviour, the model fixes one more assumption the planner relies
on: `clear error` clears the `Status : Error` and the `ERROR` line but does not change
`Last command` (so a failed `upgrade_schema` still shows as failed until it is re-run).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from reconciler.common.addresses import normalize_address
from reconciler.common.majority import has_majority
from reconciler.observe.snapshot_model import NodeObservation, Observed
from reconciler.observe.status_model import (
    EVERY_LINE,
    Certificates,
    ClusterState,
    ClusterStatus,
    CommandResult,
    LastCommand,
    Line,
    Member,
    MemberRole,
    SyncState,
)
from reconciler.plan.model import Action, Step

CertNames = tuple[str | None, str | None, str | None, str | None, str | None]
NO_CERTS: CertNames = (None, None, None, None, None)
SCHEMA_ERROR = "Couldn't upgrade the schema"
_RESULT_TEXT = {
    CommandResult.SUCCESS: "Success",
    CommandResult.FAILED: "Failed",
    CommandResult.IN_PROGRESS: "In progress",
    CommandResult.OTHER: "?",
}


class StepRefused(Exception):
    """The MMP would refuse the step (`FAILURE: ...`): the planner planned something invalid."""


class UnsafeStep(StepRefused):
    """The step would break the cluster (e.g. initialize a second cluster)."""


@dataclass(frozen=True)
class SimNode:
    key: str  # observation key: spec name, or the address for a node the spec does not list
    address: str
    database: bool = True  # False: a Call Bridge that only connects
    up: bool = True
    interface: str | None = None
    certs: CertNames = NO_CERTS
    files: tuple[tuple[str, str], ...] | None = None  # (name, sha256); None = not listed
    clustered: bool = False  # a database member, or a connected client
    in_sync: bool = True
    error: str | None = None
    schema_pending: bool = False
    running: str | None = None  # a command in progress (started elsewhere)
    last_command: str | None = None
    last_result: CommandResult = CommandResult.SUCCESS
    wal: int = 0  # a member's WAL position; else that of the cluster data its database kept (A3)
    set_aside: int = 0  # the `wal` `join` set aside: where a replica's `remove` goes back (A3)
    wording: str = "master"  # "master" (Master/Slave) or "primary" (Primary/Replica)

    def file_map(self) -> dict[str, str]:
        return dict(self.files or ())


@dataclass(frozen=True)
class World:
    nodes: tuple[SimNode, ...]
    membership: tuple[str, ...] = ()  # addresses of the database members
    master: str | None = None

    def node(self, key: str) -> SimNode:
        for n in self.nodes:
            if n.key == key or normalize_address(n.address) == normalize_address(key):
                return n
        raise KeyError(key)

    def with_node(self, node: SimNode) -> World:
        return replace(self, nodes=tuple(node if n.key == node.key else n for n in self.nodes))

    def members_up(self) -> list[str]:
        return [a for a in self.membership if self.node(a).up]

    @property
    def has_majority(self) -> bool:
        return has_majority(len(self.members_up()), len(self.membership))


def settle(world: World) -> World:
    """A1/A2: the master stays while it sees a majority; else the most advanced up member wins."""
    if not world.membership or not world.has_majority:
        return replace(world, master=None)
    if world.master is not None and world.master in world.members_up():
        return world
    up = world.members_up()
    winner = sorted(up, key=lambda a: (-world.node(a).wal, a))[0]
    return replace(world, master=winner)


# ----- observation -----
def _member(world: World, address: str, me: str | None, wording: str) -> Member:
    n = world.node(address)
    master_word, replica_word = (
        ("Master", "Slave") if wording == "master" else ("Primary", "Replica")
    )
    if not n.up:
        return Member(
            address=address,
            is_me=address == me,
            connected=False,
            role=MemberRole.REPLICA if address != world.master else MemberRole.MASTER,
            sync=SyncState.UNKNOWN,
            raw="Disconnected",
        )
    if address == world.master:
        return Member(
            address=address,
            is_me=address == me,
            connected=True,
            role=MemberRole.MASTER,
            sync=SyncState.UNKNOWN,
            raw=f"Connected {master_word}",
        )
    in_sync = world.master is not None and n.in_sync
    sync = SyncState.IN_SYNC if in_sync else SyncState.SYNCING
    if world.master is None:
        sync = SyncState.NO_MASTER  # a bare replica with no master to be in sync with
    return Member(
        address=address,
        is_me=address == me,
        connected=True,
        role=MemberRole.REPLICA,
        sync=sync,
        raw=f"Connected {replica_word}" + (" ( In Sync )" if in_sync else ""),
    )


def node_status(world: World, node: SimNode) -> ClusterStatus:
    """What `database cluster status` prints on one (up) node."""
    member = node.database and node.clustered
    members: tuple[Member, ...] = ()
    if node.clustered:
        me = node.address if member else None
        members = tuple(_member(world, a, me, node.wording) for a in world.membership)
    if node.error is not None:
        state = ClusterState.ERROR
    else:
        state = ClusterState.ENABLED if node.clustered else ClusterState.DISABLED
    last = LastCommand(command=None, result=CommandResult.OTHER, raw="none")
    if node.running is not None:
        last = LastCommand(
            command=node.running,
            result=CommandResult.IN_PROGRESS,
            raw=f"'{node.running}' (In progress)",
        )
    elif node.last_command is not None:
        last = LastCommand(
            command=node.last_command,
            result=node.last_result,
            raw=f"'{node.last_command}' ({_RESULT_TEXT[node.last_result]})",
        )
    c = node.certs
    in_use = world.master if node.clustered else None
    if in_use is None and member:
        in_use = node.address  # the minority side names itself (facts, FAQ 238)
    return ClusterStatus(
        state=state,
        state_raw=state.value.capitalize(),
        error=node.error,
        members=members,
        node_in_use=in_use,
        interface=node.interface,
        certificates=Certificates(
            server_key=c[0], server_cert=c[1], client_key=c[2], client_cert=c[3], ca_cert=c[4]
        ),
        last_command=last,
        wording=node.wording,
        shown=EVERY_LINE if node.error is not None else EVERY_LINE - {Line.ERROR},
    )


def observe(world: World) -> Observed:
    nodes: dict[str, NodeObservation] = {}
    for n in world.nodes:
        if not n.up:
            nodes[n.key] = NodeObservation(unreachable="connection refused (simulated)")
        else:
            files = dict(n.files) if n.files is not None else None
            nodes[n.key] = NodeObservation(status=node_status(world, n), files=files)
    return Observed(nodes=nodes)


# ----- steps -----
def _done(node: SimNode, command: str) -> SimNode:
    return replace(node, last_command=command, last_result=CommandResult.SUCCESS)


def _arg(step: Step) -> str:
    assert step.command is not None
    return step.command.split()[-1]


def apply_step(world: World, step: Step) -> World:
    """Run one step; the new world, already settled (A1/A2)."""
    try:
        node = world.node(step.node)
    except KeyError:
        raise StepRefused(f"{step.id}: no node {step.node}") from None
    if not node.up:
        raise StepRefused(f"{step.id}: {node.key} is unreachable")
    if node.running is not None:
        raise StepRefused(f"{step.id}: another database cluster command is in progress")
    if node.error is not None and step.action not in (
        Action.CLEAR_ERROR,
        Action.UPLOAD,
        Action.BACKUP,
    ):
        raise StepRefused(f"{step.id}: {node.key} is in error; clear it first")
    handler = _HANDLERS[step.action]
    return settle(handler(world, node, step))


def _upload(world: World, node: SimNode, step: Step) -> World:
    assert step.upload is not None
    files = node.file_map()
    files[step.upload.remote_name] = step.upload.sha256
    return world.with_node(replace(node, files=tuple(sorted(files.items()))))


def _backup(world: World, node: SimNode, step: Step) -> World:
    """`backup snapshot` reads the node's database and changes nothing the planner sees."""
    return world


def _localnode(world: World, node: SimNode, step: Step) -> World:
    if node.clustered:
        raise StepRefused(f"{step.id}: {node.key} is clustered; its interface cannot change")
    return world.with_node(replace(node, interface=_arg(step)))


def _certs(world: World, node: SimNode, step: Step) -> World:
    if node.clustered:
        raise StepRefused(f"{step.id}: {node.key} is clustered; its certificates cannot change")
    assert step.command is not None
    names = step.command.split()[3:]
    if len(names) not in (3, 5) or (node.database and len(names) != 5):
        raise StepRefused(f"{step.id}: usage: database cluster certs ...")
    if node.files is not None:
        missing = [n for n in names if n not in node.file_map()]
        if missing:
            raise StepRefused(f"{step.id}: files not found: {missing}")
    certs: CertNames = (
        (names[0], names[1], names[2], names[3], names[4])
        if len(names) == 5
        else (None, None, names[0], names[1], names[2])
    )
    return world.with_node(replace(node, certs=certs))


def _clear_error(world: World, node: SimNode, step: Step) -> World:
    if node.error is None:
        raise StepRefused(f"{step.id}: {node.key} is not in error")
    return world.with_node(replace(node, error=None))


def _upgrade_schema(world: World, node: SimNode, step: Step) -> World:
    if not (node.database and node.clustered) or world.master is None:
        raise StepRefused(f"{step.id}: {node.key} has no master to upgrade the schema with")
    if not world.node(world.master).up:
        raise StepRefused(f"{step.id}: the master's port 5432 cannot be reached")
    return world.with_node(
        replace(_done(node, "database cluster upgrade_schema"), schema_pending=False)
    )


def _configured(node: SimNode) -> bool:
    needed = node.certs if node.database else node.certs[2:]
    return node.interface is not None and all(c is not None for c in needed)


def _initialize(world: World, node: SimNode, step: Step) -> World:
    if node.clustered or not node.database or not _configured(node):
        raise StepRefused(f"{step.id}: {node.key} cannot initialize")
    if world.membership:
        raise UnsafeStep(f"{step.id}: initialize on {node.key} creates a second cluster")
    # A3: its own database (`wal`: what a former master kept, else a fresh one) is the cluster
    updated = replace(_done(node, "database cluster initialize"), clustered=True, in_sync=True)
    return replace(world.with_node(updated), membership=(node.address,), master=node.address)


def _join(world: World, node: SimNode, step: Step) -> World:
    target = _arg(step)
    if node.clustered or not node.database or not _configured(node):
        raise StepRefused(f"{step.id}: {node.key} cannot join")
    master = world.master
    if master is None or normalize_address(master) != normalize_address(target):
        raise StepRefused(f"{step.id}: {target} is not the master")
    wal = world.node(master).wal
    joined = _done(node, f"database cluster join {target}")
    updated = replace(joined, clustered=True, in_sync=True, wal=wal, set_aside=node.wal)
    return replace(world.with_node(updated), membership=(*world.membership, node.address))


def _connect(world: World, node: SimNode, step: Step) -> World:
    target = _arg(step)
    if node.clustered or node.database or not _configured(node):
        raise StepRefused(f"{step.id}: {node.key} cannot connect")
    if not any(normalize_address(a) == normalize_address(target) for a in world.members_up()):
        raise StepRefused(f"{step.id}: {target} is not a reachable member")
    return world.with_node(
        replace(_done(node, f"database cluster connect {target}"), clustered=True)
    )


def _remove(world: World, node: SimNode, step: Step) -> World:
    if not node.clustered:
        raise StepRefused(f"{step.id}: {node.key} is not clustered")
    left = replace(_done(node, "database cluster remove"), clustered=False, in_sync=True)
    if not node.database:
        return world.with_node(left)
    membership = tuple(a for a in world.membership if a != node.address)
    if world.master != node.address:  # A3: a replica goes back to its pre-join database
        left = replace(left, wal=node.set_aside, set_aside=0)
    out = replace(world.with_node(left), membership=membership)
    if world.master == node.address:
        # A3: every connected replica receives all of the master's WAL, then A2 elects; the
        # former master keeps the cluster's data (its `wal`), which `initialize` would reuse.
        for a in out.members_up():
            out = out.with_node(replace(out.node(a), wal=node.wal))
        out = replace(out, master=None)
    return out


_HANDLERS: dict[Action, Callable[[World, SimNode, Step], World]] = {
    Action.UPLOAD: _upload,
    Action.BACKUP: _backup,
    Action.LOCALNODE: _localnode,
    Action.CERTS: _certs,
    Action.CLEAR_ERROR: _clear_error,
    Action.UPGRADE_SCHEMA: _upgrade_schema,
    Action.INITIALIZE: _initialize,
    Action.JOIN: _join,
    Action.CONNECT: _connect,
    Action.REMOVE: _remove,
}
