"""Backups belong to the destructive steps they precede: watch holds them for the same window."""

from __future__ import annotations

from reconciler.plan.model import Action, Plan, Step
from reconciler.watch.decision import Mode, decide, gated


def _step(i: int, action: Action, *, destructive: bool = False) -> Step:
    command = (
        "backup snapshot c-undated" if action is Action.BACKUP else f"database cluster {action}"
    )
    return Step(
        id=f"s{i:02d}",
        node="n1",
        action=action,
        command=command,
        reason="r",
        destructive=destructive,
        confirm=destructive,
        backup="c-undated" if action is Action.BACKUP else None,
    )


PLAN = Plan(
    cluster="c",
    steps=(
        _step(1, Action.LOCALNODE),
        _step(2, Action.BACKUP),
        _step(3, Action.BACKUP),
        _step(4, Action.REMOVE, destructive=True),
        _step(5, Action.JOIN),
    ),
)


def test_outside_a_window_the_plan_is_cut_at_the_first_backup() -> None:
    d = decide(PLAN, mode=Mode.HEAL, paused=False, destructive_ok=False)
    assert [s.id for s in d.to_apply] == ["s01"]
    assert d.held_because is not None and "backup before a destructive step s02" in d.held_because


def test_inside_a_window_backups_and_their_steps_run() -> None:
    d = decide(PLAN, mode=Mode.HEAL, paused=False, destructive_ok=True)
    assert [s.id for s in d.to_apply] == ["s01", "s02", "s03", "s04", "s05"]


def test_a_backup_is_gated() -> None:
    assert gated(_step(1, Action.BACKUP)) and not gated(_step(1, Action.JOIN))
