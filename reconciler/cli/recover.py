"""`reconcile recover SPEC --initialize-on NODE`: rebuild a cluster whose master is lost.

The explicit way out when the cluster has no master and the members it lists have left
or cannot come back (the planner says so and names this command). Never run by watch:
choosing whose data survives is a person's decision (as `patronictl failover --force`,
`kubectl cnpg promote`). Under the cluster lock it observes, reads each clustered node's
WAL position from its database, prints the evidence and the plan
(:mod:`reconciler.plan.recovery`: backups, `remove`, `initialize` on NODE, `join` the
others), asks for the cluster's name to be typed (``--yes-i-know`` skips that), runs it
with the same executor as apply and prints the verdict. Exit 0 converged, 1 refused or
failed, 2 applied but not converged.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from reconciler.apply.locks.acquire import acquire_lock, add_lock_arguments
from reconciler.apply.state_dir import (
    configured_state_dir,
    default_state_dir,
    prepare_state_dir,
)
from reconciler.apply.wal_positions import read_positions
from reconciler.cli.apply import run_apply
from reconciler.cli.apply_report import ApplyReport
from reconciler.cli.arguments import (
    add_backup_argument,
    add_connection_arguments,
    add_executor_arguments,
    add_state_arguments,
)
from reconciler.cli.live_observation import load_reporting_warnings
from reconciler.cli.live_output import to_stderr, to_stdout
from reconciler.common.errors import ReconcilerError
from reconciler.common.logging_setup import configure_logging
from reconciler.observe.snapshot_model import Observed
from reconciler.plan.model import Plan
from reconciler.plan.recovery import plan_recovery
from reconciler.spec.loader import read_local_files, spec_digest
from reconciler.spec.model import NodeRole
from reconciler.transport.interface import Transport


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "recover",
        help="rebuild a cluster that has lost its master for good on one node (never run by watch)",
    )
    p.add_argument("spec", type=Path, metavar="SPEC")
    p.add_argument(
        "--initialize-on",
        required=True,
        metavar="NODE",
        help="the database node (a spec name) whose database the new cluster starts from: "
        "the former master if it left by `remove`",
    )
    p.add_argument(
        "--yes-i-know",
        action="store_true",
        help="do not ask for the cluster's name to be typed",
    )
    add_state_arguments(p)
    add_lock_arguments(p)
    add_executor_arguments(p, poll_interval=0.5)
    add_backup_argument(p)
    add_connection_arguments(p)
    p.set_defaults(handler=cmd_recover)


def cmd_recover(args: argparse.Namespace) -> int:
    configure_logging(verbose=args.verbose)
    loaded = load_reporting_warnings(args.spec)
    spec = loaded.spec
    names = [n.name for n in spec.nodes if n.role is NodeRole.DATABASE]
    if args.initialize_on not in names:
        raise ReconcilerError(
            f"--initialize-on {args.initialize_on}: not a database node of {args.spec} "
            f"(its database nodes: {', '.join(names)})"
        )
    args.yes = args.yes_i_know  # what the shared apply run reads
    state_dir = prepare_state_dir(
        configured_state_dir(args.state_dir) or default_state_dir(loaded.base_dir)
    )

    async def make_plan(observed: Observed, transport: Transport) -> Plan:
        positions = await read_positions(loaded, observed, timeout=args.timeout or 5.0)
        recovery = plan_recovery(
            spec, observed, args.initialize_on, positions, read_local_files(loaded)
        )
        to_stdout("Evidence (each node's own status; positions from its database):")
        for row in recovery.evidence:
            to_stdout("  " + row.render())
        if recovery.refused:
            reasons = "; ".join(b.reason for b in recovery.plan.blocked) or "nothing to do"
            raise ReconcilerError(f"recover refused, nothing was changed: {reasons}")
        return recovery.plan.model_copy(update={"spec_digest": spec_digest(loaded.path)})

    def confirm(plan: Plan) -> bool:
        if args.yes_i_know:
            return True
        to_stdout(
            f"This disbands what is left of cluster {spec.cluster} and rebuilds it on "
            f"{args.initialize_on}: the new cluster has {args.initialize_on}'s data."
        )
        sys.stdout.write(f"Type the cluster's name ({spec.cluster}) to go on: ")
        sys.stdout.flush()
        answer = sys.stdin.readline()
        if answer.strip() == spec.cluster:
            return True
        to_stderr(f"error: the name typed is not {spec.cluster}: nothing was changed")
        return False

    with acquire_lock(
        args.lock,
        state_dir=state_dir,
        cluster=spec.cluster,
        break_lock=args.break_lock,
        timeout=args.lock_timeout,
    ) as lock:
        report = ApplyReport(spec.cluster, say=to_stdout)
        return asyncio.run(
            run_apply(
                loaded, args, None, lock, state_dir, report, make_plan=make_plan, confirm=confirm
            )
        )
