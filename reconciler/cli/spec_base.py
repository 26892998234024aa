"""The base version of the specs for a pull request's plan: ``reconcile plan --base REF``.

For every spec file, in the git checkout it is in: the spec as it was at REF (``git show
REF:<path>``, validated as a model without its files) and the digest of each file it named
there, against the spec and its files now;
:func:`reconciler.plan.spec_changes.describe_spec_changes` says the difference in words.
Spec files a given directory held at REF and holds no more are listed as removed. A file
named by an absolute path (outside the checkout) is not in git: only a new path to it
counts as a change. Git runs through
:func:`reconciler.source.git_command.run_git` (clean environment, no fsmonitor).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from reconciler.common.errors import ReconcilerError, SpecError
from reconciler.plan.spec_changes import describe_spec_changes
from reconciler.source.git_command import GitError, run_git
from reconciler.spec.certificate_rules import certificate_sets, set_files
from reconciler.spec.discovery import SPEC_SUFFIXES
from reconciler.spec.loader import LoadedSpec, read_local_files, validate_document
from reconciler.spec.model import ClusterSpec
from reconciler.spec.yaml_source import parse_document

TIMEOUT = 30.0
_CONFIG = {"core.fsmonitor": "false"}


@dataclass(frozen=True)
class BaseComparison:
    changes: dict[str, tuple[str, ...]]  # cluster -> what the change does to its spec
    removed: tuple[str, ...]  # "path (cluster X)" of spec files deleted since the base


def _git(top: Path, *args: str) -> bytes:
    return run_git(args, cwd=top, config=_CONFIG, timeout=TIMEOUT).stdout


def _top(folder: Path) -> Path:
    try:
        return Path(_git(folder, "rev-parse", "--show-toplevel").decode().strip())
    except GitError:
        message = f"--base needs the specs in a git checkout: {folder} is not in one"
        raise ReconcilerError(message) from None


def _at(top: Path, ref: str, path: PurePosixPath) -> bytes | None:
    """The file ``path`` (relative to ``top``) at ``ref``; None when it did not exist."""
    found = run_git(["cat-file", "-e", f"{ref}:{path}"], cwd=top, config=_CONFIG, check=False)
    if found.returncode != 0:
        return None
    return _git(top, "cat-file", "blob", f"{ref}:{path}")


def _spec_at(top: Path, ref: str, path: PurePosixPath) -> tuple[ClusterSpec | None, str | None]:
    """The spec at ``ref`` (None when absent or invalid) and why it could not be used."""
    data = _at(top, ref, path)
    if data is None:
        return None, None
    try:
        doc = parse_document(data.decode("utf-8", "replace"), Path(f"{ref}:{path}"))
    except SpecError as exc:
        return None, str(exc).splitlines()[0]
    spec, _diagnostics = validate_document(doc)
    return spec, None if spec is not None else f"{ref}:{path} was not a valid spec"


def _relative(top: Path, path: Path) -> PurePosixPath:
    return PurePosixPath(path.resolve().relative_to(top.resolve()).as_posix())


def _old_digests(
    top: Path, ref: str, spec_dir: PurePosixPath, old: ClusterSpec
) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for set_path, certs in certificate_sets(old):
        for _field, name in set_files(set_path, certs):
            if Path(name).expanduser().is_absolute():
                continue  # not in the repository
            where = PurePosixPath(os.path.normpath(spec_dir / name))
            data = None if where.parts[:1] == ("..",) else _at(top, ref, where)
            out[name] = None if data is None else hashlib.sha256(data).hexdigest()
    return out


def compare_with_base(
    loaded: Sequence[LoadedSpec], given: Sequence[Path], ref: str
) -> BaseComparison:
    """What each spec's change since ``ref`` is; the spec files deleted since."""
    changes: dict[str, tuple[str, ...]] = {}
    for one in loaded:
        top = _top(one.path.absolute().parent)
        if run_git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd=top,
                   config=_CONFIG, check=False).returncode:  # fmt: skip
            raise ReconcilerError(f"--base {ref}: not a commit in {top}")
        relative = _relative(top, one.path)
        old, problem = _spec_at(top, ref, relative)
        new_files: dict[str, str | None] = {
            name: f.sha256 for name, f in read_local_files(one).items()
        }
        old_files = _old_digests(top, ref, relative.parent, old) if old is not None else {}
        for name in new_files.keys() - old_files.keys():
            if Path(name).expanduser().is_absolute():
                old_files[name] = new_files[name]  # outside git: only its path is compared
        lines = describe_spec_changes(old, one.spec, old_files, new_files)
        changes[one.spec.cluster] = ((problem,) if problem else ()) + lines
    now = {p.resolve() for p in (one.path for one in loaded)}
    removed = [r for folder in given if folder.is_dir() for r in _removed(folder, ref, now)]
    return BaseComparison(changes, tuple(removed))


def _removed(folder: Path, ref: str, now: set[Path]) -> list[str]:
    top = _top(folder.absolute())
    relative = _relative(top, folder)
    listing = _git(top, "ls-tree", "--name-only", "-z", ref, "--", f"{relative}/")
    out = []
    for raw in listing.split(b"\0"):
        name = PurePosixPath(raw.decode("utf-8", "surrogateescape")) if raw else None
        if name is None or name.suffix not in SPEC_SUFFIXES or (top / name).resolve() in now:
            continue
        if (top / name).exists():
            continue  # still there (not a spec now, or not given)
        spec, _problem = _spec_at(top, ref, name)
        if spec is not None:  # other YAML (snapshots) and specs invalid at the base: not listed
            out.append(f"{name} (cluster {spec.cluster})")
    return out
