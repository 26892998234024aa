"""What a watch cycle reports: its :class:`CycleSummary`, the log lines, the metrics.

Every cycle of a :class:`reconciler.watch.loop.ClusterLoop` ends with one summary
line (:func:`log_summary`; ``policy.paused`` says so in every line) and feeds the
same summary to the metrics (:class:`MetricsRecorder`). The plan's drift and steps
are logged only when they change (:class:`PlanLog`), not every cycle. Every summary line
names the revision the cycle planned from (``revision``: the short sha of a git source's
commit, or ``working tree``) and the digest of the spec version (``digest``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from reconciler.plan.model import Plan
from reconciler.watch.decision import Mode
from reconciler.watch.metrics import WatchMetrics
from reconciler.watch.runner_interface import ClusterRunner, SpecVersion

log = structlog.get_logger("reconciler.watch")


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
    revision: str | None = None  # the short sha, or "working tree"
    applied_revision: str | None = None  # full sha the cluster is known to be at after it
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
        if self.revision:
            fields["revision"] = self.revision
        if self.digest:
            fields["digest"] = self.digest[:12]
        return fields


def log_summary(s: CycleSummary) -> None:
    """The cycle's summary line: a warning when it did not go as it should."""
    event = "cycle PAUSED (policy.paused: observe and report only)" if s.paused else "cycle"
    fields = s.log_fields()
    if s.outcome != "ok" or s.failed:
        log.warning(event, **fields)
    else:
        log.info(event, **fields)


class PlanLog:
    """Logs a cluster's drift and planned steps when they change, not every cycle."""

    def __init__(self) -> None:
        self._last_signature: tuple[object, ...] | None = None

    def forget(self) -> None:
        """A new spec version: log its next plan even if it is the same."""
        self._last_signature = None

    def log_if_new(self, cluster: str, plan: Plan) -> None:
        signature = (
            plan.drift,
            tuple((s.node, s.action, s.command) for s in plan.steps),
            tuple(b.reason for b in plan.blocked),
        )
        if signature == self._last_signature:
            return
        self._last_signature = signature
        if not plan.steps and not plan.drift and not plan.blocked:
            log.info("no drift", cluster=cluster)
            return
        for line in plan.drift:
            log.info("drift", cluster=cluster, detail=line)
        for step in plan.steps:
            log.info(
                "planned step",
                cluster=cluster,
                step=step.id,
                node=step.node,
                action=step.action.value,
                command=step.command,
                destructive=step.destructive,
                procedure=step.procedure,
            )
        for blocked in plan.blocked:
            log.warning("blocked", cluster=cluster, node=blocked.node, reason=blocked.reason)
        for warning in plan.warnings:
            log.warning("plan warning", cluster=cluster, detail=warning)


class MetricsRecorder:
    """Feeds each cycle's summary of one loop to the metrics.

    When the watched file comes to name another cluster, the old cluster's series go."""

    def __init__(self, metrics: WatchMetrics) -> None:
        self.metrics = metrics
        self._cluster: str | None = None

    def record(
        self,
        s: CycleSummary,
        current: SpecVersion | None,
        runner: ClusterRunner,
        now: Callable[[], datetime],
    ) -> None:
        m = self.metrics
        if self._cluster not in (None, s.cluster):
            m.forget_cluster(self._cluster)  # the file now names another cluster
        self._cluster = s.cluster
        if s.planned or current is None:
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
        if s.applied_revision is not None:
            m.set_applied_revision(s.cluster, s.applied_revision)
        if current is not None:
            try:
                days = runner.certificate_days(current, now())
            except OSError as exc:
                log.warning("certificate expiry not readable", cluster=s.cluster, error=str(exc))
            else:
                m.set_certificate_days(s.cluster, days)
