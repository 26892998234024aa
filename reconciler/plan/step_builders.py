"""The step builders: one function per kind of step, each writing its draft and its effect.

Pure. Every builder appends one :class:`~reconciler.plan.context.Draft` to the context —
command, reason, expected result, the facts it relies on and the facts it changes (which
become ``depends_on``, see :mod:`reconciler.plan.facts`) — and moves the projected cluster
of :class:`~reconciler.plan.context.PlanContext` as the step would: `localnode` sets the
interface, `join` adds a member, `remove` takes one away (and marks a spec node as
rejoining), `initialize` makes a one-member cluster. Builders decide nothing: whether a
step may be planned is decided by the phases that call them.
"""

from __future__ import annotations

from reconciler.common.addresses import normalize_address
from reconciler.plan.context import ALL, CertNames, Draft, Pair, PlanContext
from reconciler.plan.model import Action, Upload
from reconciler.plan.procedures import BACKUP, REJOINING, SCHEMA_REPAIR
from reconciler.spec.local_file import LocalFile

_MEMBERSHIP_KEYS = ("state", "role", "master", "sync", "in_progress", "error")


def _base(key: str) -> tuple[Pair, ...]:
    return ((key, "reachable"), (key, "in_progress"))


def add_upload(ctx: PlanContext, key: str, path: str, lf: LocalFile, procedure: str | None) -> None:
    fact = f"file:{lf.remote_name}"
    listing = ctx.files.get(key)
    what = "missing" if listing is None or lf.remote_name not in listing else "different"
    ctx.steps.append(
        Draft(
            node=key,
            action=Action.UPLOAD,
            command=None,
            reason=f"{lf.remote_name} on {key} is {what}; the spec names {path}",
            expect=f"{lf.remote_name} in the SFTP root of {key} has sha256 {lf.sha256}",
            relies=(*_base(key), (key, fact)),
            touches=((key, fact),),
            procedure=procedure,
            upload=Upload(local_path=lf.local_path, remote_name=lf.remote_name, sha256=lf.sha256),
        )
    )
    ctx.files[key] = {**(listing or {}), lf.remote_name: lf.sha256}


def add_localnode(ctx: PlanContext, key: str, procedure: str | None) -> None:
    iface = ctx.spec.interface
    ctx.steps.append(
        Draft(
            node=key,
            action=Action.LOCALNODE,
            command=f"database cluster localnode {iface}",
            reason=f"{key} clusters on interface {ctx.interface.get(key) or 'none'}, "
            f"the spec says {iface}",
            expect=f"Interface : {iface}",
            relies=(*_base(key), (key, "state"), (key, "interface")),
            touches=((key, "interface"),),
            procedure=procedure,
        )
    )
    ctx.interface[key] = iface


def add_certs(ctx: PlanContext, key: str, wanted: CertNames, procedure: str | None) -> None:
    names = [n for n in wanted if n is not None]
    files = tuple((key, f"file:{n}") for n in names) if ctx.files.get(key) is not None else ()
    ctx.steps.append(
        Draft(
            node=key,
            action=Action.CERTS,
            command="database cluster certs " + " ".join(names),
            reason=f"{key}'s certificate names differ from the spec",
            expect="Certificates show " + ", ".join(names),
            relies=(*_base(key), (key, "state"), (key, "certs"), *files),
            touches=((key, "certs"),),
            procedure=procedure,
        )
    )
    ctx.certs[key] = wanted


def add_clear_error(ctx: PlanContext, key: str, text: str | None, procedure: str | None) -> None:
    ctx.steps.append(
        Draft(
            node=key,
            action=Action.CLEAR_ERROR,
            command="database cluster clear error",
            reason=f"{key} is in error ({text or 'no ERROR text'}); clear it so that "
            "commands can run",
            expect="Status is no longer Error",
            relies=(*_base(key), (key, "state"), (key, "error")),
            touches=((key, "state"), (key, "error")),
            procedure=procedure,
        )
    )


