"""Flags the live commands share, and the executor options read from them.

:func:`add_connection_arguments` (SSH host keys, timeout, verbosity) for `observe`,
`status`, `apply` and the live `plan`; :func:`add_executor_arguments` and
:func:`executor_options` for `apply` and `watch`. Importing this module loads no SSH
library: every `reconcile` command builds the parser.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from reconciler.apply.options import ExecutorOptions
from reconciler.apply.state_dir import STATE_DIR_NAME
from reconciler.cli.argument_types import positive_int, positive_seconds


def add_connection_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--accept-new-host-keys",
        action="store_true",
        help="add unknown host keys to ssh.known_hosts (a changed key is always refused)",
    )
    p.add_argument(
        "--timeout",
        type=positive_seconds,
        metavar="SECONDS",
        help="SSH connect and per-command timeout (default: ssh.connect_timeout/command_timeout)",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (stderr)")


def add_executor_arguments(p: argparse.ArgumentParser, *, poll_interval: float) -> None:
    """Flags that tune the executor (`apply` and `watch`)."""
    p.add_argument(
        "--poll-interval",
        type=float,
        default=poll_interval,
        metavar="SECONDS",
        help=f"longest wait between two status polls (polls start at 0.05 s; "
        f"default {poll_interval})",
    )
    p.add_argument(
        "--settle-seconds",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long a changed fact or an expected outcome may take to appear (default 30)",
    )
    p.add_argument(
        "--action-timeout",
        type=float,
        metavar="SECONDS",
        help="override policy.action_timeout_seconds for asynchronous commands",
    )
    p.add_argument(
        "--max-failed-polls",
        type=positive_int,
        default=5,
        metavar="N",
        help="fail an asynchronous step once its node missed N polls in a row, instead of "
        "polling it until the action timeout (default 5)",
    )


def add_state_arguments(p: argparse.ArgumentParser) -> None:
    """The state directory and breaking a stale lock (`apply`, `recover`)."""
    p.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="lock, audit log, journal and backups (default $RECONCILE_STATE_DIR, else "
        f"{STATE_DIR_NAME}/ next to the spec)",
    )
    p.add_argument(
        "--break-lock", action="store_true", help="break a stale lock (never a live one)"
    )


def add_backup_argument(p: argparse.ArgumentParser) -> None:
    """Where the backups taken before risky steps go (`apply`, `watch`, `recover`)."""
    p.add_argument(
        "--backup-dir",
        type=Path,
        metavar="DIR",
        help="where backups taken before risky steps are downloaded "
        "(<DIR>/<cluster>/<name>/<node>/; default: backups/ in the state directory)",
    )


def add_live_plan_arguments(p: argparse.ArgumentParser) -> None:
    """Flags `reconcile plan` needs when it observes live (no --observed)."""
    add_connection_arguments(p)


def executor_options(args: argparse.Namespace) -> ExecutorOptions:
    return ExecutorOptions(
        poll_interval=args.poll_interval,
        settle_seconds=args.settle_seconds,
        action_timeout=args.action_timeout,
        max_failed_polls=args.max_failed_polls,
        backup_dir=getattr(args, "backup_dir", None),
    )
