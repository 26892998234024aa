"""One plan's schedule: each step started once the steps it waits for are done.

:class:`Schedule` computes the waits (:mod:`.order`) when a run starts, runs every step
as a task that waits for them (joins ``policy.join_concurrency`` at a time), and says
which nodes the steps about to be unblocked will re-read first (the look-ahead).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from reconciler.apply.scheduling.order import (
    clustered_nodes,
    deferred_preparation,
    join_targets,
    step_predecessors,
)
from reconciler.observe.snapshot_model import Observed
from reconciler.plan.model import Action, Step
from reconciler.spec.model import ClusterSpec


class Schedule:
    def __init__(self, spec: ClusterSpec, observed: Observed, steps: list[Step]) -> None:
        """``observed``: the cluster when the run starts (which nodes are clustered, the
        nodes the joins name)."""
        self.steps = steps
        self.clustered = clustered_nodes(spec, observed, steps)
        self.join_concurrency = spec.policy.join_concurrency
        self.preds = step_predecessors(
            steps,
            clustered=self.clustered,
            targets=join_targets(spec, observed, steps),
            join_concurrency=self.join_concurrency,
        )
        self.deferred = deferred_preparation(steps, self.preds, self.clustered)
        self.started = [asyncio.Event() for _ in steps]
        self.finished = [asyncio.Event() for _ in steps]

    async def run(self, run_one: Callable[[Step], Awaitable[None]]) -> None:
        """Run every step through ``run_one`` as soon as its waits are over. An error
        ``run_one`` raises (the lock lost, the audit log unwritable, a bug) cancels the
        other steps and propagates as itself."""
        joins = asyncio.Semaphore(max(1, self.join_concurrency))

        async def scheduled(index: int) -> None:
            try:
                for before in sorted(self.preds[index]):
                    await self.finished[before].wait()
                if index in self.deferred:
                    await self.started[self.deferred[index]].wait()
                step = self.steps[index]
                if step.action is Action.JOIN:
                    async with joins:
                        self.started[index].set()
                        await run_one(step)
                else:
                    self.started[index].set()
                    await run_one(step)
            finally:
                self.started[index].set()
                self.finished[index].set()

        try:
            async with asyncio.TaskGroup() as group:
                for index in range(len(self.steps)):
                    group.create_task(scheduled(index))
        except BaseExceptionGroup as errors:
            raise errors.exceptions[0] from None

    def lookahead_nodes(self, step: Step, rereads: Callable[[Step], list[str]]) -> list[str]:
        """The nodes the steps that wait only for ``step`` will re-read first (a join's
        node and its master; ``rereads`` says which a step reads): read alongside
        ``step``'s polls, the last poll round's readings are their re-reads, so the next
        join does not wait one more round trip."""
        index = next((i for i, s in enumerate(self.steps) if s is step), None)
        if index is None:
            return []
        names: list[str] = []
        for later, preds in enumerate(self.preds):
            if index not in preds or later <= index:
                continue
            if any(not self.finished[p].is_set() for p in preds if p != index):
                continue
            for name in rereads(self.steps[later]):
                if name != step.node and name not in names:
                    names.append(name)
        return names
