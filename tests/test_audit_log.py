"""Audit log and destructive-step journal: JSON lines, appended, survive torn lines."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.apply.audit import AuditLog, Journal, audit_path, journal_path


def test_audit_records_are_json_lines(tmp_path: Path) -> None:
    log = AuditLog(audit_path(tmp_path, "lab"), cluster="lab", run_id="r1")
    log.record(
        node="cms1",
        command="database cluster localnode a",
        result="ok",
        duration=0.123456,
        step="s01",
        exit_status=0,
    )
    log.record(
        node="cms2",
        command="database cluster join 10.0.0.1",
        result="failed",
        duration=2.5,
        step="s02",
        exit_status=1,
        detail="FAILURE: x" * 100,
    )
    lines = (tmp_path / "lab.audit.jsonl").read_text().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["node"] == "cms1" and first["result"] == "ok" and first["duration_s"] == 0.123
    assert first["command"] == "database cluster localnode a" and "time" in first
    assert second["result"] == "failed" and len(second["detail"]) == 300
    # appended by a later run, not overwritten
    AuditLog(log.path, cluster="lab", run_id="r2").record(
        node="cms1", command="database cluster status", result="ok", duration=0.1
    )
    assert [e["run_id"] for e in log.entries()] == ["r1", "r1", "r2"]


def test_journal_last_event_and_torn_line(tmp_path: Path) -> None:
    journal = Journal(journal_path(tmp_path, "lab"), cluster="lab", run_id="r1")
    journal.mark("started", step="s03", node="cms2", command="database cluster remove")
    with journal.path.open("a") as fh:
        fh.write('{"torn": ')  # a crash in the middle of a write
    journal.mark("completed", step="s03", node="cms2", command="database cluster remove")
    last = journal.last_event("cms2", "database cluster remove")
    assert last is not None and last["event"] == "completed"
    assert journal.last_event("cms3", "database cluster remove") is None
    assert len(journal.entries()) == 2
