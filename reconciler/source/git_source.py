"""A git source of specs: one branch of one remote, fetched into the state directory and
checked out one revision at a time, atomically.

Layout under ``root_dir`` (created 0700; every file git or this module writes is 0600, every
folder 0700)::

    repo.git/                 a bare repository; only the one branch is fetched into it
    checkouts/<sha>/          complete checkouts of a revision (the last KEEP_CHECKOUTS)
    checkouts/<sha>.tmp-*     a checkout being written (removed on failure or next start)
    current -> checkouts/<sha>  the revision in force, swapped by renaming a new link over it

A checkout is written under a temporary name, synced to disk, and only then renamed to
``<sha>``; the ``current`` link is replaced by ``rename(2)``, so a reader following it
always finds a complete tree, and a half-written checkout is never named ``<sha>``. An old
checkout is renamed away before it is deleted, for the same reason. Symbolic links in the
repository are checked out as small files holding the link text (``core.symlinks=false``),
so a commit cannot point the reconciler at files outside its checkout through a link.
The file operations behind this are in :mod:`reconciler.source.checkouts`.

Everything here is synchronous and blocking (call it from a worker thread, e.g.
``asyncio.to_thread``). One :class:`GitSource` is used by one thread at a time: ``fetch``,
``checkout`` and ``prune`` must not run concurrently on the same ``root_dir``. Readers use
the folder ``checkout`` returned, or resolve ``current`` once: a path through the link is
followed anew at every open, so a walk through it could span two revisions.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path, PurePosixPath

import structlog

from reconciler.common.private_files import private_dir
from reconciler.source.checkouts import (
    fsync_path,
    newest_checkouts,
    point_link,
    remove_tree,
    sync_tree,
)
from reconciler.source.git_command import (
    NO_AUTH,
    GitAuth,
    GitError,
    GitResult,
    run_git,
    scrub,
)
from reconciler.source.revision import (
    LOG_FORMAT,
    Revision,
    SignatureState,
    is_full_sha,
    parse_log_record,
    parse_signature_check,
)

log = structlog.get_logger("reconciler.source")
KEEP_CHECKOUTS = 3
FETCH_TIMEOUT = 300.0
LOCAL_TIMEOUT = 60.0
_CONFIG = {
    "core.symlinks": "false",
    "gc.autoDetach": "false",  # no background gc left running after a fetch
    "transfer.fsckObjects": "true",
    "protocol.ext.allow": "never",
}


def _clean_path(path: str) -> str:
    pure = PurePosixPath(path or ".")
    if pure.is_absolute() or ".." in pure.parts:
        raise GitError(f"the spec folder {path!r} must be a relative path inside the repository")
    return "." if str(pure) in ("", ".") else str(pure)


class GitSource:
    """One branch of a remote repository and the spec folder ``path`` inside it."""

    def __init__(
        self,
        url: str,
        branch: str,
        path: str,
        root_dir: Path,
        auth: GitAuth = NO_AUTH,
        *,
        fetch_timeout: float = FETCH_TIMEOUT,
    ) -> None:
        if not url or url.startswith("-") or url.lower().startswith("ext::"):
            raise GitError(f"not a usable git URL: {scrub(url)!r}")
        self.url = url
        self.safe_url = scrub(url)
        self.branch = branch
        self.path = _clean_path(path)
        self.root_dir = root_dir
        self.auth = auth
        self.fetch_timeout = fetch_timeout
        self._ref = f"refs/remotes/origin/{branch}"
        self._checked_branch = False

    # --- the repository ------------------------------------------------------

    @property
    def repo(self) -> Path:
        return self.root_dir / "repo.git"

    @property
    def checkouts(self) -> Path:
        return self.root_dir / "checkouts"

    def _git(self, *args: str, timeout: float = LOCAL_TIMEOUT, check: bool = True) -> GitResult:
        return run_git(args, git_dir=self.repo, config=_CONFIG, timeout=timeout, check=check)

    def _ensure_repo(self) -> None:
        private_dir(self.root_dir)
        if not self._checked_branch:
            run_git(["check-ref-format", "--branch", self.branch], timeout=LOCAL_TIMEOUT)
            self._checked_branch = True
        if (self.repo / "HEAD").is_file():
            return
        for leftover in self.root_dir.glob(".repo.git.tmp-*"):
            remove_tree(leftover)
        tmp = self.root_dir / f".repo.git.tmp-{secrets.token_hex(4)}"
        run_git(["init", "--quiet", "--bare", str(tmp)], timeout=LOCAL_TIMEOUT)
        if self.repo.exists():  # left by an interrupted run without HEAD: not a repository
            remove_tree(self.repo)
        os.rename(tmp, self.repo)

    def fetch(self) -> str:
        """Fetch the branch from the remote; the full sha of its head. GitError when the
        remote cannot be reached, refuses us, or has no such branch."""
        self._ensure_repo()
        try:
            run_git(
                ["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--",
                 self.url, f"+refs/heads/{self.branch}:{self._ref}"],
                git_dir=self.repo, auth=self.auth, config=_CONFIG, timeout=self.fetch_timeout,
            )  # fmt: skip
        except GitError as exc:
            message = f"fetching {self.branch} from {self.safe_url}: {exc}"
            raise GitError(message, retryable=exc.retryable) from None
        return self._git("rev-parse", "--verify", "--quiet", f"{self._ref}^{{commit}}").text.strip()

    def _commit(self, sha: str) -> str:
        if not is_full_sha(sha):
            raise GitError(f"not a full commit sha: {sha[:80]!r}")
        if self._git("cat-file", "-e", f"{sha}^{{commit}}", check=False).returncode != 0:
            raise GitError(f"commit {sha[:12]} is not in the fetched repository")
        return sha

    # --- what a revision is --------------------------------------------------

    def revision(self, sha: str) -> Revision:
        """Who made commit ``sha``, when, and its subject (signature not checked)."""
        out = self._git("log", "-1", f"--format={LOG_FORMAT}", self._commit(sha), "--").text
        try:
            return parse_log_record(out)
        except ValueError as exc:
            raise GitError(f"git log {sha[:12]}: {exc}") from None

    def changed_paths(self, old_sha: str, new_sha: str) -> frozenset[str]:
        """Files added, changed or deleted between two commits, relative to the spec folder
        (files outside it are left out; a rename gives both names)."""
        args = ["diff", "--no-ext-diff", "--no-renames", "--name-only", "-z"]
        if self.path != ".":
            args.append(f"--relative={self.path}/")
        out = self._git(*args, self._commit(old_sha), self._commit(new_sha), "--").stdout
        return frozenset(p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p)

    def verify(self, sha: str, allowed_signers: Path) -> Revision:
        """The revision of ``sha`` with its signature checked against the allowed-signers file
        (SSH signatures only): VERIFIED with the principal, UNSIGNED, or BAD with git's words."""
        revision = self.revision(sha)
        if not allowed_signers.is_file():
            raise GitError(f"allowed signers file {allowed_signers}: not a readable file")
        raw = self._git("cat-file", "commit", sha).stdout
        headers = raw.split(b"\n\n", 1)[0].split(b"\n")
        signature = next(
            (h for h in headers if h.startswith((b"gpgsig ", b"gpgsig-sha256 "))), None
        )
        if signature is None:
            return revision.with_signature(SignatureState.UNSIGNED)
        if b"-----BEGIN SSH SIGNATURE-----" not in signature:
            problem = "not an SSH signature (only SSH signatures are accepted)"
            return revision.with_signature(SignatureState.BAD, problem=problem)
        config = {
            **_CONFIG,
            "gpg.format": "ssh",
            "gpg.ssh.allowedSignersFile": str(allowed_signers.absolute()),
            "gpg.openpgp.program": "false",
            "gpg.x509.program": "false",
        }
        result = run_git(
            ["verify-commit", sha], git_dir=self.repo, config=config,
            timeout=LOCAL_TIMEOUT, check=False,
        )  # fmt: skip
        state, detail = parse_signature_check(result.returncode, result.stderr + result.text)
        if state is SignatureState.VERIFIED:
            return revision.with_signature(state, signer=detail)
        return revision.with_signature(state, problem=detail)

    # --- checkouts -----------------------------------------------------------

    def current_sha(self) -> str | None:
        """The sha the ``current`` link names (the last checkout made), None before any."""
        with contextlib.suppress(OSError):
            name = os.readlink(self.root_dir / "current")
            sha = PurePosixPath(name).name
            if is_full_sha(sha) and (self.checkouts / sha).is_dir():
                return sha
        return None

    def checkout(self, sha: str) -> Path:
        """Materialise commit ``sha`` and make it ``current``; the folder holding the specs
        (``checkouts/<sha>/<path>``, kept until KEEP_CHECKOUTS newer ones were made).

        GitError when the commit is not fetched or has no spec folder, OSError when it
        cannot be written out; ``current`` is then unchanged."""
        sha = self._commit(sha)
        if self.path != ".":
            kind = self._git("cat-file", "-t", f"{sha}:{self.path}", check=False).text.strip()
            if kind != "tree":
                raise GitError(f"revision {sha[:7]} has no folder {self.path}")
        private_dir(self.checkouts)
        final = self.checkouts / sha
        if final.is_dir():
            os.utime(final)
        else:
            self._write_checkout(sha, final)
        point_link(self.root_dir / "current", f"checkouts/{sha}")
        try:
            self.prune()
        except (OSError, GitError) as exc:  # the checkout is made: pruning waits for the next
            log.warning("git_prune_failed", root=str(self.root_dir), error=str(exc))
        return final if self.path == "." else final / self.path

    def _write_checkout(self, sha: str, final: Path) -> None:
        tmp = self.checkouts / f"{sha}.tmp-{secrets.token_hex(4)}"
        tmp.mkdir(mode=0o700)
        index = self.checkouts / f".{tmp.name}.index"
        env = {"GIT_INDEX_FILE": str(index)}
        try:
            run_git(["read-tree", sha], git_dir=self.repo, env=env, config=_CONFIG)
            run_git(
                ["checkout-index", "--all", "--force"], git_dir=self.repo, work_tree=tmp,
                env=env, config=_CONFIG, timeout=LOCAL_TIMEOUT,
            )  # fmt: skip
            sync_tree(tmp)
            os.rename(tmp, final)
            fsync_path(self.checkouts)
        except BaseException:
            remove_tree(tmp)
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                index.unlink()

    def prune(self) -> None:
        """Delete all but the newest KEEP_CHECKOUTS checkouts (never ``current``) and any
        leftover temporary checkout, and let git keep exactly the kept commits."""
        if self.checkouts.is_dir():
            kept = newest_checkouts(self.checkouts, self.current_sha(), KEEP_CHECKOUTS)
            self._keep_refs(kept)

    def _keep_refs(self, kept: set[str]) -> None:
        """refs/reconciler/kept/<sha> for each kept checkout, so that ``changed_paths`` from
        it still works after a force push and a garbage collection."""
        listed = self._git("for-each-ref", "--format=%(refname)", "refs/reconciler/kept/").text
        have = {line.rsplit("/", 1)[-1] for line in listed.split()}
        lines = [f"delete refs/reconciler/kept/{sha}\n" for sha in sorted(have - kept)]
        lines += [f"update refs/reconciler/kept/{sha} {sha}\n" for sha in sorted(kept - have)]
        if lines:
            run_git(
                ["update-ref", "--stdin"], git_dir=self.repo, config=_CONFIG,
                stdin="".join(lines).encode(),
            )  # fmt: skip
