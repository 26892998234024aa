"""The revision a cluster was last applied at, as ``reconcile status`` reads it back.

Two records in the state directory say it:

* ``<cluster>.revision.json``, written by ``watch --git`` when an apply of a commit ran to
  completion or a cycle found the cluster converged at it (also after a commit that did not
  touch this cluster's spec): the commit (:class:`reconciler.source.revision.Revision`),
  when, and how (``applied`` / ``converged``); replaced whole, never half-written;
* the audit log's last record (:mod:`reconciler.apply.audit`): every record names the
  revision its plan was made from (a full sha, or a local description).

:func:`last_applied` is the newer of the two.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.apply.audit import audit_path, read_records
from reconciler.common.file_limits import FileReadError, read_text_bounded
from reconciler.common.private_files import write_private_text
from reconciler.source.revision import Revision

RECORD_LIMIT = 64 * 1024


@dataclass(frozen=True)
class AppliedRevision:
    """What a cluster was last applied or found converged at."""

    revision: str  # a full sha, or the local description ("revision: working tree at ...")
    at: str  # ISO 8601, UTC
    how: str  # applied / converged (watch), or the audit record's result (ok, failed, ...)
    commit: Revision | None = None  # who made it and why (watch --git)
    run_id: str | None = None

    def describe(self) -> str:
        return self.commit.describe() if self.commit is not None else self.revision


def revision_path(state_dir: Path, cluster: str) -> Path:
    return state_dir / f"{cluster}.revision.json"


def write_applied_revision(state_dir: Path, cluster: str, commit: Revision, how: str) -> None:
    """The cluster is at ``commit`` (``how``: applied or converged)."""
    record = {
        "cluster": cluster,
        "revision": commit.sha,
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "how": how,
        "commit": commit.to_dict(),
    }
    write_private_text(revision_path(state_dir, cluster), json.dumps(record, indent=2) + "\n")


def _from_file(state_dir: Path, cluster: str) -> AppliedRevision | None:
    try:
        data: Any = json.loads(
            read_text_bounded(revision_path(state_dir, cluster), RECORD_LIMIT, "revision record")
        )
        commit = Revision.from_dict(data["commit"]) if data.get("commit") else None
        return AppliedRevision(str(data["revision"]), str(data["at"]), str(data["how"]), commit)
    except (FileReadError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # missing, or not one of ours: the audit log still says something


def _from_audit(state_dir: Path, cluster: str) -> AppliedRevision | None:
    found = None
    for record in read_records(audit_path(state_dir, cluster)):
        if record.get("revision"):
            found = record
    if found is None:
        return None
    return AppliedRevision(
        str(found["revision"]),
        str(found.get("time", "")),
        str(found.get("result", "")),
        run_id=str(found["run_id"]) if found.get("run_id") else None,
    )


def _when(record: AppliedRevision) -> datetime:
    try:
        when = datetime.fromisoformat(record.at.replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def last_applied(state_dir: Path, cluster: str) -> AppliedRevision | None:
    """The newer of the revision record and the audit log's last record naming a revision."""
    found = [r for r in (_from_file(state_dir, cluster), _from_audit(state_dir, cluster)) if r]
    return max(found, key=_when) if found else None
