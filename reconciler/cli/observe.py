"""`reconcile observe SPEC`: observe the live cluster and write a snapshot.

The snapshot goes to stdout or ``--output``; nodes that could not be observed are
reported on stderr. Exit 1 when a node refused authentication or its host key.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from reconciler.cli.live_observation import (
    load_reporting_warnings,
    observe_once,
    report_unobserved,
)
from reconciler.cli.live_output import EXIT_ERROR, EXIT_OK, to_stderr
from reconciler.cli.output_files import write_output
from reconciler.common.errors import ReconcilerError
from reconciler.common.logging_setup import configure_logging
from reconciler.common.private_files import output_problem
from reconciler.observe.snapshot_io import dump_snapshot


def cmd_observe(args: argparse.Namespace) -> int:
    configure_logging(verbose=args.verbose)
    to_file = args.output is not None and str(args.output) != "-"
    if to_file and (problem := output_problem(args.output)) is not None:
        raise ReconcilerError(f"-o {args.output}: {problem}")
    loaded = load_reporting_warnings(args.spec)
    run = asyncio.run(observe_once(loaded, args, with_files=not args.no_files))
    report_unobserved(run)
    text = dump_snapshot(run.observed)
    if not to_file:
        sys.stdout.write(text)
    else:
        write_output(args.output, "-o", text)
        to_stderr(
            f"wrote {args.output} ({len(run.observed.nodes)} node(s), "
            f"{len(run.errors)} not observed)"
        )
    return EXIT_ERROR if run.permanent_errors else EXIT_OK
