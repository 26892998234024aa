"""`reconcile watch`: one level-triggered loop per cluster, and the supervisor over them.

Every cycle of a :class:`ClusterLoop` reloads the spec file, observes the
cluster, plans, decides what may be applied (:func:`decide`), applies it in
heal mode, and logs one summary line. Cycles run on a fixed cadence with
jitter and are woken early (:meth:`ClusterLoop.wake`) when the spec or a file
it names changes. All I/O goes through a :class:`ClusterRunner`, so the loop's
decisions are unit-tested with an injected fake.

Invariants (also in ``docs/watch.md``):

* A cycle is sequential: the loop never re-plans a cluster while an apply on
  it runs; a wake-up during an apply starts the next cycle right after it.
* An invalid spec is reported with every diagnostic and the last valid one
  stays in force; nothing is ever planned or applied from an invalid spec.
* A failed apply backs off exponentially (capped) for that spec revision; a
  newer revision (different digest) replaces pending retries and starts afresh.
* In heal mode, when ``policy.maintenance_windows`` are set and now is outside
  all of them, nothing from the first destructive or master-move step on is
  applied: the steps before it are applied, the rest is reported as pending.
* ``policy.paused`` observes and reports only, and every summary line says so.
* Stopping (SIGTERM/SIGINT) sets a flag the executor checks between steps:
  the current step finishes, the lock is released, the loop ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import structlog

from reconciler.common.diagnostics import Diagnostic
from reconciler.common.errors import ReconcilerError, SpecError
from reconciler.observe.snapshot_model import Observed
from reconciler.plan.model import Plan, Step
from reconciler.spec.loader import LoadedSpec
from reconciler.watch.backoff import BackoffPolicy, RetryState, jittered
from reconciler.watch.decision import Decision, Mode, decide
from reconciler.watch.metrics import HealthState, WatchMetrics
from reconciler.watch.windows import destructive_allowed, next_window_opening

log = structlog.get_logger("reconciler.watch")

SUPERVISOR = "supervisor"


# --- what the loop needs from the outside world -------------------------------------


@dataclass(frozen=True)
class Revision:
    """A valid spec as loaded, with the digest that identifies this revision.

    ``digest`` covers the spec file and every file it names (a renewed certificate
    committed without a spec change is a new revision too).
    """

    loaded: LoadedSpec
    digest: str
    files: tuple[Path, ...] = ()  # local files the spec names (their directories are watched)

    @property
    def cluster(self) -> str:
        return self.loaded.spec.cluster


@dataclass(frozen=True)
class ApplyOutcome:
    applied: int  # steps that ran and reached their expected result
    failed: int  # steps that failed (0 or 1: the executor stops at the first failure)
    error: str | None = None  # why the apply stopped early, if it did
    lock_held: bool = False  # another apply holds the cluster lock: nothing was run
    drift: bool = False  # a step's facts changed before it ran: re-plan, not a failure
    stopped: bool = False  # the stop flag was seen between steps


class ClusterRunner(Protocol):
    """The loop's I/O: spec files, observation, planning, verdict, apply."""

    def load(self, path: Path) -> Revision:
        """Load and validate; raises SpecError with every diagnostic."""
        ...

    def fingerprint(self, path: Path, last: Revision | None) -> str:
        """Cheap digest of the spec file and the files ``last`` names (no validation).

        Contract: equals ``last.digest`` while neither changed since ``last`` was loaded."""
        ...

    async def observe(self, revision: Revision) -> Observed: ...

    def plan(self, revision: Revision, observed: Observed) -> Plan: ...

    def verdict(self, revision: Revision, observed: Observed, plan: Plan) -> str:
        """converged / drifted / degraded / no_master."""
        ...

    async def apply(
        self,
        revision: Revision,
        observed: Observed,
        plan: Plan,
        steps: tuple[Step, ...],
        stop: asyncio.Event,
    ) -> ApplyOutcome:
        """Run ``steps`` (a prefix of ``plan.steps``) under the cluster lock.

        Checks ``stop`` between steps and returns with ``stopped`` when set."""
        ...

    def certificate_days(self, revision: Revision, now: datetime) -> dict[str, float]:
        """Days until each certificate file the spec names expires."""
        ...

    async def close(self) -> None:
        """The loop ends: release connections kept between cycles."""
        ...


# --- configuration and results ------------------------------------------------------


@dataclass(frozen=True)
class WatchConfig:
    interval: float = 60.0
    mode: Mode = Mode.REPORT
    jitter: float = 0.1  # the cadence is spread by ±10 %
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    followup_delay: float = 2.0  # after an apply, look again this soon ...
    max_followups: int = 5  # ... at most this many times in a row


