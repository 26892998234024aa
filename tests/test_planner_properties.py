"""Property tests of the planner against the pure cluster model (reconciler.plan.simulation).

Random start states: fresh, partly configured, clustered with the master elsewhere, extra
members, schema errors, unreachable nodes, client nodes, wrong interface/certificates,
commands in progress, replicas out of sync.
"""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scenario_helpers import Case, cases, run, step_tuples

from reconciler.plan.context import LATER_RUN
from reconciler.plan.facts import changed_facts
from reconciler.plan.model import Action
from reconciler.plan.planner import plan
from reconciler.plan.simulation import World, apply_step, observe

StepTuple = tuple[str, str, str | None, bool, str | None]
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _safe(before: World, after: World) -> None:
    """A cluster that had a master keeps one; a member set never lacks its majority."""
    if before.master is not None and after.membership:
        assert after.master is not None, "a step left the cluster without a master"
        assert after.has_majority


@SETTINGS
@given(cases())
def test_whole_plan_converges(case: Case) -> None:
    first = case.plan()
    world = run(case.world, first.steps)
    second = case.plan(world)
    if not first.blocked:
        assert second.steps == (), (step_tuples(first), step_tuples(second))
    # Deferred work (a master move after the target joined, a join after an extra member
    # left) converges within two more runs; what stays blocked plans no steps.
    current = second
    for _ in range(2):
        world = run(world, current.steps)
        current = case.plan(world)
    assert current.steps == (), step_tuples(current)


@SETTINGS
@given(cases(), st.data())
def test_prefix_then_replan_gives_the_rest(case: Case, data: st.DataObject) -> None:
    full = case.plan()
    # Deferred work (e.g. a master move once its target has joined) appears only after the
    # step that makes it possible: such plans are covered by the convergence test.
    assume(not any(LATER_RUN in b.reason for b in full.blocked))
    k = data.draw(st.integers(0, len(full.steps)))
    world = run(case.world, full.steps[:k])
    again = case.plan(world)
    # Backups precede the first destructive step that remains: a re-plan after part of a
    # plan takes them again (a newer backup before the rest), so they are compared apart.
    assert _without_backups(step_tuples(again)) == _without_backups(step_tuples(full)[k:])
    rest_destructive = any(s.destructive for s in full.steps[k:])
    assert any(s.action is Action.BACKUP for s in again.steps) == rest_destructive


def _without_backups(steps: list[StepTuple]) -> list[StepTuple]:
    return [s for s in steps if "backup" not in s]


@SETTINGS
@given(cases())
def test_planning_is_deterministic(case: Case) -> None:
    observed = observe(case.world)
    assert plan(case.spec, observed, case.local_files) == plan(
        case.spec, observed, case.local_files
    )


@SETTINGS
@given(cases())
def test_no_prefix_loses_the_majority_or_makes_two_masters(case: Case) -> None:
    # apply_step raises UnsafeStep for a second cluster (the only way to two masters).
    world = case.world
    for step in case.plan().steps:
        after = apply_step(world, step)
        _safe(world, after)
        world = after


@SETTINGS
@given(cases())
def test_depends_on_holds_just_before_each_step(case: Case) -> None:
    full = case.plan()
    world = case.world
    for step in full.steps:
        changed = changed_facts(case.spec, observe(world), step.depends_on)
        assert changed == (), (step.id, step.command, changed)
        world = apply_step(world, step)


@SETTINGS
@given(cases())
def test_blocked_and_mutating_states(case: Case) -> None:
    """Two masters / no master: nothing at all; otherwise every step names a known node."""
    p = case.plan()
    w = case.world
    if w.membership and w.master is None:
        assert p.steps == ()
        assert p.blocked
    known = {n.key for n in w.nodes}
    assert all(s.node in known for s in p.steps)
