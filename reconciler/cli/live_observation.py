"""Loading, connecting, observing and planning, as every live command does it.

The spec is loaded with its warnings on stderr (:func:`load_reporting_warnings`),
the SSH transport is made from the spec and the connection flags
(:func:`make_transport`), one observation run is reported node by node
(:func:`report_unobserved`; authentication and host-key failures stop plan and
apply: :func:`raise_permanent`), and the plan carries the spec's digest
(:func:`plan_with_digest`). :func:`observe_for_plan` is the live `reconcile plan`'s
observation.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.cli.live_output import to_stderr
from reconciler.common.logging_setup import configure_logging
from reconciler.observe.observer import ObservationRun, observe_nodes
from reconciler.observe.snapshot_model import Observed
from reconciler.spec.loader import LoadedSpec, load_spec

if TYPE_CHECKING:
    from reconciler.transport.ssh import SshTransport


def make_transport(loaded: LoadedSpec, args: argparse.Namespace) -> SshTransport:
    """The SSH transport of the spec's ``ssh`` settings, with the connection flags applied."""
    # Imported here: every `reconcile` command builds the parser that registers the live
    # commands, and only those that connect need asyncssh.
    from reconciler.transport.ssh import SshSettings, SshTransport

    settings = SshSettings.from_spec(
        loaded.spec.ssh,
        loaded.base_dir,
        accept_new_host_keys=bool(getattr(args, "accept_new_host_keys", False)),
        timeout=getattr(args, "timeout", None),
    )
    return SshTransport(settings)


def load_reporting_warnings(path: Path) -> LoadedSpec:
    """Load and validate the spec; its warnings go to stderr."""
    loaded = load_spec(path)
    for warning in loaded.warnings:
        to_stderr(warning.render())
    return loaded


def report_unobserved(run: ObservationRun, *, permanent_raised: bool = False) -> None:
    """One line per node that could not be observed (a permanent failure that the caller
    raises next is left to that error's own line)."""
    for name, error in run.errors.items():
        if permanent_raised and not error.retryable:
            continue
        kind = "error" if not error.retryable else "warning"
        to_stderr(f"{kind}: {name}: {error.detail}")


def raise_permanent(run: ObservationRun) -> None:
    """Authentication and host-key failures stop plan/apply: a human must act."""
    permanent = run.permanent_errors
    if permanent:
        first = next(iter(permanent.values()))
        if len(permanent) > 1:
            others = ", ".join(n for n in permanent if n != first.node)
            raise type(first)(first.node, f"{first.detail} (also: {others})")
        raise first


async def observe_once(
    loaded: LoadedSpec, args: argparse.Namespace, *, with_files: bool
) -> ObservationRun:
    """One observation run over a transport of its own (closed afterwards)."""
    transport = make_transport(loaded, args)
    try:
        return await observe_nodes(
            loaded.spec, transport, with_files=with_files, log_failures=False
        )
    finally:
        await transport.close()


async def observe_for_plan(loaded: LoadedSpec, args: argparse.Namespace) -> Observed:
    """Live observation for `reconcile plan` (files listed: the planner compares checksums)."""
    configure_logging(verbose=int(getattr(args, "verbose", 0) or 0))
    transport = make_transport(loaded, args)
    try:
        run = await observe_nodes(loaded.spec, transport, with_files=True, log_failures=False)
    finally:
        await transport.close()
    report_unobserved(run, permanent_raised=True)
    raise_permanent(run)
    return run.observed
