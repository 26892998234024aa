"""Append-only records of what apply did, as JSON lines in the state directory.

* ``<state-dir>/<cluster>.audit.jsonl`` — every executed command or upload:
  time, run id, step, node, command, result, exit status, duration.
* ``<state-dir>/<cluster>.journal.jsonl`` — destructive steps (started /
  completed / failed), read back by the executor so a re-run never repeats a
  destructive step whose effect is already observed.

Every record of both names the revision the plan was made from (``revision``: the full
sha of a git source's commit, or the local description, ``revision: working tree at
3f2a9c1 '...'``), set when the log is made for a run.

Lines are written with one ``write`` of a complete line and flushed, so a
killed apply leaves at most a missing last line, never a torn one in the
middle. Command output is not stored (the MMP never prints secrets, but a
short excerpt of a failure is kept to explain it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.common.private_files import open_private_append, private_dir


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _append(path: Path, record: dict[str, Any]) -> None:
    if not path.parent.is_dir():  # apply and watch prepare it; a bare AuditLog may not
        private_dir(path.parent)
    line = json.dumps(record, sort_keys=True, default=str) + "\n"
    with os.fdopen(open_private_append(path), "ab") as fh:
        if os.fstat(fh.fileno()).st_size > 0:  # a line torn by a crash: start on a fresh line
            with path.open("rb") as check:
                check.seek(-1, os.SEEK_END)
                if check.read(1) != b"\n":
                    line = "\n" + line
        fh.write(line.encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of an audit log or journal (a line torn by a crash is skipped)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by a crash
        if isinstance(record, dict):
            yield record


def audit_path(state_dir: Path, cluster: str) -> Path:
    return state_dir / f"{cluster}.audit.jsonl"


def journal_path(state_dir: Path, cluster: str) -> Path:
    return state_dir / f"{cluster}.journal.jsonl"


@dataclass
class AuditLog:
    path: Path
    cluster: str
    run_id: str
    revision: str | None = None  # what the plan was made from: a full sha, or the local text

    def record(
        self,
        *,
        node: str,
        command: str,
        result: str,
        duration: float,
        step: str | None = None,
        exit_status: int | None = None,
        detail: str | None = None,
    ) -> None:
        """``result``: ok | failed | timeout | unreachable | abandoned."""
        entry: dict[str, Any] = {
            "time": _now_iso(),
            "cluster": self.cluster,
            "run_id": self.run_id,
            "revision": self.revision,
            "step": step,
            "node": node,
            "command": command,
            "result": result,
            "exit_status": exit_status,
            "duration_s": round(duration, 3),
        }
        if detail:
            entry["detail"] = detail[:300]
        _append(self.path, entry)

    def entries(self) -> list[dict[str, Any]]:
        return list(read_records(self.path))


@dataclass
class Journal:
    path: Path
    cluster: str
    run_id: str
    revision: str | None = None  # as AuditLog.revision

    def mark(self, event: str, *, step: str, node: str, command: str) -> None:
        """``event``: started | completed | failed."""
        _append(
            self.path,
            {
                "time": _now_iso(),
                "cluster": self.cluster,
                "run_id": self.run_id,
                "revision": self.revision,
                "event": event,
                "step": step,
                "node": node,
                "command": command,
            },
        )

    def entries(self) -> list[dict[str, Any]]:
        return list(read_records(self.path))

    def last_event(self, node: str, command: str) -> dict[str, Any] | None:
        """The most recent journal entry for this exact destructive command on this node."""
        found: dict[str, Any] | None = None
        for entry in read_records(self.path):
            if entry.get("node") == node and entry.get("command") == command:
                found = entry
        return found