@dataclass(frozen=True)
class CycleSummary:
    """What one cycle did; logged as the summary line and fed to the metrics."""

    cluster: str
    verdict: str
    mode: Mode
    paused: bool
    spec_valid: bool
    in_window: bool
    pending: int = 0
    applied: int = 0
    failed: int = 0
    held_because: str | None = None
    outcome: str = "ok"  # ok / invalid_spec / observe_failed / plan_failed / apply_failed
    digest: str | None = None
    duration: float = 0.0
    planned: bool = False  # observation and planning succeeded
    applied_anything: bool = False

    def log_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "cluster": self.cluster,
            "verdict": self.verdict,
            "mode": self.mode.value,
            "pending": self.pending,
            "applied": self.applied,
            "failed": self.failed,
            "paused": self.paused,
            "duration_s": round(self.duration, 3),
            "outcome": self.outcome,
        }
        if not self.spec_valid:
            fields["spec"] = "INVALID: last valid spec in force"
        if self.held_because:
            fields["held"] = self.held_because
        if self.digest:
            fields["revision"] = self.digest[:12]
        return fields


def _short(digest: str | None) -> str | None:
    return digest[:12] if digest else None


# --- one cluster ---------------------------------------------------------------------


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
        self._claim = claim
        self._now = now
        self._monotonic = monotonic
        self._rand = rand
        self._wake = asyncio.Event()
        self.current: Revision | None = None  # the last valid revision: the one enforced
        self.retry = RetryState()
        self.applying = False
        self.cycles = 0
        self.last_summary: CycleSummary | None = None
        self._fingerprint: str | None = None
        self._reported_invalid: str | None = None  # fingerprint whose diagnostics were logged
        self._last_plan_signature: tuple[object, ...] | None = None
        self._followups = 0
        self._metrics_name: str | None = None

    # --- identity -------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The cluster's name once a valid spec was loaded, else the file's stem."""
        return self.current.cluster if self.current else self.path.stem

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
        try:
            return self.runner.fingerprint(self.path, self.current) != self._fingerprint
        except OSError:
            return True

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
        self._log_summary(summary)
        self._record(summary)
        self._beat()
        return summary

    async def _cycle(self) -> CycleSummary:
        spec_valid = self._reload()
        revision = self.current
        if revision is None:
            return self._summary(verdict="unknown", spec_valid=False, outcome="invalid_spec")
        spec = revision.loaded.spec
        windows = spec.policy.maintenance_windows
        now = self._now()
        destructive_ok = destructive_allowed(windows, now)
        base = self._summary(
            verdict="unknown",
            spec_valid=spec_valid,
            in_window=destructive_ok,
            digest=revision.digest,
        )
        observe_started = self._monotonic()
        try:
            observed = await self.runner.observe(revision)
        except (ReconcilerError, OSError) as exc:
            log.warning("observe failed", cluster=self.name, error=str(exc))
            return replace(base, outcome="observe_failed")
        observe_seconds = self._monotonic() - observe_started
        if self.metrics is not None:
            reachable = {n.name: observed.get(n.name).reachable for n in revision.loaded.spec.nodes}
            self.metrics.record_observation(self.name, observe_seconds, reachable)
        try:
            plan = self.runner.plan(revision, observed)
        except SpecError as exc:
            self._log_diagnostics("files named by the spec are unusable", exc)
            return replace(base, outcome="plan_failed")
        except ReconcilerError as exc:
            log.error("planning failed", cluster=self.name, error=str(exc))
            return replace(base, outcome="plan_failed")
        verdict = self.runner.verdict(revision, observed, plan)
        self._log_plan_if_new(plan)
        wait = self.retry.waiting(revision.digest, self._monotonic())
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
            return replace(summary, pending=len(plan.steps))
        return await self._apply(revision, observed, plan, decision, summary)

    async def _apply(
        self,
        revision: Revision,
        observed: Observed,
        plan: Plan,
        decision: Decision,
        summary: CycleSummary,
    ) -> CycleSummary:
        log.info(
            "applying",
            cluster=self.name,
            steps=[s.id for s in decision.to_apply],
            held=len(decision.pending),
            revision=_short(revision.digest),
        )
        self.applying = True
        heartbeat = asyncio.create_task(self._beat_while_applying())
        try:
            outcome = await self.runner.apply(
                revision, observed, plan, decision.to_apply, self.stop_event
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
                revision.digest, self._monotonic(), self.config.backoff, self._rand
            )
            log.error(
                "apply failed",
                cluster=self.name,
                error=outcome.error,
                failures=self.retry.failures,
                retry_in_s=round(self.retry.waiting(revision.digest, self._monotonic()), 1),
            )
            return replace(summary, outcome="apply_failed")
        if outcome.drift:
            log.warning(
                "apply stopped on drift; re-planning", cluster=self.name, detail=outcome.error
            )
            return replace(summary, applied_anything=True)
        self.retry = self.retry.succeeded(revision.digest)
        return summary

    # --- spec reloading -------------------------------------------------------------
    def _reload(self) -> bool:
        """Load the spec file; keep the last valid revision when it is invalid."""
        try:
            self._fingerprint = self.runner.fingerprint(self.path, self.current)
        except OSError:
            self._fingerprint = None
        try:
            revision = self.runner.load(self.path)
        except SpecError as exc:
            if self._reported_invalid != self._fingerprint or self._fingerprint is None:
                self._reported_invalid = self._fingerprint
                self._log_diagnostics("spec invalid", exc)
            return False
        if self._claim is not None:
            owner = self._claim(revision.cluster, self.path)
            if owner is not None:
                if self._reported_invalid != self._fingerprint:
                    self._reported_invalid = self._fingerprint
                    log.error(
                        "spec invalid: cluster already watched from another file",
                        cluster=revision.cluster,
                        file=str(self.path),
                        other=str(owner),
                        kept="last valid spec stays in force"
                        if self.current
                        else "nothing enforced",
                    )
                return False
        self._reported_invalid = None
        # What was loaded is what the next change check compares against.
        self._fingerprint = revision.digest
        for warning in revision.loaded.warnings:
            if self.current is None or self.current.digest != revision.digest:
                log.warning("spec warning", cluster=revision.cluster, diagnostic=warning.render())
        if self.current is None or self.current.digest != revision.digest:
            log.info(
                "spec loaded",
                cluster=revision.cluster,
                file=str(self.path),
                revision=_short(revision.digest),
                previous=_short(self.current.digest if self.current else None),
            )
            self._last_plan_signature = None
        self.current = revision
        return True

    def _log_diagnostics(self, event: str, exc: SpecError) -> None:
        kept = "last valid spec stays in force" if self.current else "nothing enforced yet"
        diagnostics: Sequence[object] = exc.diagnostics or (str(exc),)
        log.error(event, cluster=self.name, file=str(self.path), errors=len(diagnostics), kept=kept)
        for d in diagnostics:
            text = d.render() if isinstance(d, Diagnostic) else str(d)
            log.error("diagnostic", cluster=self.name, diagnostic=text)

    def _log_plan_if_new(self, plan: Plan) -> None:
        """Drift and steps are logged when they change, not every cycle."""
        signature = (
            plan.drift,
            tuple((s.node, s.action, s.command) for s in plan.steps),
            tuple(b.reason for b in plan.blocked),
        )
        if signature == self._last_plan_signature:
            return
        self._last_plan_signature = signature
        if not plan.steps and not plan.drift and not plan.blocked:
            log.info("no drift", cluster=self.name)
            return
        for line in plan.drift:
            log.info("drift", cluster=self.name, detail=line)
        for step in plan.steps:
            log.info(
                "planned step",
                cluster=self.name,
                step=step.id,
                node=step.node,
                action=step.action.value,
                command=step.command,
                destructive=step.destructive,
                procedure=step.procedure,
            )
        for blocked in plan.blocked:
            log.warning("blocked", cluster=self.name, node=blocked.node, reason=blocked.reason)
        for warning in plan.warnings:
            log.warning("plan warning", cluster=self.name, detail=warning)

    # --- reporting ------------------------------------------------------------------
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
        )

    def _log_summary(self, s: CycleSummary) -> None:
        event = "cycle PAUSED (policy.paused: observe and report only)" if s.paused else "cycle"
        fields = s.log_fields()
        if s.outcome != "ok" or s.failed:
            log.warning(event, **fields)
        else:
            log.info(event, **fields)

    def _record(self, s: CycleSummary) -> None:
        if self.metrics is None:
            return
        m = self.metrics
        if self._metrics_name not in (None, s.cluster):
            m.forget_cluster(self._metrics_name)  # the file now names another cluster
        self._metrics_name = s.cluster
        if s.planned or self.current is None:
            m.set_state(s.cluster, s.verdict)
        m.set_flags(s.cluster, paused=s.paused, spec_valid=s.spec_valid, in_window=s.in_window)
        m.record_cycle(
            s.cluster,
            outcome=s.outcome,
            pending=s.pending,
            applied=s.applied,
            failed=s.failed,
            success_time=time.time() if s.planned else None,
        )
        if self.current is not None:
            try:
                days = self.runner.certificate_days(self.current, self._now())
            except OSError as exc:
                log.warning("certificate expiry not readable", cluster=s.cluster, error=str(exc))
            else:
                m.set_certificate_days(s.cluster, days)
