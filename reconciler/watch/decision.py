"""The watch loop's pure decision: which steps of a plan one cycle may apply.

Report mode, ``policy.paused`` and a running backoff apply nothing; outside the
maintenance windows a plan is cut at its first gated step (destructive, or part of
the master move). No I/O: unit-tested exhaustively in tests/test_watch_loop.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from reconciler.plan.model import Action, Plan, Step

MASTER_MOVE = "master-move"


class Mode(StrEnum):
    REPORT = "report"  # observe, plan and log the drift
    HEAL = "heal"  # also apply it (same executor, same safety rules, same lock)


@dataclass(frozen=True)
class Decision:
    to_apply: tuple[Step, ...]  # a prefix of the plan's steps
    pending: tuple[Step, ...]  # the rest: reported, not applied this cycle
    held_because: str | None = None  # why anything is pending


def gated(step: Step) -> bool:
    """Steps that need a maintenance window: destructive ones, the master move, and the
    backups taken for them (a backup outside the window would be taken every cycle)."""
    return step.destructive or step.procedure == MASTER_MOVE or step.action is Action.BACKUP


def decide(
    plan: Plan,
    *,
    mode: Mode,
    paused: bool,
    destructive_ok: bool,
    backoff_wait: float = 0.0,
    next_window: datetime | None = None,
) -> Decision:
    """Which steps of ``plan`` this cycle applies (pure).

    Report mode, ``policy.paused`` and a running backoff apply nothing. Outside
    the maintenance windows the plan is cut at its first gated step: only the
    steps before it run (simplest safe rule: later steps may depend on it).
    """
    steps = plan.steps
    if not steps:
        return Decision((), ())
    if paused:
        return Decision((), steps, "policy.paused: observe and report only")
    if mode is Mode.REPORT:
        return Decision((), steps, "report mode")
    if backoff_wait > 0:
        return Decision((), steps, f"backing off after a failed apply ({backoff_wait:.0f}s left)")
    if destructive_ok:
        return Decision(steps, ())
    cut = next((i for i, s in enumerate(steps) if gated(s)), len(steps))
    if cut == len(steps):
        return Decision(steps, ())
    first = steps[cut]
    kind = (
        "master move"
        if first.procedure == MASTER_MOVE
        else "backup before a destructive step"
        if first.action is Action.BACKUP
        else "destructive step"
    )
    when = f"; next window opens {next_window.isoformat()}" if next_window else ""
    reason = f"outside maintenance windows: {kind} {first.id} ({first.action}) waits{when}"
    return Decision(steps[:cut], steps[cut:], reason)
