"""What `reconcile apply --format json` prints: one document after the run.

While it runs, every human line (the plan, progress, the diagnosis) goes to stderr; the
document on stdout says what was run (each step with its outcome and duration), the
verdict, what is held back and the database's own view
(``schemas/apply-output.schema.json``). When apply refuses to start (a bad spec, a lock
held, a stale saved plan) there is no document: the error is on stderr and the exit is 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reconciler.apply.database_view import DbView
from reconciler.apply.execution_result import StepRecord
from reconciler.plan.model import Blocked
from reconciler.plan.verdict import ClusterVerdict

APPLY_FORMAT_VERSION = 1


@dataclass
class ApplyReport:
    """Filled in as the run goes; ``say`` prints a human line (stdout, or stderr for JSON)."""

    cluster: str
    say: Callable[[str], None]
    # applied | nothing to do | cancelled | stopped | facts changed | failed
    outcome: str = "nothing to do"
    records: list[StepRecord] = field(default_factory=list)
    error: str | None = None
    verdict: ClusterVerdict | None = None
    db: DbView | None = None
    held_back: tuple[Blocked, ...] = ()

    def to_dict(self, exit_code: int) -> dict[str, Any]:
        return {
            "format_version": APPLY_FORMAT_VERSION,
            "cluster": self.cluster,
            "exit_code": exit_code,
            "outcome": self.outcome,
            "error": self.error,
            "steps": [
                {
                    "id": r.step.id,
                    "node": r.step.node,
                    "action": r.step.action.value,
                    "command": r.step.command,
                    "destructive": r.step.destructive,
                    "outcome": r.outcome,
                    "duration_seconds": round(r.seconds, 3),
                    "detail": r.detail,
                }
                for r in self.records
            ],
            "verdict": None
            if self.verdict is None
            else {"verdict": self.verdict.verdict.value, "reasons": list(self.verdict.reasons)},
            "held_back": [{"node": b.node, "reason": b.reason} for b in self.held_back],
            "database_view": None if self.db is None else _db(self.db),
        }

    def to_json(self, exit_code: int) -> str:
        return json.dumps(self.to_dict(exit_code), indent=2) + "\n"


def _db(db: DbView) -> dict[str, Any]:
    return {
        "master": db.master_address,
        "reachable": db.reachable,
        "error": db.error,
        "in_recovery": db.in_recovery,
        "replicas": [
            {
                "address": r.address,
                "state": r.state,
                "sync_state": r.sync_state,
                "lag_bytes": r.lag_bytes,
            }
            for r in db.replicas
        ],
    }
