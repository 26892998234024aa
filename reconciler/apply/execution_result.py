"""What an apply did: a record per step, and the run's result (its error, its last observation)."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.common.errors import ReconcilerError
from reconciler.observe.snapshot_model import Observed
from reconciler.plan.model import Step


@dataclass
class StepRecord:
    step: Step
    outcome: str  # done | failed | drift | abandoned (stopped while its command ran)
    seconds: float
    detail: str = ""


@dataclass
class ExecutionResult:
    records: list[StepRecord] = field(default_factory=list)
    error: ReconcilerError | None = None
    failed_step: Step | None = None
    observed: Observed = field(default_factory=Observed)
    stopped: bool = False  # a stop was requested; steps not yet started were not run

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def done(self) -> list[Step]:
        return [r.step for r in self.records if r.outcome == "done"]
