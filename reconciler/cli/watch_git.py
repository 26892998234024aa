"""`reconcile watch --git URL`: the git source's flags, checked at start, and its wiring.

:func:`add_git_arguments` adds ``--git``, ``--branch``, ``--path``, ``--git-interval``,
``--git-key``/``--git-known-hosts`` (SSH deploy key, host keys verified against that file
only), ``--git-token-env``/``--git-token-user`` (HTTPS token from the environment),
``--webhook-secret-env`` (the shared secret of ``POST /hooks/git``, from the environment:
never a flag value) and ``--verify-signatures --allowed-signers FILE``.
:func:`git_options_from_args` refuses every combination that cannot work with one line
(:class:`~reconciler.common.errors.ReconcilerError`) before anything starts;
:meth:`GitWatch.create` makes the source and its checkouts, :meth:`GitWatch.start` the
follower and the webhook.
No secret reaches a log line, an error or a metric (tokens and the webhook secret are
registered with the log redactor).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.cli.argument_types import positive_seconds
from reconciler.common.errors import ReconcilerError
from reconciler.common.logging_setup import register_secret
from reconciler.source.git_command import (
    NO_AUTH,
    GitAuth,
    GitError,
    HttpsToken,
    SshDeployKey,
    run_git,
)
from reconciler.source.git_source import GitSource

if TYPE_CHECKING:
    # Imported when a git watch starts: every `reconcile` command builds the parser that
    # registers `watch`, and only `watch --git` needs the follower, the supervisor and the
    # webhook (which loads prometheus-client).
    from reconciler.watch.git_checkouts import GitCheckouts
    from reconciler.watch.git_follower import GitFollower
    from reconciler.watch.supervisor import WatchSupervisor
    from reconciler.watch.webhook_endpoint import GitWebhook

DEFAULT_GIT_INTERVAL = 60.0
FETCH_TIMEOUT = 120.0  # a hung remote: the fetch is killed (and a stopping watch waits) no longer
GIT_FOLDER = "git"  # <state dir>/git: the clone and its checkouts
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[^/:]+:")
_HTTP_PASSWORD = re.compile(r"^https?://[^/@]*:[^/@]*@", re.IGNORECASE)
_GIT_ONLY = (
    ("branch", "--branch"), ("path", "--path"), ("git_interval", "--git-interval"),
    ("git_key", "--git-key"), ("git_known_hosts", "--git-known-hosts"),
    ("git_token_env", "--git-token-env"), ("git_token_user", "--git-token-user"),
    ("webhook_secret_env", "--webhook-secret-env"), ("allowed_signers", "--allowed-signers"),
)  # fmt: skip


@dataclass(frozen=True)
class GitOptions:
    url: str
    branch: str = "main"
    path: str = "."
    interval: float = DEFAULT_GIT_INTERVAL
    auth: GitAuth = NO_AUTH
    webhook_secret: bytes | None = field(default=None, repr=False)
    allowed_signers: Path | None = None


def add_git_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("git source (instead of SPEC_OR_DIR)")
    g.add_argument("--git", metavar="URL", help="follow this repository (ssh, https, git, file)")
    g.add_argument("--branch", metavar="BRANCH", help="the branch to follow (default main)")
    g.add_argument("--path", metavar="DIR", help="the spec folder in it (default: its root)")
    g.add_argument(
        "--git-interval",
        type=positive_seconds,
        metavar="SECONDS",
        help=f"fetch this often; a webhook fetches at once (default {DEFAULT_GIT_INTERVAL:g})",
    )
    g.add_argument("--git-key", type=Path, metavar="FILE", help="SSH deploy key (0600)")
    g.add_argument(
        "--git-known-hosts", type=Path, metavar="FILE", help="the git server's SSH host keys"
    )
    g.add_argument("--git-token-env", metavar="VAR", help="HTTPS token from this variable")
    g.add_argument(
        "--git-token-user",
        metavar="USER",
        help="send the token as USER's password (GitHub: x-access-token, GitLab: oauth2)",
    )
    g.add_argument(
        "--webhook-secret-env",
        metavar="VAR",
        help="POST /hooks/git on the metrics port fetches at once when signed with the "
        "secret in this variable (GitHub X-Hub-Signature-256, GitLab X-Gitlab-Token)",
    )
    g.add_argument(
        "--verify-signatures",
        action="store_true",
        help="act only on commits with an SSH signature by a key in --allowed-signers",
    )
    g.add_argument("--allowed-signers", type=Path, metavar="FILE", help="git's allowed signers")


def _kind(url: str) -> str:
    lowered = url.lower()
    if lowered.startswith("ssh://") or ("://" not in url and _SCP_LIKE.match(url)):
        return "ssh"
    return lowered.split("://", 1)[0] if "://" in url else "file"


def _auth(args: argparse.Namespace, kind: str) -> GitAuth:
    if (args.git_key is None) != (args.git_known_hosts is None):
        raise ReconcilerError("--git-key and --git-known-hosts go together (SSH deploy key)")
    if args.git_key is not None and args.git_token_env:
        raise ReconcilerError("--git-key (SSH) and --git-token-env (HTTPS): give one")
    if args.git_token_user and not args.git_token_env:
        raise ReconcilerError("--git-token-user needs --git-token-env")
    auth: GitAuth = NO_AUTH
    if args.git_key is not None:
        if kind != "ssh":
            raise ReconcilerError("--git-key is for an ssh URL (ssh://... or user@host:path)")
        auth = SshDeployKey(args.git_key, args.git_known_hosts)
    elif args.git_token_env:
        if kind != "https":
            raise ReconcilerError("--git-token-env is for an https:// URL")
        auth = HttpsToken(args.git_token_env, args.git_token_user)
    try:
        auth.environment()  # the files are there and private, the token is set
    except GitError as exc:
        raise ReconcilerError(str(exc)) from None
    return auth


def _secret(name: str | None) -> bytes | None:
    if not name:
        return None
    value = os.environ.get(name, "")
    if not value:
        raise ReconcilerError(f"environment variable {name} (the webhook secret) is not set")
    register_secret(value)
    return value.encode()


def git_options_from_args(args: argparse.Namespace) -> GitOptions | None:
    """The git source the flags ask for (None: file-based watch); one line when they clash."""
    if args.git is None:
        given = [flag for name, flag in _GIT_ONLY if getattr(args, name) is not None]
        given += ["--verify-signatures"] if args.verify_signatures else []
        if given:
            raise ReconcilerError(f"{', '.join(given)}: only with --git URL")
        return None
    if args.specs:
        raise ReconcilerError("--git follows a repository: give no SPEC_OR_DIR with it")
    if _HTTP_PASSWORD.match(args.git):
        raise ReconcilerError("--git: no password or token in the URL; use --git-token-env")
    if args.verify_signatures != (args.allowed_signers is not None):
        raise ReconcilerError("--verify-signatures and --allowed-signers FILE go together")
    if args.allowed_signers is not None and not args.allowed_signers.is_file():
        raise ReconcilerError(f"--allowed-signers {args.allowed_signers}: not a readable file")
    branch = args.branch or "main"
    try:
        run_git(["check-ref-format", "--branch", branch], timeout=10.0)
    except GitError:
        raise ReconcilerError(f"--branch {branch!r}: not a branch name") from None
    return GitOptions(
        url=args.git,
        branch=branch,
        path=args.path or ".",
        interval=args.git_interval or DEFAULT_GIT_INTERVAL,
        auth=_auth(args, _kind(args.git)),
        webhook_secret=_secret(args.webhook_secret_env),
        allowed_signers=args.allowed_signers,
    )


@dataclass
class GitWatch:
    """A git source for a watch: its checkouts (what the loops read), the follower, the hook."""

    options: GitOptions
    source: GitSource
    checkouts: GitCheckouts
    follower: GitFollower | None = None
    webhook: GitWebhook | None = None

    @classmethod
    def create(cls, options: GitOptions, state_dir: Path) -> GitWatch:
        """The source cloned into ``<state dir>/git`` (ReconcilerError when the URL or the
        path cannot be used)."""
        try:
            source = GitSource(
                options.url, options.branch, options.path, state_dir / GIT_FOLDER,
                options.auth, fetch_timeout=FETCH_TIMEOUT,
            )  # fmt: skip
        except GitError as exc:
            raise ReconcilerError(f"--git: {exc}") from None
        from reconciler.watch.git_checkouts import GitCheckouts

        return cls(options, source, GitCheckouts(source.root_dir, source.path))

    async def start(self, supervisor: WatchSupervisor) -> asyncio.Task[None]:
        """The follower, running until the supervisor stops (the checkout the last run left
        already in force, so the loops start from it); the webhook hands over to it."""
        from reconciler.watch.git_follower import GitFollower, wake_concerned
        from reconciler.watch.webhook_endpoint import GitWebhook

        loop = asyncio.get_running_loop()
        follower = self.follower = GitFollower(
            self.source,
            self.checkouts,
            lambda new: wake_concerned(supervisor, self.checkouts, new),
            interval=self.options.interval,
            allowed_signers=self.options.allowed_signers,
        )
        if self.options.webhook_secret:
            self.webhook = GitWebhook(
                self.options.webhook_secret,
                lambda why: loop.call_soon_threadsafe(follower.trigger, why),
            )
        await follower.resume()
        return asyncio.create_task(follower.run(supervisor.stop_event), name="git follower")

    def log_fields(self) -> dict[str, Any]:
        """What the ``watch started`` line says about the source (no credentials)."""
        return {
            "git": self.source.safe_url,
            "branch": self.options.branch,
            "path": self.options.path,
            "git_interval_s": self.options.interval,
            "webhook": "POST /hooks/git" if self.webhook else "not configured",
            "verify_signatures": self.options.allowed_signers is not None,
        }
