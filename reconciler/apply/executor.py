"""Execute a plan against the live cluster, step by step, its facts re-checked before each step.

:meth:`Executor.execute` runs the plan's steps in plan order, each as soon as the
earlier steps it depends on are done (:mod:`reconciler.apply.scheduling`: why and how
steps overlap and readings are re-used). For every step:

1. **Re-read its facts** (compare-and-set, :func:`~reconciler.apply.fact_check.check_facts`):
   re-observe the nodes it touches and re-check its ``depends_on`` facts; a fact that
   differs is given ``settle_seconds`` to come back (an election or a replica catching up
   after the previous step), then the run stops with :class:`FactsChangedError` naming each fact.
2. **Journal guard** for destructive steps
   (:func:`~reconciler.apply.fact_check.journal_guard`): a command an apply already
   started on this node, whose `Last command` shows it succeeded or still runs, is
   refused instead of repeated.
3. **Run** it: SFTP upload, or the exact MMP command (``Y`` on stdin when it asks);
   audit-log it (:mod:`reconciler.apply.recording`). A backup step also downloads the
   backup's files (:mod:`reconciler.apply.backup_files`).
4. For asynchronous commands (:data:`ASYNC_ACTIONS`) **poll** `status` until `Last
   command` shows the command with ``(Success)`` or ``(Failed)``, or
   ``policy.action_timeout_seconds`` expires (:mod:`reconciler.apply.polling`).
5. **Check the expected outcome** (:mod:`reconciler.apply.step_outcome`), allowing it
   ``settle_seconds`` to appear.
6. **Record** it: the step record, and the journal mark of a destructive step.

On any failure nothing further starts; steps already running on other nodes finish.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from reconciler.apply.audit import AuditLog, Journal
from reconciler.apply.backup_files import SavedBackup, take_backup
from reconciler.apply.execution_result import ExecutionResult, StepRecord
from reconciler.apply.fact_check import check_facts, journal_guard
from reconciler.apply.live_view import LiveView
from reconciler.apply.locks.acquire import ClusterLock
from reconciler.apply.options import ExecutorOptions
from reconciler.apply.polling import wait_for_outcome, wait_for_result
from reconciler.apply.recording import audit_abandoned, audit_command, mark
from reconciler.apply.scheduling.order import is_cluster_step
from reconciler.apply.scheduling.readings import ReadingCache
from reconciler.apply.scheduling.schedule import Schedule
from reconciler.common.errors import (
    FactsChangedError,
    ReconcilerError,
    StepAbandonedError,
    StepFailedError,
    TransportError,
)
from reconciler.observe.snapshot_model import Observed
from reconciler.plan.model import ASYNC_ACTIONS, Action, Plan, Step
from reconciler.spec.model import ClusterSpec
from reconciler.transport.interface import NodeSession, Transport, target_for

log = structlog.get_logger(__name__)


class Executor:
    def __init__(
        self,
        spec: ClusterSpec,
        transport: Transport,
        *,
        observed: Observed,
        audit: AuditLog,
        journal: Journal,
        lock: ClusterLock | None = None,
        options: ExecutorOptions | None = None,
        progress: Callable[[str], None] | None = None,
        stop: asyncio.Event | None = None,
        observed_fresh: bool = False,
    ) -> None:
        """``stop``: once set, no further step starts; steps already running finish
        (SIGTERM/SIGINT in `apply` and `watch`: finish the current step, then stop).
        ``observed_fresh``: ``observed`` was read by this run just now (no confirmation
        prompt or other pause since): each node's first step re-uses it as its re-read."""
        self.spec = spec
        self.stop = stop
        self.transport = transport
        self._view = LiveView(spec, transport, observed)  # holds ``observed``, re-reads
        self.audit = audit
        self.journal = journal
        self.lock = lock
        self.options = options or ExecutorOptions()
        self.action_timeout = self.options.action_timeout or spec.policy.action_timeout_seconds
        self._progress = progress or (lambda _line: None)
        self._result = ExecutionResult(observed=observed)
        self._readings = ReadingCache()  # re-use of a reading by the node's next step
        self._observed_fresh = observed_fresh
        self._schedule: Schedule | None = None  # the running plan's (for the look-ahead)
        self._backups: dict[str, SavedBackup] = {}  # step id -> what its backup saved

    @property
    def observed(self) -> Observed:
        """The cluster as this run last read it: the observation it started from,
        updated by every re-read."""
        return self._view.observed

    @observed.setter
    def observed(self, value: Observed) -> None:
        self._view.observed = value

    # ------------------------------------------------------------------ driver
    async def execute(self, plan: Plan) -> ExecutionResult:
        steps = list(plan.steps)
        if steps and self._result.error is None:
            self._schedule = Schedule(self.spec, self.observed, steps)
            if self._observed_fresh:
                self._readings.seed(self.observed, steps)
            await self._schedule.run(self._run_one)
        self._result.observed = self.observed
        return self._result

    async def _run_one(self, step: Step) -> None:
        if self._result.error is not None:
            return
        if self.stop is not None and self.stop.is_set():
            if not self._result.stopped:
                self._progress(f"stop requested: {step.id} and later steps not started")
            self._result.stopped = True
            return
        if self.lock is not None:
            self.lock.verify()  # LockLostError: stop before this step (the lock's backend)
        started = time.monotonic()
        label = step.command or f"upload {step.upload.remote_name if step.upload else '?'}"
        self._progress(f"[{step.id}] {step.node}: {label} ...")
        try:
            await self._step(step)
        except FactsChangedError as exc:
            self._fail(step, exc, "drift", started)
            return
        except (StepFailedError, TransportError) as exc:
            self._fail(step, exc, "failed", started)
            return
        except StepAbandonedError as exc:
            seconds = time.monotonic() - started
            self._result.records.append(StepRecord(step, "abandoned", seconds, str(exc)))
            audit_abandoned(self.audit, step, exc, seconds)
            self._result.stopped = True
            self._progress(f"[{step.id}] {step.node}: STOPPED: {exc}")
            return
        seconds = time.monotonic() - started
        saved = self._backups.pop(step.id, None)
        detail = saved.describe() if saved is not None else ""
        self._result.records.append(StepRecord(step, "done", seconds, detail))
        self._progress(
            f"[{step.id}] {step.node}: done ({seconds:.1f}s)" + (f": {detail}" if detail else "")
        )

    def _fail(self, step: Step, exc: ReconcilerError, outcome: str, started: float) -> None:
        seconds = time.monotonic() - started
        self._result.records.append(StepRecord(step, outcome, seconds, str(exc)))
        if self._result.error is None:
            self._result.error = exc
            self._result.failed_step = step
        self._progress(f"[{step.id}] {step.node}: {outcome.upper()}: {exc}")
        log.error("step stopped the apply", step=step.id, node=step.node, outcome=outcome)

    # ------------------------------------------------------------- one step
    async def _step(self, step: Step) -> None:
        marks = [time.monotonic()]
        await check_facts(step, self._view, self._readings, self.options)
        marks.append(time.monotonic())
        if step.destructive:
            journal_guard(step, self.journal, self.observed)
            mark(self.journal, "started", step)
        try:
            await self._perform(step)
            marks.append(time.monotonic())
            shown = None
            if step.action in ASYNC_ACTIONS:
                shown = await wait_for_result(
                    step,
                    self._view,
                    self._readings,
                    self._schedule,
                    options=self.options,
                    action_timeout=self.action_timeout,
                    stop=self.stop,
                    progress=self._progress,
                )
            marks.append(time.monotonic())
            if step.action is not Action.BACKUP:  # its outcome is the files it downloaded
                await wait_for_outcome(step, shown, self._view, self._readings, self.options)
            marks.append(time.monotonic())
            log.debug(
                "step timing",
                step=step.id,
                node=step.node,
                check=round(marks[1] - marks[0], 3),
                run=round(marks[2] - marks[1], 3),
                wait=round(marks[3] - marks[2], 3),
                outcome=round(marks[4] - marks[3], 3),
            )
        except (StepFailedError, TransportError):
            if step.destructive:
                mark(self.journal, "failed", step)
            raise
        if step.destructive:
            mark(self.journal, "completed", step)

    async def _perform(self, step: Step) -> None:
        target = target_for(self.spec, step.node)
        session = await self.transport.session(target)
        started = time.monotonic()
        clustered = self._schedule.clustered if self._schedule is not None else frozenset()
        self._readings.count_sent(step, cluster_step=is_cluster_step(step, clustered))
        if step.action is Action.UPLOAD:
            if step.upload is None:
                raise StepFailedError("upload step without a file", node=step.node, step_id=step.id)
            what = f"sftp put {step.upload.remote_name}"
            try:
                await session.upload(step.upload.local_path, step.upload.remote_name)
            except TransportError as exc:
                audit_command(self.audit, step, what, exc, started)
                raise
            audit_command(self.audit, step, what, None, started)
            return
        if step.action is Action.BACKUP:
            await self._backup(step, session, started)
            return
        command = step.command or ""
        try:
            output = await session.run(command, stdin="Y\n" if step.confirm else None)
        except TransportError as exc:
            audit_command(self.audit, step, command, exc, started)
            raise
        audit_command(self.audit, step, command, None, started, exit_status=output.exit_status)

    async def _backup(self, step: Step, session: NodeSession, started: float) -> None:
        """`backup snapshot`, then its files downloaded (:mod:`reconciler.apply.backup_files`)."""
        command = step.command or ""
        if self.options.backup_dir is None:
            raise StepFailedError(
                "no backup directory is configured: the backup cannot be kept",
                node=step.node,
                step_id=step.id,
            )
        try:
            output, saved = await take_backup(
                session,
                step,
                self.options.backup_dir,
                self.spec.cluster,
                self.spec.policy.backups.keep,
            )
        except TransportError as exc:
            audit_command(self.audit, step, command, exc, started)
            raise
        except StepFailedError:
            audit_command(self.audit, step, command, None, started, exit_status=1)
            raise
        audit_command(self.audit, step, command, None, started, exit_status=output.exit_status)
        self._backups[step.id] = saved
