"""The revision line of a run from a spec file: is the file in a git checkout, at which
commit, and does it differ from it.

``reconcile plan``/``apply`` run on a file, not on a git source; they still say what they
planned from (:func:`local_revision`): "revision: working tree" when git is not installed or
the file is not in a checkout (or git refuses it, e.g. a checkout owned by another user),
otherwise the checkout's ``HEAD`` commit, with "(modified)" when the spec file, or one of
the ``related`` files it names, differs from that commit (changed, staged, untracked or ignored).
Git runs with the clean environment of :mod:`reconciler.source.git_command` and
``core.fsmonitor`` off, so looking never runs a command the checkout's configuration names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.source.git_command import GitError, run_git
from reconciler.source.revision import (
    LOG_FORMAT,
    Revision,
    describe_local,
    parse_log_record,
)

LOCAL_TIMEOUT = 10.0
_CONFIG = {"core.fsmonitor": "false", "core.untrackedCache": "false"}


@dataclass(frozen=True)
class LocalRevision:
    """The commit a local spec file is at (None outside a checkout) and whether it differs."""

    commit: Revision | None
    modified: bool

    def describe(self) -> str:
        return describe_local(self.commit, self.modified)


def _git(top: Path, *args: str) -> str:
    return run_git(args, cwd=top, config=_CONFIG, timeout=LOCAL_TIMEOUT).text


def local_state(spec_path: Path, related: Sequence[Path] = ()) -> LocalRevision:
    """Where ``spec_path`` (and the files in ``related``) stand in their git checkout."""
    folder = spec_path.resolve().parent
    try:
        top = Path(_git(folder, "rev-parse", "--show-toplevel").strip())
    except (GitError, OSError):
        return LocalRevision(None, False)
    try:
        commit = parse_log_record(_git(top, "log", "-1", f"--format={LOG_FORMAT}", "--"))
    except (GitError, ValueError):
        return LocalRevision(None, False)  # a checkout without commits yet
    files = [str(p.resolve()) for p in (spec_path, *related)]
    try:
        status = _git(
            top, "status", "--porcelain", "-z", "--untracked-files=all", "--ignored=matching",
            "--", *files,
        )  # fmt: skip
    except GitError:
        return LocalRevision(commit, True)  # e.g. a file outside the checkout: not at commit
    return LocalRevision(commit, bool(status.strip("\0")))


def local_revision(spec_path: Path, related: Sequence[Path] = ()) -> str:
    """The revision line of a local spec file:
    ``revision: working tree[ at SHA 'subject'][ (modified)]``."""
    return local_state(spec_path, related).describe()
