"""What a plan made by a command was made from: :func:`with_local_revision`.

``reconcile plan``, ``apply`` and ``recover`` run on a spec file, not on a git source; their
plans say "revision: working tree", with the commit of the checkout the file is in and
"(modified)" when the spec or a file it names differs from it
(:func:`reconciler.source.working_tree.local_revision`). The plan header shows it, a saved
plan keeps it, and the audit log and journal of an apply record it.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.plan.model import Plan
from reconciler.source.working_tree import local_revision
from reconciler.spec.loader import LoadedSpec, read_local_files


def with_local_revision(plan: Plan, loaded: LoadedSpec) -> Plan:
    """``plan`` naming the local revision of ``loaded`` (its spec file and the files it names)."""
    related = [Path(f.local_path) for f in read_local_files(loaded).values()]
    return plan.model_copy(update={"revision": local_revision(loaded.path, related)})
