"""`reconcile watch`: the level-triggered loop of one cluster, :class:`ClusterLoop`.

Every cycle of a :class:`ClusterLoop` reloads the spec file
(:class:`~reconciler.watch.spec_reload.SpecReloader`), observes the cluster,
plans, decides what may be applied (:func:`decide`), applies it in heal mode, and
reports the cycle (:mod:`reconciler.watch.cycle_report`). Cycles run on a fixed
cadence with jitter and are woken early (:meth:`ClusterLoop.wake`) when the spec
or a file it names changes. All I/O goes through a
:class:`~reconciler.watch.runner_interface.ClusterRunner`, so the loop's
decisions are unit-tested with an injected fake.

Invariants (also in ``docs/watch.md``):

* A cycle is sequential: the loop never re-plans a cluster while an apply on
  it runs; a wake-up during an apply starts the next cycle right after it.
* An invalid spec is reported with every diagnostic and the last valid one
  stays in force; nothing is ever planned or applied from an invalid spec.
* A failed apply backs off exponentially (capped) for that spec version; a
  newer version (different digest) replaces pending retries and starts afresh.
* In heal mode, when ``policy.maintenance_windows`` are set and now is outside
  all of them, nothing from the first destructive or master-move step on is
  applied: the steps before it are applied, the rest is reported as pending.
* ``policy.paused`` observes and reports only, and every summary line says so.
* Every summary line names the revision planned from; an applied plan takes it to the audit log.
* Stopping (SIGTERM/SIGINT) sets a flag the executor checks between steps:
  the current step finishes, the lock is released, the loop ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import structlog

from reconciler.common.errors import ReconcilerError, SpecError
from reconciler.observe.snapshot_model import Observed
from reconciler.plan.model import Plan
from reconciler.watch.backoff import BackoffPolicy, RetryState, jittered
from reconciler.watch.cycle_report import CycleSummary, MetricsRecorder, PlanLog, log_summary
from reconciler.watch.decision import Decision, Mode, decide
from reconciler.watch.metrics import HealthState, WatchMetrics
from reconciler.watch.runner_interface import ApplyOutcome, ClusterRunner, SpecVersion, short_digest
from reconciler.watch.spec_reload import SpecReloader
from reconciler.watch.spec_source import SpecSource
from reconciler.watch.windows import destructive_allowed, next_window_opening

log = structlog.get_logger("reconciler.watch")

SUPERVISOR = "supervisor"


@dataclass(frozen=True)
class WatchConfig:
    interval: float = 60.0
    mode: Mode = Mode.REPORT
    jitter: float = 0.1  # the cadence is spread by ±10 %
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    followup_delay: float = 2.0  # after an apply, look again this soon ...
    max_followups: int = 5  # ... at most this many times in a row


class ClusterLoop:
    """The level-triggered loop of one spec file (one cluster)."""

    def __init__(
        self,
        path: Path,
        runner: ClusterRunner,
        config: WatchConfig,
        *,
        metrics: WatchMetrics | None = None,
        health: HealthState | None = None,
        claim: Callable[[str, Path], Path | None] | None = None,
        source: SpecSource | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.path = path
        self.runner = runner
        self.config = config
        self.metrics = metrics
        self.health = health
        self.stop_event = asyncio.Event()
        self.spec_file = SpecReloader(path, runner, claim=claim, source=source)
        self._now = now
        self._monotonic = monotonic
        self._rand = rand
        self._wake = asyncio.Event()
        self.retry = RetryState()
        self.applying = False
        self.cycles = 0
        self.last_summary: CycleSummary | None = None
        self._plan_log = PlanLog()
        self._recorder = MetricsRecorder(metrics) if metrics is not None else None
        self._followups = 0
        self._noted: str | None = None  # the revision last noted in the state directory

    # --- identity -------------------------------------------------------------------
    @property
    def current(self) -> SpecVersion | None:
        """The last valid version: the one enforced."""
        return self.spec_file.current

    @property
    def name(self) -> str:
        """The cluster's name once a valid spec was loaded, else the file's stem."""
        return self.spec_file.name

    @property
    def health_key(self) -> str:
        return f"spec {self.path}"  # stable: the cluster's name is only known once loaded

    # --- control --------------------------------------------------------------------
    def wake(self) -> None:
        """Start the next cycle now (or right after the running one)."""
        self._wake.set()

    def stop(self) -> None:
        self.stop_event.set()
        self._wake.set()

    def files_changed(self) -> bool:
        """Has the spec file or a file it names changed since the last cycle read them?"""
        return self.spec_file.files_changed()

    # --- the loop -------------------------------------------------------------------
    async def run(self) -> None:
        self._beat()
        try:
            while not self.stop_event.is_set():
                summary = await self.cycle()
                if self.stop_event.is_set():
                    break
                await self._sleep(self._next_delay(summary))
        finally:
            await self.runner.close()

    def _next_delay(self, summary: CycleSummary) -> float:
        delay = jittered(self.config.interval, self.config.jitter, self._rand)
        if summary.applied_anything and self._followups < self.config.max_followups:
            # Converge without waiting a whole interval; bounded so a step that never
            # takes effect cannot spin.
            self._followups += 1
            delay = min(delay, self.config.followup_delay)
        elif not summary.applied_anything:
            self._followups = 0
        if self.current is not None:
            wait = self.retry.waiting(self.current.digest, self._monotonic())
            if wait > 0 and self.config.mode is Mode.HEAL:
                delay = min(delay, wait)
        return delay

    async def pause(self, seconds: float) -> None:
        """Sleep, ended early by a wake-up or stop."""
        await self._sleep(seconds)

    async def _sleep(self, seconds: float) -> None:
        if self._wake.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    async def _beat_while_applying(self) -> None:
        """Liveness during a long apply (the executor's own timeouts bound each step)."""
        while True:
            await asyncio.sleep(max(1.0, self.config.interval / 2))
            self._beat()

    def _beat(self) -> None:
        if self.health is not None:
            self.health.beat(self.health_key)

    # --- one cycle ------------------------------------------------------------------
    async def cycle(self) -> CycleSummary:
        """Reload, observe, plan, decide, (apply), summarize. Never raises ReconcilerError."""
        self._wake.clear()
        started = self._monotonic()
        self._beat()
        summary = await self._cycle()
        summary = replace(summary, duration=self._monotonic() - started)
        self.cycles += 1
        self.last_summary = summary
        log_summary(summary)
        if self._recorder is not None:
            self._recorder.record(summary, self.current, self.runner, self._now)
        if summary.applied_revision not in (None, self._noted) and self.current is not None:
            self._noted = summary.applied_revision
            self.runner.note_revision(self.current, "applied" if summary.applied else "converged")
        self._beat()
        return summary

    async def _cycle(self) -> CycleSummary:
        spec_valid = self._reload()
        version = self.current
        if version is None:
            return self._summary(verdict="unknown", spec_valid=False, outcome="invalid_spec")
        spec = version.loaded.spec
        windows = spec.policy.maintenance_windows
        now = self._now()
        destructive_ok = destructive_allowed(windows, now)
        base = self._summary(
            verdict="unknown",
            spec_valid=spec_valid,
            in_window=destructive_ok,
            digest=version.digest,
        )
        observe_started = self._monotonic()
        try:
            observed = await self.runner.observe(version)
        except (ReconcilerError, OSError) as exc:
            log.warning("observe failed", cluster=self.name, error=str(exc))
            return replace(base, outcome="observe_failed")
        observe_seconds = self._monotonic() - observe_started
        if self.metrics is not None:
            reachable = {n.name: observed.get(n.name).reachable for n in version.loaded.spec.nodes}
            self.metrics.record_observation(self.name, observe_seconds, reachable)
        try:
            plan = self.runner.plan(version, observed)
        except SpecError as exc:
            self.spec_file.log_diagnostics("files named by the spec are unusable", exc)
            return replace(base, outcome="plan_failed")
        except ReconcilerError as exc:
            log.error("planning failed", cluster=self.name, error=str(exc))
            return replace(base, outcome="plan_failed")
        verdict = self.runner.verdict(version, observed, plan)
        self._plan_log.log_if_new(self.name, plan)
        wait = self.retry.waiting(version.digest, self._monotonic())
        decision = decide(
            plan,
            mode=self.config.mode,
            paused=spec.policy.paused,
            destructive_ok=destructive_ok,
            backoff_wait=wait,
            next_window=None if destructive_ok else next_window_opening(windows, now),
        )
        summary = replace(
            base,
            verdict=verdict,
            pending=len(decision.pending),
            held_because=decision.held_because,
            planned=True,
        )
        if not decision.to_apply or self.stop_event.is_set():
            at = version.commit if verdict == "converged" and not plan.steps else None
            return replace(
                summary, pending=len(plan.steps), applied_revision=at.sha if at else None
            )
        return await self._apply(version, observed, plan, decision, summary)

    async def _apply(
        self,
        version: SpecVersion,
        observed: Observed,
        plan: Plan,
        decision: Decision,
        summary: CycleSummary,
    ) -> CycleSummary:
        origin = await self.spec_file.source.origin(version)
        plan = plan.model_copy(update={"revision": origin.describe(), "revision_sha": origin.sha})
        log.info(
            "applying",
            cluster=self.name,
            steps=[s.id for s in decision.to_apply],
            held=len(decision.pending),
            revision=origin.describe(),
            digest=short_digest(version.digest),
        )
        self.applying = True
        heartbeat = asyncio.create_task(self._beat_while_applying())
        try:
            outcome = await self.runner.apply(
                version, observed, plan, decision.to_apply, self.stop_event
            )
        except ReconcilerError as exc:
            outcome = ApplyOutcome(applied=0, failed=1, error=str(exc))
        finally:
            self.applying = False
            heartbeat.cancel()
        not_run = len(decision.to_apply) - outcome.applied
        pending = len(decision.pending) + not_run
        summary = replace(
            summary,
            applied=outcome.applied,
            failed=outcome.failed,
            pending=pending,
            applied_anything=outcome.applied > 0,
        )
        if outcome.lock_held:
            log.warning("apply skipped: lock held", cluster=self.name, detail=outcome.error)
            return replace(summary, held_because=f"lock held: {outcome.error}")
        if outcome.failed or (outcome.error and not outcome.drift and not outcome.stopped):
            self.retry = self.retry.failed(
                version.digest, self._monotonic(), self.config.backoff, self._rand
            )
            log.error(
                "apply failed",
                cluster=self.name,
                error=outcome.error,
                failures=self.retry.failures,
                retry_in_s=round(self.retry.waiting(version.digest, self._monotonic()), 1),
            )
            return replace(summary, outcome="apply_failed")
        if outcome.drift:
            log.warning(
                "apply stopped on drift; re-planning", cluster=self.name, detail=outcome.error
            )
            return replace(summary, applied_anything=True)
        self.retry = self.retry.succeeded(version.digest)
        complete = pending == 0 and not outcome.stopped and origin.sha is not None
        return replace(summary, applied_revision=origin.sha if complete else None)

    # --- spec reloading and reporting -----------------------------------------------
    def _reload(self) -> bool:
        """Reload the spec file (the last valid version stays when it is invalid)."""
        previous = self.spec_file.current
        valid = self.spec_file.reload()
        current = self.spec_file.current
        if current is not None and (previous is None or previous.digest != current.digest):
            self._plan_log.forget()  # a new version: its plan is logged even if unchanged
        return valid

    def _summary(
        self,
        *,
        verdict: str,
        spec_valid: bool,
        outcome: str = "ok",
        in_window: bool = True,
        digest: str | None = None,
    ) -> CycleSummary:
        paused = bool(self.current and self.current.loaded.spec.policy.paused)
        return CycleSummary(
            cluster=self.name,
            verdict=verdict,
            mode=self.config.mode,
            paused=paused,
            spec_valid=spec_valid,
            in_window=in_window,
            outcome=outcome,
            digest=digest,
            revision=self.spec_file.revision_label,
        )
