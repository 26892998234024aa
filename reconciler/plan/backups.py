"""Backups before risky steps: `backup snapshot <name>` on every member, first.

Pure. The last phase of the plan: when the plan has a destructive step (a `remove`: of
the master move, a rotation, a rebuild, a removal or a recovery), one `backup snapshot`
per reachable member of the cluster (the spec's database nodes that are clustered, and
members the spec does not list) is put right before the first of them, as Cisco's
procedures start (TAC 215421: `backup snapshot` on every node). The executor downloads
each backup's files (``<name>.bak``, ``<name>.json``) with their checksums; a backup that
fails stops the apply before anything destructive. ``policy.backups.before_risky_steps:
false`` switches it off, and the plan says so. The watch loop holds backups for the same
maintenance window as the steps they protect.
"""

from __future__ import annotations

from datetime import datetime

from reconciler.common.addresses import normalize_address
from reconciler.plan.context import PlanContext
from reconciler.plan.step_builders import add_backup

# The MMP names a backup by a bare word; the lab takes at most 64 characters.
NAME_LIMIT = 64


def backup_name(cluster: str, at: datetime | None) -> str:
    """``<cluster>-<UTC time>``, e.g. ``emea-prod-20261202T031500Z`` (at most 64 characters).

    ``at`` is the observation's time (the planner has no clock); an observation without
    one (a hand-written snapshot) gives ``<cluster>-undated``."""
    stamp = at.strftime("%Y%m%dT%H%M%SZ") if at is not None else "undated"
    return f"{cluster[: NAME_LIMIT - len(stamp) - 1]}-{stamp}"


def plan_backups(ctx: PlanContext) -> None:
    """Backups on every reachable member before the plan's first destructive step."""
    first = next((i for i, d in enumerate(ctx.steps) if d.destructive), None)
    if first is None:
        return
    risky = ctx.steps[first]
    if not ctx.spec.policy.backups.before_risky_steps:
        ctx.warn(
            "policy.backups.before_risky_steps is false: no `backup snapshot` is taken "
            f"before the destructive steps (the first: `{risky.command}` on {risky.node})"
        )
        return
    name = backup_name(ctx.spec.cluster, ctx.observed.observed_at)
    drafts = [
        add_backup(
            ctx,
            key,
            name,
            f"a backup of {key} before the destructive steps (the first: `{risky.command}` "
            f"on {risky.node})",
        )
        for key in _members_to_back_up(ctx)
    ]
    ctx.steps[first:first] = drafts


def _members_to_back_up(ctx: PlanContext) -> list[str]:
    """Spec order, then members the spec does not list; unreachable ones are named."""
    view = ctx.view
    members = {normalize_address(a) for a in view.membership}
    out: list[str] = []
    for nv in view.nodes:
        clustered = nv.clustered or normalize_address(nv.address) in members
        if not clustered or nv.role == "client":
            continue
        if nv.key in ctx.held or not nv.reachable:
            ctx.warn(f"no backup of {nv.key} before the destructive steps: it cannot be observed")
            continue
        out.append(nv.key)
    return out
