"""What the executor writes down: an audit-log entry for every command and upload a step
sends (and for a step abandoned at a stop), and the journal marks of destructive steps."""

from __future__ import annotations

import time

from reconciler.apply.audit import AuditLog, Journal
from reconciler.common.errors import (
    CommandFailedError,
    CommandTimeoutError,
    StepAbandonedError,
    TransportError,
)
from reconciler.plan.model import Step


def audit_command(
    audit: AuditLog,
    step: Step,
    command: str,
    error: TransportError | None,
    started: float,
    *,
    exit_status: int | None = None,
) -> None:
    """The audit entry of ``command`` (or ``sftp put <name>``) sent at ``started``:
    ok, or how it failed (timeout, failed with its exit status, unreachable)."""
    if error is None:
        result = "ok"
    elif isinstance(error, CommandTimeoutError):
        result = "timeout"
    elif isinstance(error, CommandFailedError):
        result = "failed"
        exit_status = error.exit_status
    else:
        result = "unreachable"
    audit.record(
        node=step.node,
        command=command,
        result=result,
        duration=time.monotonic() - started,
        step=step.id,
        exit_status=exit_status,
        detail=error.detail if error is not None else None,
    )


def audit_abandoned(audit: AuditLog, step: Step, exc: StepAbandonedError, seconds: float) -> None:
    """The audit entry of a step whose wait was given up at a stop request."""
    audit.record(
        node=step.node,
        command=step.command or "",
        result="abandoned",
        duration=seconds,
        step=step.id,
        exit_status=None,
        detail=str(exc),
    )


def mark(journal: Journal, event: str, step: Step) -> None:
    """Journal ``event`` (started, completed, failed) of a destructive step."""
    journal.mark(event, step=step.id, node=step.node, command=step.command or "")
