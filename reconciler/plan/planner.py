"""The planner: ``plan(spec, observed) -> Plan``. Purely computational, no I/O, no side effects.

Rules and procedures are explained in ``docs/planner.md``; the semantics planned against are
``docs/assumptions.md`` (A1-A7).

Ordering invariants (every plan, in this order; within a phase, spec order):

1. **uploads** — files that differ or are missing on nodes that are not clustered, and files
   that are missing (never ones that differ: those are in use) on clustered nodes;
2. **preparation** of nodes that are not clustered: `clear error` (errors other than the
   schema error), `localnode`, `certs` — node by node;
3. **initialize** — only when no node belongs to a cluster or sees a master, and the
   reachable, unclustered database nodes are more than half of the spec's database nodes;
4. **schema repair** (A6) — the master first, then replicas;
5. **master move** (A4) — `remove` the other replicas one at a time, then the master, each
   followed by its own preparation;
6. **joins** of database nodes that are not clustered, spec order, to the master *after*
   the earlier steps;
7. **rotations** (the "rejoin" procedure), spec order: a clustered replica whose interface or
   certificates must change: `remove`, [uploads], [`localnode`], [`certs`], `join` — replicas
   only, never the master, and after the joins so that new members count for the majority;
8. **connects** of client nodes, spec order (rotation of a connected client the same way
   with `connect`);
9. **removes** of members the spec does not list (`policy.allow_remove`), replicas only.

Safety invariants: no `initialize` unless every reachable spec node shows the explicit
not-clustered layout (positive evidence, never the mere absence of members); no step at all
with two masters, with clustered nodes and no master, with a master whose own view cannot be
read whole, or with views that contradict it; no `localnode`/`certs` on a node not shown to be
unclustered; every `remove` leaves the connected members more than half of the remaining
(deduplicated) membership; the master is only removed by the master move; nothing on a node
that is unreachable, has a command in progress or whose view has a gap (a missing or garbled
line, or a `(me)` that is not its own address: see :mod:`reconciler.plan.cluster_view`); no
cluster-changing step (initialize, join, connect, remove, upgrade_schema) while any node has
a command in progress or a view with a gap; nothing planned from a value whose line was not
shown (an unknown interface or certificate is no drift); never more database members than
``policy.max_database_nodes``.

``depends_on`` of a step = the observed facts the step relies on, minus every fact an earlier
step of the same plan changes (see :mod:`reconciler.plan.facts`). So all ``depends_on`` of a saved
plan can be checked against a new observation at once, and the executor can check each
step's facts just before it runs.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.common.addresses import normalize_address
from reconciler.observe.snapshot_model import Observed
from reconciler.observe.status_model import ClusterState
from reconciler.plan.cluster_view import ClusterView, NodeView, build_view
from reconciler.plan.facts import facts_from_view
from reconciler.plan.model import Blocked, Plan, Step
from reconciler.plan.procedures import (
    ALL,
    Draft,
    PlanContext,
    master_move,
    rejoin,
    remove_extra,
    schema_repair,
    schema_repair_pending,
)
from reconciler.spec.local_file import LocalFile
from reconciler.spec.model import ClusterSpec, NodeRole

PORT_ADVICE = (
    "check that TCP port 5432 is open between the nodes and the master (capture with "
    "`pcap <interface>` and filter tcp.port==5432: no return traffic means a firewall)"
)
# Marks a blocked entry whose work becomes possible once this plan has run (deferred work):
# re-planning after part of such a plan may add steps (see docs/planner.md).
LATER_RUN = "planned on a later run"
HELD_BACK = (
    "Nothing is planned for it, nor anything cluster-changing until every view can be read whole"
)
NO_MASTER_ADVICE = (
    "no master: the cluster has lost its majority (A1). Bring members back so that more than "
    "half of the membership see each other; a master is then elected by itself. Never "
    "initialize a new cluster while members exist"
)


def plan(
    spec: ClusterSpec, observed: Observed, local_files: Mapping[str, LocalFile] | None = None
) -> Plan:
    """Plan the steps that bring the observed cluster to the spec (see the module docstring)."""
    view = build_view(spec, observed)
    ctx = PlanContext.start(spec, observed, view, local_files)
    _hold_unobservable(ctx)
    if len(view.masters) > 1:
        ctx.drift.append("two masters: " + ", ".join(_label(view, m) for m in view.masters))
        ctx.block(
            None,
            "split brain: more than one master ("
            + ", ".join(view.masters)
            + "). Nothing is planned: decide by hand which side keeps its data, run "
            "`database cluster remove` on the nodes of the other side, then plan again",
        )
        return _finish(ctx)
    if view.contradictions:
        ctx.drift.append("the nodes' views disagree about the master")
        ctx.block(
            None,
            "the views contradict each other: "
            + "; ".join(view.contradictions)
            + ". Nothing is planned: read `database cluster status` on each node, then plan "
            "again. Views that do not see each other usually mean a network problem: "
            + PORT_ADVICE,
        )
        return _finish(ctx)
    if view.master_problem is not None:
        ctx.drift.append("the master cannot be confirmed")
        ctx.block(None, f"{view.master_problem}; nothing is planned until it can be read whole")
        return _finish(ctx)
    if view.master is None and (view.any_clustered or view.membership):
        ctx.drift.append("the cluster has no master")
        _describe_minority(ctx)
        ctx.block(None, NO_MASTER_ADVICE)
        return _finish(ctx)
    unusable = [
        nv.key
        for nv in view.nodes
        if nv.observation.unreadable is not None or (nv.reachable and nv.gaps)
    ]
    if view.master is None and unusable:
        # No master is seen, but a view that cannot be read may hide a cluster (one with
        # no master, where nothing may be done): nothing at all is planned.
        ctx.drift.append("whether a cluster exists is unknown")
        ctx.block(
            None,
            "no master is seen, but "
            + ", ".join(unusable)
            + " cannot be read whole: whether a cluster exists is unknown, so nothing is "
            "planned (no `initialize`, no preparation) until every view can be read",
        )
        return _finish(ctx)
    _describe_drift(ctx)
    _describe_minority(ctx)
    _uploads(ctx)
    _prepare_unclustered(ctx)
    _initialize(ctx)
    _schema_repairs(ctx)
    _master_move(ctx)
    _joins(ctx)
    _rotations(ctx)
    _connects(ctx)
    _remove_extras(ctx)
    return _finish(ctx)


# ----- observation problems -----
def _label(view: ClusterView, address: str) -> str:
    return view.label(address)


def _hold_unobservable(ctx: PlanContext) -> None:
    for nv in ctx.view.nodes:
        if nv.observation.unreadable is not None:
            why = nv.observation.unreadable
            ctx.held.add(nv.key)
            ctx.cluster_hold = ctx.cluster_hold or f"the status of {nv.key} could not be read"
            ctx.drift.append(f"{nv.key}'s status could not be read ({why})")
            ctx.block(
                nv.key,
                f"{nv.key} answered but its status could not be read ({why}): nothing is "
                f"planned for it; {HELD_BACK}",
            )
            continue
        if not nv.reachable:
            why = nv.observation.why_not
            ctx.held.add(nv.key)
            ctx.drift.append(f"{nv.key} is unreachable ({why})")
            ctx.warn(f"{nv.key} is unreachable ({why}); its steps are held back until it answers")
            ctx.block(nv.key, f"{nv.key} is unreachable ({why}): nothing is planned for it")
            continue
        st = nv.status
        assert st is not None
        if nv.gaps:
            ctx.held.add(nv.key)
            ctx.cluster_hold = ctx.cluster_hold or f"the view of {nv.key} has a gap"
            missing = [*nv.gaps, *ctx.unknown.get(nv.key, [])]
            ctx.block(nv.key, f"{nv.key} is held back: " + "; ".join(missing) + f". {HELD_BACK}")
            continue
        elif nv.in_progress:
            cmd = st.last_command.command if st.last_command else None
            ctx.held.add(nv.key)
            ctx.cluster_hold = f"{nv.key} is running '{cmd}'"
            ctx.block(
                nv.key,
                f"{nv.key} has '{cmd}' in progress: wait for it to finish, then plan again",
            )
        unknowns = ctx.unknown.get(nv.key, [])
        if unknowns and not nv.unclustered:
            ctx.destructive_hold = ctx.destructive_hold or f"{nv.key}: {unknowns[0]}"
        if unknowns and nv.key not in ctx.held:
            ctx.held.add(nv.key)
            ctx.block(
                nv.key,
                f"{nv.key} is held back: " + "; ".join(unknowns) + ". Nothing is planned for it",
            )


def _describe_minority(ctx: PlanContext) -> None:
    """A replica whose `Node in use` names itself sees no master: it is on the minority side."""
    for nv in ctx.view.nodes:
        st = nv.status
        if st is None or st.me is None or st.node_in_use is None:
            continue
        if normalize_address(st.node_in_use) == normalize_address(nv.address) and st.master is None:
            ctx.warn(
                f"{nv.key} sees no master to follow (its `Node in use` names itself and it "
                f"shows itself `{st.me.raw}`): it is on the minority side"
            )


def _quiet(ctx: PlanContext, nv: NodeView) -> bool:
    """A clustered member the reference view shows disconnected or not in sync: no steps."""
    return (
        nv.clustered
        and nv.role in ("master", "replica", "unknown")
        and (nv.sync not in ("master", "in-sync"))
    )


# ----- drift -----
def _describe_drift(ctx: PlanContext) -> None:
    view, spec = ctx.view, ctx.spec
    intended = spec.node(spec.master)
    if view.master is not None and normalize_address(view.master) != normalize_address(
        intended.address
    ):
        ctx.drift.append(
            f"the master is {_label(view, view.master)}; the spec says {intended.name} "
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
        if _quiet(ctx, nv):
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


# ----- phases -----
def _actionable(ctx: PlanContext) -> list[NodeView]:
    return [nv for nv in ctx.view.nodes if nv.in_spec and nv.key not in ctx.held]


def _uploads(ctx: PlanContext) -> None:
    for nv in _actionable(ctx):
        # A file that differs on a clustered node is in use: it changes only by rotation.
        absent_only = ctx.clustered[nv.key]
        for path, lf in ctx.uploads_needed(nv.key, absent_only=absent_only):
            ctx.add_upload(nv.key, path, lf, ctx.procedure_for(nv.key))


def _prepare_unclustered(ctx: PlanContext) -> None:
    for nv in _actionable(ctx):
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
            ctx.add_clear_error(nv.key, st.error, None)
        if nv.unclustered:
            ctx.prepare(nv.key, ctx.procedure_for(nv.key), with_uploads=False)


def _initialize(ctx: PlanContext) -> None:
    view, spec = ctx.view, ctx.spec
    if view.masters or view.membership or view.any_clustered:
        return
    unproven = [
        nv.key
        for nv in view.nodes
        if nv.in_spec
        and (nv.observation.unreadable is not None or nv.reachable)
        and (nv.gaps or not nv.unclustered)
    ]
    if unproven:
        ctx.block(
            None,
            "initialize refused: "
            + ", ".join(unproven)
            + " not shown to be unclustered (`initialize` needs every reachable node to show "
            "the not-clustered layout: `Status : Disabled`, an empty `Nodes:`, "
            "`Node in use : none`)",
        )
        return
    db = spec.database_nodes
    ready = [
        n.name
        for n in db
        if n.name not in ctx.held
        and (nv := view.node(n.name)) is not None
        and nv.reachable
        and nv.unclustered
    ]
    if 2 * len(ready) <= len(db):
        ctx.block(
            None,
            f"initialize refused: only {len(ready)} of {len(db)} database nodes are reachable "
            "and not clustered; an unreachable node may belong to a cluster with a master. "
            "Bring more than half of the database nodes back first",
        )
        return
    target = spec.master
    if target not in ready:
        ctx.block(target, f"initialize waits for the intended master {target}")
        return
    if ctx.cluster_hold is not None:
        ctx.block(None, f"initialize waits: {ctx.cluster_hold}")
        return
    if not ctx.configured(target):
        return  # blocked by prepare (no server pair, or unknown values)
    ctx.add_initialize(target)


def _schema_repairs(ctx: PlanContext) -> None:
    if ctx.master is None:
        return
    candidates = [
        nv
        for nv in _actionable(ctx)
        if nv.clustered and nv.status is not None and schema_repair_pending(nv.status)
    ]
    candidates.sort(key=lambda nv: nv.role != "master")
    for nv in candidates:
        if nv.role != "master" and _quiet(ctx, nv):
            ctx.block(nv.key, f"schema repair on {nv.key} waits until it is connected and in sync")
            continue
        if ctx.cluster_hold is not None:
            ctx.block(nv.key, f"schema repair on {nv.key} waits: {ctx.cluster_hold}")
            continue
        schema_repair(ctx, nv)


def _master_move(ctx: PlanContext) -> None:
    spec, view = ctx.spec, ctx.view
    if ctx.master is None:
        return
    target = view.node(spec.master)
    assert target is not None
    if normalize_address(ctx.master) == normalize_address(target.address):
        return
    current = view.by_address(ctx.master)
    label = _label(view, ctx.master)
    if not spec.policy.allow_master_move:
        ctx.warn(
            f"the master is {label}, not {target.key}; policy.allow_master_move is false, "
            "so it is left where it is"
        )
        return
    why = _move_refusal(ctx, current, target)
    if why is not None:
        ctx.block(target.key, f"master move from {label} to {target.key} not planned: {why}")
        return
    assert current is not None
    ctx.warn(
        f"moving the master from {label} to {target.key} (A4): the cluster shrinks to "
        f"{current.key} and {target.key}, then to {target.key} alone, until the removed "
        "members have rejoined; a failure of either node during the move leaves no majority"
    )
    master_move(ctx, current, target)


def _move_refusal(ctx: PlanContext, current: NodeView | None, target: NodeView) -> str | None:
    if ctx.cluster_hold is not None:
        return ctx.cluster_hold
    if ctx.destructive_hold is not None:
        return f"a destructive step needs every member's whole view ({ctx.destructive_hold})"
    if target.key in ctx.held:
        return f"{target.key} cannot be observed"
    if not ctx.is_member(target.address):
        return (
            f"{target.key} is not a member yet; it joins the current master first, and the "
            f"move is {LATER_RUN} once it is connected and in sync"
        )
    if target.sync != "in-sync":
        return f"{target.key} is not connected and ( In Sync ) (it shows {target.sync})"
    unknown = [f"{k}: {'; '.join(v)}" for k, v in ctx.unknown.items() if ctx.is_member_key(k)]
    if unknown:
        return "every member's interface and certificates must be known: " + "; ".join(unknown)
    rotation = ctx.needs_rotation(target.key)
    if rotation:
        return (
            f"{target.key} must first rejoin as a replica to change ({'; '.join(rotation)}); "
            f"the move is {LATER_RUN}"
        )
    if current is None or current.key in ctx.held or not current.reachable:
        return "the current master cannot be observed"
    if not current.in_spec and not ctx.spec.policy.allow_remove:
        return (
            "the current master is not in the spec; the move would remove it for good "
            "(set policy.allow_remove to allow that)"
        )
    max_nodes = ctx.spec.policy.max_database_nodes
    if len(ctx.members) > max_nodes:
        return f"the cluster has more than policy.max_database_nodes={max_nodes} members"
    problems: list[str] = []
    for address in ctx.members:
        nv = ctx.view.by_address(address)
        if nv is None or nv.key in (current.key, target.key):
            continue
        if nv.key in ctx.held or not nv.reachable:
            problems.append(f"{nv.key} cannot be observed")
        elif nv.sync != "in-sync":
            problems.append(f"{nv.key} is not connected and in sync")
        elif not nv.in_spec and not ctx.spec.policy.allow_remove:
            problems.append(f"{nv.key} is not in the spec and policy.allow_remove is false")
    if problems:
        return "every other member must be reachable and in sync: " + "; ".join(problems)
    return None


def _joins(ctx: PlanContext) -> None:
    max_nodes = ctx.spec.policy.max_database_nodes
    reserved = 0  # earlier nodes that would join but whose values are unknown keep their place
    for n in ctx.spec.database_nodes:
        nv = ctx.node_view(n.name)
        if nv.key in ctx.held:
            reserved += nv.key in ctx.unknown and nv.unclustered
            continue
        if not ctx.clustered[nv.key]:
            if ctx.master is None:
                if ctx.view.masters or ctx.view.membership or ctx.view.any_clustered:
                    ctx.block(nv.key, f"{nv.key} cannot join: there is no master")
                continue
            if ctx.cluster_hold is not None:
                ctx.block(nv.key, f"join of {nv.key} waits: {ctx.cluster_hold}")
                continue
            if len(ctx.members) + reserved + 1 > max_nodes:
                ctx.block(
                    nv.key,
                    f"join of {nv.key} refused: the cluster would have more than "
                    f"policy.max_database_nodes={max_nodes} database nodes; it is {LATER_RUN} "
                    "if members leave",
                )
                continue
            if not ctx.configured(nv.key):
                continue  # blocked by prepare (no server pair, or unknown values)
            ctx.add_join(nv.key, ctx.procedure_for(nv.key))


def _rotations(ctx: PlanContext) -> None:
    """Clustered database nodes whose interface or certificates must change (after the joins,
    so that every joined node already counts for the majority)."""
    for n in ctx.spec.database_nodes:
        nv = ctx.node_view(n.name)
        if nv.key in ctx.held or not ctx.clustered[nv.key] or nv.key in ctx.rejoining:
            continue
        is_master = ctx.master is not None and normalize_address(ctx.master) == (
            normalize_address(nv.address)
        )
        if is_master or _quiet(ctx, nv):
            if is_master and ctx.needs_rotation(nv.key):
                what = "; ".join(ctx.needs_rotation(nv.key))
                ctx.block(
                    nv.key,
                    f"{nv.key} is the master and must change ({what}): a clustered "
                    "node's certificates and interface cannot change, and the master "
                    "would have to be moved away first (A5). Move the master (change "
                    "`master` in the spec), apply, then change it back",
                )
            continue
        why = ctx.needs_rotation(nv.key)
        if nv.role == "client":
            why = ["it is connected as a client but the spec says database", *why]
        elif not why:
            continue
        _rotate(ctx, nv, why, client=False)


def _rotate(ctx: PlanContext, nv: NodeView, why: list[str], *, client: bool) -> None:
    if nv.key in ctx.unknown:
        ctx.block(
            nv.key,
            f"{nv.key} must leave and rejoin ({'; '.join(why)}), but "
            + "; ".join(ctx.unknown[nv.key])
            + ": the rotation is not planned on an unknown value",
        )
        return
    if ctx.cluster_hold is not None:
        ctx.block(nv.key, f"rotation of {nv.key} waits: {ctx.cluster_hold}")
        return
    if ctx.destructive_hold is not None:
        ctx.block(
            nv.key,
            f"rotation of {nv.key} waits: its `remove` needs every member's whole view "
            f"({ctx.destructive_hold})",
        )
        return
    if ctx.master is None:
        ctx.block(nv.key, f"rotation of {nv.key} needs a master")
        return
    member = nv.role in ("replica", "unknown")
    max_nodes = ctx.spec.policy.max_database_nodes
    if not client and len(ctx.members) + (0 if member else 1) > max_nodes:
        ctx.block(
            nv.key,
            f"{nv.key} must leave and rejoin ({'; '.join(why)}), but the cluster would then have "
            f"more than policy.max_database_nodes={max_nodes} database nodes; it is "
            f"{LATER_RUN} if members leave",
        )
        return
    if not ctx.remove_keeps_majority(nv.address):
        ctx.block(
            nv.key,
            f"{nv.key} must leave and rejoin ({'; '.join(why)}), but removing it now would "
            "leave the cluster without a majority: bring the disconnected members back first",
        )
        return
    if ctx.wanted_certs(nv.key) is None:
        ctx.block(nv.key, f"{nv.key} is a database node but the spec gives no server certificate")
        return
    rejoin(ctx, nv.key, why, client=client)


def _connects(ctx: PlanContext) -> None:
    for n in ctx.spec.nodes:
        if n.role is not NodeRole.CLIENT:
            continue
        nv = ctx.node_view(n.name)
        if nv.key in ctx.held:
            continue
        if not ctx.clustered[nv.key]:
            if ctx.master is None:
                ctx.block(nv.key, f"{nv.key} cannot connect: there is no master")
            elif ctx.cluster_hold is not None:
                ctx.block(nv.key, f"connect of {nv.key} waits: {ctx.cluster_hold}")
            elif ctx.configured(nv.key):
                ctx.add_join(nv.key, ctx.procedure_for(nv.key), client=True)
            continue
        if nv.role != "client":
            ctx.block(
                nv.key,
                f"{nv.key} is a database member but the spec says client: change it by hand "
                "(remove it from the cluster, then plan again)",
            )
            continue
        why = ctx.needs_rotation(nv.key)
        if why:
            _rotate(ctx, nv, why, client=True)


def _remove_extras(ctx: PlanContext) -> None:
    for nv in ctx.view.extras:
        if not ctx.is_member(nv.address):
            continue
        if not ctx.spec.policy.allow_remove:
            ctx.block(
                nv.key,
                f"{nv.key} is a member the spec does not list; set policy.allow_remove to "
                "remove it (or add it to the spec)",
            )
            continue
        if ctx.master is not None and normalize_address(ctx.master) == normalize_address(
            nv.address
        ):
            ctx.block(
                nv.key,
                f"{nv.key} is the master and not in the spec: it leaves only through a master "
                "move to the spec's master",
            )
            continue
        if nv.key in ctx.held or not nv.reachable:
            ctx.block(nv.key, f"{nv.key} cannot be observed, so it cannot run `remove`")
            continue
        if nv.sync not in ("in-sync", "syncing"):
            ctx.block(nv.key, f"{nv.key} is not connected; `remove` is left to the operator")
            continue
        if ctx.cluster_hold is not None:
            ctx.block(nv.key, f"removal of {nv.key} waits: {ctx.cluster_hold}")
            continue
        if ctx.destructive_hold is not None:
            ctx.block(
                nv.key,
                f"removal of {nv.key} waits: `remove` needs every member's whole view "
                f"({ctx.destructive_hold})",
            )
            continue
        if not ctx.remove_keeps_majority(nv.address):
            ctx.block(nv.key, f"removing {nv.key} now would leave the cluster without a majority")
            continue
        remove_extra(ctx, nv)


# ----- finishing -----
def _finish(ctx: PlanContext) -> Plan:
    return Plan(
        cluster=ctx.spec.cluster,
        steps=finalize(ctx, ctx.steps),
        drift=tuple(ctx.drift),
        warnings=tuple(ctx.warnings),
        blocked=tuple(Blocked(node=b.node, reason=b.reason) for b in ctx.blocked),
    )


def finalize(ctx: PlanContext, drafts: list[Draft]) -> tuple[Step, ...]:
    """Assign ids and depends_on (relied-upon facts no earlier step changes)."""
    touched: set[tuple[str, str]] = set()
    steps: list[Step] = []
    for i, d in enumerate(drafts, start=1):
        pairs: list[tuple[str, str]] = []
        for pair in d.relies:
            if pair in pairs or pair in touched or (ALL, pair[1]) in touched:
                continue
            pairs.append(pair)
        steps.append(
            Step(
                id=f"s{i:02d}",
                node=d.node,
                action=d.action,
                command=d.command,
                reason=d.reason,
                destructive=d.destructive,
                procedure=d.procedure,
                depends_on=facts_from_view(ctx.view, ctx.observed, pairs),
                expect=d.expect,
                upload=d.upload,
                confirm=d.confirm,
            )
        )
        touched.update(d.touches)
    return tuple(steps)
