"""`reconcile status`: which revision the cluster was last applied at, and is the spec's?

:func:`revision_status` reads, from the state directory, the last applied revision
(:func:`reconciler.apply.applied_revision.last_applied`: the record ``watch --git`` keeps,
or the audit log's last record), and says whether

* the spec file's own revision is applied: its checkout's ``HEAD`` is that commit, or the
  spec and the files it names did not change between the two (``git diff``); unknown when
  the file differs from ``HEAD`` or is in no checkout;
* with a ``watch --git`` clone in the state directory (``<state dir>/git``), the branch
  head it last fetched is applied (the same test, in the clone).

Git runs through :func:`reconciler.source.git_command.run_git`; a git that is missing or
refuses leaves the answer "unknown", never an error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from reconciler.apply.applied_revision import AppliedRevision, last_applied
from reconciler.cli.status_report import RevisionStatus
from reconciler.source.git_command import GitError, run_git
from reconciler.source.revision import LOG_FORMAT, is_full_sha, parse_log_record
from reconciler.source.working_tree import LocalRevision, local_state
from reconciler.spec.loader import LoadedSpec, read_local_files

TIMEOUT = 10.0
_LOCAL_AT = re.compile(r"^revision: working tree at (?P<sha>[0-9a-f]{7,64}) ")
_CONFIG = {"core.fsmonitor": "false"}


def _applied_sha(applied: AppliedRevision) -> str | None:
    """The commit an applied record names (None: a working tree outside git, or modified)."""
    if is_full_sha(applied.revision):
        return applied.revision
    match = _LOCAL_AT.match(applied.revision)
    if match is None or applied.revision.endswith("(modified)"):
        return None
    return match.group("sha")


@dataclass(frozen=True)
class Where:
    """The repository to ask: a checkout (``cwd`` inside it) or a bare clone (``git_dir``)."""

    cwd: Path | None = None
    git_dir: Path | None = None


def _unchanged(where: Where, old: str, new: str, paths: Sequence[str]) -> bool | None:
    """Did none of ``paths`` change between the commits? None when git cannot tell."""
    try:
        result = run_git(
            ["diff", "--quiet", old, new, "--", *paths], cwd=where.cwd, git_dir=where.git_dir,
            config=_CONFIG, timeout=TIMEOUT, check=False,
        )  # fmt: skip
    except GitError:
        return None
    return {0: True, 1: False}.get(result.returncode)


def _verdict(where: Where, head: str, applied: AppliedRevision | None, paths: Sequence[str]) -> str:
    """Is commit ``head`` applied, in words."""
    if applied is None:
        return "unknown: nothing applied yet (no revision in the state directory)"
    sha = _applied_sha(applied)
    if sha is None:
        return "unknown: the last apply was from a working tree that differed from any commit"
    if head.startswith(sha):
        return f"yes: {head[:7]} is the last applied revision"
    same = _unchanged(where, sha, head, paths) if paths else None
    if same is True:
        return f"yes: the spec and its files did not change since {sha[:7]}, the last applied"
    if same is False:
        return f"no: {head[:7]} changes the spec or its files since {sha[:7]}, the last applied"
    return f"unknown: {sha[:7]} (the last applied) cannot be compared with {head[:7]} here"


def _spec_verdict(local: LocalRevision, applied: AppliedRevision | None, files: list[str]) -> str:
    if local.commit is None:
        return "unknown: the spec file is not in a git checkout"
    if local.modified:
        return "unknown: the spec file or a file it names differs from its commit"
    return _verdict(Where(cwd=Path(files[0]).parent), local.commit.sha, applied, files)


def _in_clone(clone: Path, path: Path) -> str | None:
    """``path`` as the watched repository names it, when it is in one of the clone's checkouts."""
    try:
        inside = PurePosixPath(path.resolve().relative_to(clone.resolve() / "checkouts").as_posix())
    except ValueError:
        return None
    return str(PurePosixPath(*inside.parts[1:])) if len(inside.parts) > 1 else None


def _in_checkout(path: Path) -> str | None:
    try:
        top = run_git(
            ["rev-parse", "--show-toplevel"], cwd=path.absolute().parent, config=_CONFIG,
            timeout=TIMEOUT,
        ).text.strip()  # fmt: skip
        return path.resolve().relative_to(Path(top).resolve()).as_posix()
    except (GitError, ValueError, OSError):
        return None


def _branch(clone: Path, applied: AppliedRevision | None, files: list[Path]) -> tuple[str, str]:
    repo = clone / "repo.git"
    refs = run_git(
        ["for-each-ref", "--format=%(refname:strip=3) %(objectname)", "refs/remotes/origin/"],
        git_dir=repo, timeout=TIMEOUT,
    ).text.split()  # fmt: skip
    if len(refs) < 2:
        raise GitError("the clone has no fetched branch")
    branch, head = refs[0], refs[1]
    names = [n for f in files if (n := _in_clone(clone, f) or _in_checkout(f)) is not None]
    verdict = _verdict(Where(git_dir=repo), head, applied, names)
    return f"{branch} at {_describe(repo, head)} (last fetched by watch --git)", verdict


def _checkout_sha(clone: Path, path: Path) -> str | None:
    """The commit of the clone's checkout ``path`` is in (``checkouts/<sha>/...``)."""
    try:
        sha = path.resolve().relative_to(clone.resolve() / "checkouts").parts[0]
    except (ValueError, IndexError):
        return None
    return sha if is_full_sha(sha) else None


def _describe(repo: Path, sha: str) -> str:
    try:
        out = run_git(["log", "-1", f"--format={LOG_FORMAT}", sha, "--"], git_dir=repo).text
        return parse_log_record(out).describe()
    except (GitError, ValueError):
        return sha[:7]


def revision_status(loaded: LoadedSpec, state_dir: Path) -> RevisionStatus:
    """The revision lines of `reconcile status` for ``loaded``."""
    related = [Path(f.local_path) for f in read_local_files(loaded).values()]
    applied = last_applied(state_dir, loaded.spec.cluster)
    clone = state_dir / "git"
    repo = clone / "repo.git"
    in_clone = _checkout_sha(clone, loaded.path) if (repo / "HEAD").is_file() else None
    if in_clone is not None:  # a file of watch --git's own checkout
        names = [n for f in (loaded.path, *related) if (n := _in_clone(clone, f)) is not None]
        spec = f"{_describe(repo, in_clone)} (a checkout of watch --git)"
        spec_applied = _verdict(Where(git_dir=repo), in_clone, applied, names)
    else:
        local = local_state(loaded.path, related)
        files = [str(p.absolute()) for p in (loaded.path, *related)]
        spec = local.describe().removeprefix("revision: ")
        spec_applied = _spec_verdict(local, applied, files)
    status = RevisionStatus(
        spec=spec,
        spec_applied=spec_applied,
        last_applied=applied.describe() if applied else None,
        last_applied_at=applied.at if applied else None,
        last_applied_how=applied.how if applied else None,
    )
    if not (repo / "HEAD").is_file():
        return status
    try:
        branch, verdict = _branch(clone, applied, [loaded.path, *related])
    except (GitError, ValueError) as exc:
        branch, verdict = f"unknown ({exc})", "unknown"
    return replace(status, branch=branch, branch_applied=verdict)