def add_upgrade_schema(ctx: PlanContext, key: str) -> None:
    mk = ctx.master_key()
    ctx.steps.append(
        Draft(
            node=key,
            action=Action.UPGRADE_SCHEMA,
            command="database cluster upgrade_schema",
            reason=f"the schema upgrade on {key} failed (A6): run it again",
            expect="Last command 'database cluster upgrade_schema' (Success), no ERROR",
            relies=(
                *_base(key),
                (key, "state"),
                (key, "error"),
                (key, "master"),
                *(((mk, "role"),) if mk is not None else ()),
            ),
            touches=((key, "state"), (key, "error"), (key, "in_progress")),
            procedure=SCHEMA_REPAIR,
        )
    )


def add_initialize(
    ctx: PlanContext, key: str, *, reason: str | None = None, procedure: str | None = None
) -> None:
    others = [(n.name, k) for n in ctx.spec.database_nodes for k in ("state", "master")]
    ctx.steps.append(
        Draft(
            node=key,
            action=Action.INITIALIZE,
            command="database cluster initialize",
            reason=reason or f"no database node belongs to a cluster; {key} is the intended master",
            expect=f"{key} is the master of a new one-member cluster",
            relies=(
                *_base(key),
                (key, "interface"),
                (key, "certs"),
                *others,
            ),
            touches=tuple((key, k) for k in _MEMBERSHIP_KEYS),
            procedure=procedure,
        )
    )
    address = ctx.node_view(key).address
    ctx.clustered[key] = True
    ctx.master = address
    ctx.members = [address]
    ctx.connected = {normalize_address(address)}


def add_join(ctx: PlanContext, key: str, procedure: str | None, *, client: bool = False) -> None:
    target = ctx.master_address()
    mk = ctx.master_key()
    assert target is not None and mk is not None
    verb = "connect" if client else "join"
    what = "uses the cluster" if client else "is a replica, in sync"
    ctx.steps.append(
        Draft(
            node=key,
            action=Action.CONNECT if client else Action.JOIN,
            command=f"database cluster {verb} {target}",
            reason=(
                f"{key} left the cluster by `remove` and rejoins; the master is {mk}"
                if procedure in REJOINING
                else f"{key} is in the spec but not in the cluster; the master is {mk}"
            ),
            expect=f"{key} {what} with master {target}",
            relies=(
                *_base(key),
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
    ctx.clustered[key] = True
    if not client:
        ctx.add_member(ctx.node_view(key).address)


def add_remove(
    ctx: PlanContext,
    key: str,
    procedure: str,
    reason: str,
    expect: str,
    because: tuple[Pair, ...] = (),
) -> None:
    """`remove` on ``key``. ``because``: the facts that are the step's *reason* (beside the
    role, master and sync it needs): when one has changed by the time it would run, the
    step is not run but re-planned (another apply may have dealt with it)."""
    nv = ctx.node_view(key)
    address = nv.address
    was_master = ctx.master is not None and normalize_address(ctx.master) == (
        normalize_address(address)
    )
    member_facts = []
    for m in ctx.members:
        mv = ctx.view.by_address(m)
        member_facts.append((mv.key if mv is not None else m, "sync"))
    touches: tuple[Pair, ...] = tuple((key, k) for k in _MEMBERSHIP_KEYS)
    if was_master:
        touches += ((ALL, "role"), (ALL, "master"), (ALL, "sync"))
    ctx.steps.append(
        Draft(
            node=key,
            action=Action.REMOVE,
            command="database cluster remove",
            reason=reason,
            expect=expect,
            relies=(
                *_base(key),
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
    ctx.clustered[key] = False
    norm = normalize_address(address)
    ctx.members = [m for m in ctx.members if normalize_address(m) != norm]
    ctx.connected.discard(norm)
    if nv.in_spec:
        ctx.rejoining.add(key)


def add_backup(ctx: PlanContext, key: str, name: str, reason: str) -> Draft:
    """`backup snapshot <name>` on ``key`` (its files are downloaded by the executor); the
    draft, for the caller to place (backups go before the steps they protect)."""
    return Draft(
        node=key,
        action=Action.BACKUP,
        command=f"backup snapshot {name}",
        reason=reason,
        expect=f"{name}.bak and {name}.json in {key}'s SFTP root, downloaded with their checksums",
        relies=_base(key),
        touches=(),
        procedure=BACKUP,
        backup=name,
    )
