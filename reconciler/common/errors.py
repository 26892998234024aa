"""The project's exception tree. Library errors are mapped to these at the boundary.

ReconcilerError
├── SpecError                 bad spec / snapshot / plan file (exit 1, nothing touched)
├── PlanError                 planning refused (e.g. stale saved plan)
│   └── StalePlanError        a saved plan's facts changed; carries the changed facts
├── FactsChangedError                a step's facts changed just before it ran (executor stops)
├── StepFailedError           a step ran but failed or did not reach its expected outcome
├── LockHeldError             another apply holds the cluster lock
│   ├── StaleLockError        a dead holder's file lock: needs --break-lock
│   └── LockLostError         this run no longer holds its lock (stops before the next step)
└── TransportError            talking to a node failed
    ├── UnreachableError      connect refused / timed out          (retryable)
    ├── CommandTimeoutError   a command or poll timed out           (retryable)
    ├── IncompleteOutputError the channel closed without an exit status (retryable)
    ├── AuthFailedError       wrong password / key                  (permanent)
    ├── HostKeyError          unknown or changed host key           (permanent)
    └── CommandFailedError    the MMP answered FAILURE / non-zero   (permanent)
"""

from __future__ import annotations


class ReconcilerError(Exception):
    """Root of every error this project raises on purpose."""

    retryable: bool = False


class SpecError(ReconcilerError):
    """A spec, snapshot or plan file is invalid; carries its diagnostics."""

    def __init__(self, message: str, diagnostics: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics


class PlanError(ReconcilerError):
    pass


class StalePlanError(PlanError):
    def __init__(self, message: str, changed: tuple[str, ...]) -> None:
        super().__init__(message)
        self.changed = changed


class FactsChangedError(ReconcilerError):
    def __init__(self, message: str, changed: tuple[str, ...]) -> None:
        super().__init__(message)
        self.changed = changed


class StepFailedError(ReconcilerError):
    """A step ran but the MMP refused it, it timed out, or the expected outcome did not appear."""

    def __init__(self, message: str, *, node: str, step_id: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.node = node
        self.step_id = step_id
        self.retryable = retryable


class StepAbandonedError(ReconcilerError):
    """A stop was requested while an asynchronous command was polled: the wait was given up;
    the command keeps running on the node."""

    def __init__(self, message: str, *, node: str, step_id: str) -> None:
        super().__init__(message)
        self.node = node
        self.step_id = step_id


class LockHeldError(ReconcilerError):
    pass


class StaleLockError(LockHeldError):
    """A file lock whose holder is gone or expired: refused until ``--break-lock``."""


class LockLostError(LockHeldError):
    """The lock this run held was lost (lease expired, key deleted, session ended, file
    replaced): no further step may start. Not retryable."""


class TransportError(ReconcilerError):
    def __init__(self, node: str, message: str) -> None:
        super().__init__(f"{node}: {message}")
        self.node = node
        self.detail = message


class UnreachableError(TransportError):
    retryable = True


class CommandTimeoutError(TransportError):
    retryable = True


class IncompleteOutputError(TransportError):
    """A command whose channel closed without an exit status: its output may be cut."""

    retryable = True


class AuthFailedError(TransportError):
    pass


class HostKeyError(TransportError):
    pass


class CommandFailedError(TransportError):
    def __init__(self, node: str, command: str, output: str, exit_status: int | None) -> None:
        super().__init__(node, f"{command!r} failed (exit {exit_status}): {output.strip()[:500]}")
        self.command = command
        self.output = output
        self.exit_status = exit_status
