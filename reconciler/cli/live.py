"""The live subcommands `observe`, `status` and `apply`: :func:`register` adds their parsers.

Registered into the lead's `reconcile` CLI (:func:`reconciler.cli.main.build_parser`).
The commands themselves are :mod:`reconciler.cli.observe`, :mod:`reconciler.cli.status`
and :mod:`reconciler.cli.apply`; their exit codes are in :mod:`reconciler.cli.live_output`
(0 ok / converged, 1 error, 2 not converged). Importing this module loads no SSH
library (the transport is imported when a command connects).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.apply.locks.acquire import add_lock_arguments
from reconciler.cli.apply import cmd_apply
from reconciler.cli.arguments import (
    add_backup_argument,
    add_connection_arguments,
    add_executor_arguments,
    add_state_arguments,
)
from reconciler.cli.observe import cmd_observe
from reconciler.cli.status import cmd_status


def register(subparsers: Any) -> None:
    """Add `observe`, `status` and `apply` to the subcommands of `reconcile`."""
    p = subparsers.add_parser("observe", help="observe the live cluster and write a snapshot")
    p.add_argument("spec", type=Path, metavar="SPEC")
    p.add_argument("-o", "--output", type=Path, metavar="SNAPSHOT", help="default: stdout")
    p.add_argument("--no-files", action="store_true", help="skip the SFTP listing/checksums")
    add_connection_arguments(p)
    p.set_defaults(handler=cmd_observe)

    p = subparsers.add_parser("status", help="health of the live cluster (exit 0 converged, 2 not)")
    p.add_argument("spec", type=Path, metavar="SPEC")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--no-db", action="store_true", help="skip the database's own view")
    p.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="the state directory to read the last applied revision from (default "
        "$RECONCILE_STATE_DIR, else .reconcile/ next to the spec)",
    )
    add_connection_arguments(p)
    p.set_defaults(handler=cmd_status)

    p = subparsers.add_parser("apply", help="converge the live cluster (a spec or a saved plan)")
    p.add_argument("target", type=Path, metavar="SPEC_OR_PLAN_JSON")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="json: one document on stdout after the run (each step's outcome and duration, "
        "the verdict, the database view; schemas/apply-output.schema.json), the human lines "
        "on stderr; needs --yes or a saved plan",
    )
    add_state_arguments(p)
    add_lock_arguments(p)
    add_executor_arguments(p, poll_interval=0.5)
    add_backup_argument(p)
    add_connection_arguments(p)
    p.set_defaults(handler=cmd_apply)
