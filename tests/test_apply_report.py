"""`reconcile apply --format json` (issue 13, point 4): the document, for every way a run
ends, matches its own JSON Schema (schemas/apply-output.schema.json). A real apply's
document is checked end to end in tests/e2e/test_e2e_basic.py."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from reconciler.apply.database_view import DbView, ReplicaStream
from reconciler.apply.execution_result import StepRecord
from reconciler.cli.apply_report import ApplyReport
from reconciler.plan.model import Action, Blocked, Step
from reconciler.plan.verdict import ClusterVerdict, Verdict

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "schemas" / "apply-output.schema.json").read_text("utf-8"))
JOIN = Step(
    id="s03",
    node="cms-2",
    action=Action.JOIN,
    command="database cluster join 10.0.0.1",
    reason="join the master",
)


def _report(**changes: object) -> ApplyReport:
    report = ApplyReport("emea", say=lambda _line: None)
    for key, value in changes.items():
        setattr(report, key, value)
    return report


@pytest.mark.parametrize(
    ("report", "code"),
    [
        (_report(), 0),
        (
            _report(
                outcome="applied",
                records=[StepRecord(JOIN, "done", 1.23456)],
                verdict=ClusterVerdict(Verdict.CONVERGED, ()),
                db=DbView(
                    "10.0.0.1",
                    True,
                    in_recovery=False,
                    replicas=(ReplicaStream("10.0.0.2", "streaming", "async", 0),),
                ),
            ),
            0,
        ),
        (
            _report(
                outcome="failed",
                records=[StepRecord(JOIN, "failed", 90.0, "did not finish")],
                error="'database cluster join 10.0.0.1' on cms-2 did not finish within 90s",
            ),
            1,
        ),
        (
            _report(
                verdict=ClusterVerdict(Verdict.NO_MASTER, ("no node reports a master",)),
                held_back=(Blocked(node="cms-1", reason="cms-1 is unreachable"),),
            ),
            2,
        ),
    ],
)
def test_every_ending_matches_the_schema(report: ApplyReport, code: int) -> None:
    document = json.loads(report.to_json(code))
    jsonschema.validate(document, SCHEMA)
    assert document["exit_code"] == code
    assert [s["duration_seconds"] for s in document["steps"]] in ([], [1.235], [90.0])
