"""The master move (A4): when the master is moved to the spec's master, and its steps.

Pure. Phase 5 of the plan, only with ``policy.allow_master_move`` (else a warning and no
step). The move needs: no ``cluster_hold`` or ``destructive_hold``; the target T a member,
connected and ( In Sync ), observed, with its interface and certificates already the spec's
(else it first rejoins as a replica, and the move is planned on a later run); every member's
interface and certificates known; the current master observed (and, when the spec does not
list it, ``policy.allow_remove``); no more members than ``policy.max_database_nodes``; and
every other member reachable, in sync, and listed by the spec unless ``policy.allow_remove``.

The steps: `remove` every other member, then the master, so that T, which receives all of
its WAL, is elected; each removed spec node is prepared right after its
`remove` (a later re-plan does the same in its preparation phase) and rejoins the new
master in the joins phase. The master is only ever removed by this procedure.
"""

from __future__ import annotations

from reconciler.common.addresses import normalize_address
from reconciler.plan.cluster_view import NodeView
from reconciler.plan.context import LATER_RUN, PlanContext
from reconciler.plan.preparation import prepare
from reconciler.plan.procedures import MASTER_MOVE, REJOIN
from reconciler.plan.removal import clear_extra_error
from reconciler.plan.step_builders import add_remove


def plan_master_move(ctx: PlanContext) -> None:
    """Phase 5: move the master to the spec's master, or say why not."""
    spec, view = ctx.spec, ctx.view
    if ctx.master is None:
        return
    target = view.node(spec.master)
    assert target is not None
    if normalize_address(ctx.master) == normalize_address(target.address):
        return
    current = view.by_address(ctx.master)
    label = view.label(ctx.master)
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
        "members have rejoined; a failure of either node during the move leaves no majority "
        f"(the window: from {current.key}'s `remove` until {target.key} is elected). Backups "
        "are taken first; if a node is lost in that window, `reconcile recover SPEC "
        f"--initialize-on {current.key}` rebuilds the cluster on the former master, which "
        "keeps the data (A3)"
    )
    master_move(ctx, current, target)


def _move_refusal(ctx: PlanContext, current: NodeView | None, target: NodeView) -> str | None:
    """Why the master may not be moved now (None: it may)."""
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
    problems = ctx.member_problems(skip=(current.key, target.key))
    if problems:
        return "every other member must be reachable and in sync: " + "; ".join(problems)
    return None


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
        clear_extra_error(ctx, nv, MASTER_MOVE)
        add_remove(
            ctx,
            nv.key,
            MASTER_MOVE,
            reason=f"master move to {target.key} (A4): {nv.key} leaves{gone} so that only "
            f"{master.key} and {target.key} remain",
            expect=f"{nv.key} is not clustered; {master.key} is still master",
            because=((master.key, "role"), (target.key, "sync")),
        )
        if nv.in_spec:
            prepare(ctx, nv.key, REJOIN)
    clear_extra_error(ctx, master, MASTER_MOVE)
    add_remove(
        ctx,
        master.key,
        MASTER_MOVE,
        reason=f"master move to {target.key} (A4): the master leaves last; {target.key} "
        "receives all of its WAL and is elected",
        expect=f"{target.key} is the master; {master.key} is not clustered",
    )
    ctx.master = target.address
    if master.in_spec:
        prepare(ctx, master.key, REJOIN)
