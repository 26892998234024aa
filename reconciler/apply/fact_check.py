"""The checks before a step runs: its facts re-read and compared (compare-and-set), and
the journal guard that refuses to repeat a destructive step whose effect is already there."""

from __future__ import annotations

import time

from reconciler.apply.audit import Journal
from reconciler.apply.live_view import LiveView, files_named
from reconciler.apply.options import ExecutorOptions
from reconciler.apply.scheduling.poll_delay import PollDelay
from reconciler.apply.scheduling.readings import ReadingCache
from reconciler.apply.step_outcome import same_command
from reconciler.common.errors import FactsChangedError, StepFailedError
from reconciler.observe.snapshot_model import Observed
from reconciler.observe.status_model import CommandResult
from reconciler.plan.cluster_view import build_view
from reconciler.plan.facts import changed_facts
from reconciler.plan.model import Action, Step
from reconciler.spec.model import ClusterSpec


async def check_facts(
    step: Step, view: LiveView, readings: ReadingCache, options: ExecutorOptions
) -> None:
    """Re-observe the nodes ``step`` touches (:meth:`LiveView.nodes_to_reread`) and
    re-check its ``depends_on`` facts; a fact that differs is given ``settle_seconds`` to
    come back, then :class:`FactsChangedError` names each fact, its planned and its current
    value. A join/connect also waits (as long) until its target is the master."""
    # file checksums only for the files the facts name (an upload's own file:<name>)
    wanted = files_named(step.depends_on)
    deadline = time.monotonic() + options.settle_seconds
    backoff = PollDelay(options.poll_interval)
    first = True
    while True:
        names = view.nodes_to_reread(step)
        # Only the first check may re-use a reading (taken after the node's last
        # command completed, nothing sent to it since: docs/live.md).
        if first:
            names = await readings.still_to_read(view, step, names, wanted)
        first = False
        if names:
            counts = readings.counts(step.node)
            fresh = await view.reobserve(names, files=wanted)
            if step.node in names and counts == readings.counts(step.node):
                # read after the node's last command (its steps run one at a time):
                # a re-read for this step's own outcome check, e.g. an upload's
                readings.keep(step, fresh.get(step.node), wanted.get(step.node, frozenset()))
        changed = changed_facts(view.spec, view.observed, step.depends_on)
        waiting = join_target_problem(view.spec, view.observed, step)
        if not changed and waiting is None:
            return
        if time.monotonic() >= deadline:
            if not changed and waiting is not None:
                raise StepFailedError(
                    f"step {step.id} on {step.node} not run: {waiting}",
                    node=step.node,
                    step_id=step.id,
                    retryable=True,
                )
            lines = describe_changes(changed)
            raise FactsChangedError(
                f"step {step.id} on {step.node} not run: the cluster changed since the plan "
                f"({'; '.join(lines)})",
                changed=lines,
            )
        await backoff.sleep()


def join_target_problem(spec: ClusterSpec, observed: Observed, step: Step) -> str | None:
    """A join/connect needs its target to be the master now (an earlier step of the
    same plan, e.g. the master move, may have just made it one: give the election
    time to finish)."""
    if step.action not in (Action.JOIN, Action.CONNECT) or not step.command:
        return None
    target = step.command.split()[-1]
    view = build_view(spec, observed)
    node = view.by_address(target)
    if node is None or not node.reachable:
        return None  # not observable from here: let the MMP answer
    if node.role == "master":
        return None
    return f"its target {target} is not (yet) the master (it is {node.role})"


def describe_changes(changed: tuple[tuple[object, str | None], ...]) -> tuple[str, ...]:
    lines = []
    for fact, current in changed:
        node = getattr(fact, "node", "?")
        key = getattr(fact, "key", "?")
        planned = getattr(fact, "value", None)
        lines.append(f"{node}.{key}: planned {planned!r}, now {current!r}")
    return tuple(lines)


def journal_guard(step: Step, journal: Journal, observed: Observed) -> None:
    """Refuse a destructive step that the state dir's journal shows an apply already
    started on this node when the node's `Last command` shows it succeeded or still runs."""
    entry = journal.last_event(step.node, step.command or "")
    if entry is None or entry.get("event") not in ("started", "completed"):
        return
    status = observed.get(step.node).status
    last = status.last_command if status is not None else None
    if (
        last is not None
        and same_command(last.command, step.command)
        and last.result in (CommandResult.SUCCESS, CommandResult.IN_PROGRESS)
    ):
        message = (
            f"step {step.id}: {step.command!r} on {step.node} was already run by apply "
            f"{entry.get('run_id')} at {entry.get('time')} and the node shows it "
            f"({last.raw}); not repeating a destructive step — re-plan from a fresh "
            "observation"
        )
        raise FactsChangedError(message, changed=(f"{step.node}.last_command: {last.raw}",))
