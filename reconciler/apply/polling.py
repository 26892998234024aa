"""Waiting for a step to finish: an asynchronous command polled until its result shows,
then the step's expected outcome until it appears; a stop request gives up the polls."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from reconciler.apply.live_view import LiveView
from reconciler.apply.options import ExecutorOptions
from reconciler.apply.scheduling.poll_delay import PollDelay
from reconciler.apply.scheduling.readings import ReadingCache
from reconciler.apply.scheduling.schedule import Schedule
from reconciler.apply.step_outcome import outcome_problem, same_command
from reconciler.common.errors import ReconcilerError, StepAbandonedError, StepFailedError
from reconciler.observe.snapshot_model import NodeObservation, Observed
from reconciler.observe.status_model import CommandResult
from reconciler.plan.model import Step
from reconciler.transport.interface import target_for


async def wait_for_result(
    step: Step,
    view: LiveView,
    readings: ReadingCache,
    schedule: Schedule | None,
    *,
    options: ExecutorOptions,
    action_timeout: float,
    stop: asyncio.Event | None,
    progress: Callable[[str], None] | None = None,
) -> NodeObservation:
    """Poll until the node shows the command's result; returns the observation that
    shows ``(Success)``. Each poll round also reads the nodes the next steps will
    re-read (:meth:`Schedule.lookahead_nodes`); every ``options.progress_every`` seconds
    ``progress`` gets a line with the elapsed time and the node's `Last command`."""
    target = target_for(view.spec, step.node)
    started = said = time.monotonic()
    deadline = started + action_timeout
    backoff = PollDelay(options.poll_interval)
    failed = 0  # polls in a row at which the node did not answer
    while True:
        stopping = stop is not None and stop.is_set()
        ahead = (
            []
            if schedule is None or stopping
            else schedule.lookahead_nodes(step, view.nodes_to_reread)
        )
        counts = {name: readings.counts(name) for name in ahead}
        fresh = await _unless_stopped(step, view.reobserve([step.node, *ahead]), stop)
        readings.keep_lookahead(ahead, fresh, counts)
        obs = fresh.get(step.node)
        failed = 0 if obs.reachable else failed + 1
        if failed >= options.max_failed_polls:
            raise StepFailedError(
                f"{step.node} stopped answering while `{step.command}` was running "
                f"({failed} polls in a row failed: {obs.why_not}); the command may still "
                "be running on the node",
                node=step.node,
                step_id=step.id,
                retryable=True,
            )
        last = obs.status.last_command if obs.status is not None and obs.reachable else None
        if last is not None and same_command(last.command, step.command):
            if last.result is CommandResult.SUCCESS:
                return obs
            if last.result is CommandResult.FAILED:
                raise StepFailedError(
                    f"{step.command!r} on {step.node} reported (Failed)",
                    node=step.node,
                    step_id=step.id,
                )
        now = time.monotonic()
        if progress is not None and now - said >= options.progress_every:
            shown = last.raw if last is not None else obs.why_not
            progress(
                f"[{step.id}] {step.node}: still running ({now - started:.0f}s elapsed); "
                f"Last command: {shown}"
            )
            said = now
        if now >= deadline:
            shown = last.raw if last is not None else obs.why_not
            raise StepFailedError(
                f"{step.command!r} on {target.label} did not finish within "
                f"{action_timeout:g}s (Last command: {shown})",
                node=step.node,
                step_id=step.id,
                retryable=True,
            )
        await _sleep_unless_stopped(step, backoff, stop)


async def wait_for_outcome(
    step: Step,
    shown: NodeObservation | None,
    view: LiveView,
    readings: ReadingCache,
    options: ExecutorOptions,
) -> None:
    """Wait (``settle_seconds``) for the step's expected outcome (:func:`outcome_problem`).
    ``shown``: the observation :func:`wait_for_result` just read (after the command
    completed). An upload's outcome is its file's checksum: just that file is read (and
    the status only when the node's last reading is no longer a re-read)."""
    name = step.upload.remote_name if step.upload is not None else None
    deadline = time.monotonic() + options.settle_seconds
    backoff = PollDelay(options.poll_interval)
    while True:
        files: frozenset[str] = frozenset()
        if name is not None:
            shown, files = await readings.read_upload(view, step.node, name)
        elif shown is None:
            shown = (await view.reobserve([step.node])).get(step.node)
        problem = outcome_problem(step, shown)
        if problem is None:
            readings.keep(step, shown, files)
            return
        if time.monotonic() >= deadline:
            raise StepFailedError(
                f"step {step.id} on {step.node}: unexpected outcome: {problem}"
                + (f" (expected: {step.expect})" if step.expect else ""),
                node=step.node,
                step_id=step.id,
            )
        shown = None
        await backoff.sleep()


def _abandoned(step: Step) -> StepAbandonedError:
    return StepAbandonedError(
        f"stopped while `{step.command}` was running on {step.node}: the command keeps "
        "running on the node (a later run waits for it and checks its result)",
        node=step.node,
        step_id=step.id,
    )


async def _unless_stopped(
    step: Step, poll: Awaitable[Observed], stop: asyncio.Event | None
) -> Observed:
    """One poll round, given up as soon as a stop is requested (a node that hangs must
    not keep a stopped apply waiting)."""
    if stop is None:
        return await poll
    reading = asyncio.ensure_future(poll)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if reading.done():
        return reading.result()
    reading.cancel()
    with contextlib.suppress(asyncio.CancelledError, ReconcilerError):
        await reading
    raise _abandoned(step)


async def _sleep_unless_stopped(step: Step, backoff: PollDelay, stop: asyncio.Event | None) -> None:
    """The poll delay, cut short by a stop request: then the wait is given up."""
    if stop is None:
        await backoff.sleep()
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=backoff.delay)
    backoff.advance()
    if stop.is_set():
        raise _abandoned(step)
