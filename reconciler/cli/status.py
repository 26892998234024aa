"""`reconcile status SPEC`: the health of the live cluster (exit 0 converged, 2 not).

:func:`gather_status` observes, plans and asks the database for its own view;
:func:`certificate_expiries` reads the expiry of every certificate file the spec
names; the revision last applied comes from the state directory
(:mod:`reconciler.cli.status_revision`); the report itself is
:mod:`reconciler.cli.status_report`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from pathlib import Path

import structlog

from reconciler.apply.database_view import DbView, db_disagreements, db_view_for, preload_driver
from reconciler.apply.state_dir import configured_state_dir, default_state_dir
from reconciler.cli.colour import write_text
from reconciler.cli.live_observation import (
    load_reporting_warnings,
    observe_once,
    report_unobserved,
)
from reconciler.cli.live_output import EXIT_ERROR, EXIT_NOT_CONVERGED, EXIT_OK
from reconciler.cli.planning import plan_with_digest
from reconciler.cli.status_report import (
    CertExpiry,
    RevisionStatus,
    build_report,
    render_json,
    render_text,
)
from reconciler.cli.status_revision import revision_status
from reconciler.common.errors import ReconcilerError
from reconciler.common.logging_setup import configure_logging
from reconciler.observe.observer import ObservationRun
from reconciler.plan.model import Plan
from reconciler.plan.verdict import ClusterVerdict, Verdict, cluster_verdict
from reconciler.spec.cert_checks import CertFormatError, certificate_expiry
from reconciler.spec.loader import LoadedSpec, resolve_spec_path


def certificate_expiries(loaded: LoadedSpec, now: dt.datetime | None = None) -> list[CertExpiry]:
    now = now or dt.datetime.now(dt.UTC)
    spec = loaded.spec
    seen: list[str] = []
    sets = [spec.certificates] + [n.certificates for n in spec.nodes if n.certificates]
    for certs in sets:
        for path in (certs.ca, certs.server.cert if certs.server else None, certs.client.cert):
            if path is not None and path not in seen:
                seen.append(path)
    out = []
    for path in seen:
        try:
            expires = certificate_expiry(resolve_spec_path(loaded, path))
        except (OSError, CertFormatError) as exc:
            out.append(CertExpiry(path, None, None, True, f"cannot read: {exc}"))
            continue
        days = (expires - now).days
        out.append(
            CertExpiry(
                file=path,
                expires=expires.date().isoformat(),
                days_left=days,
                warning=days < spec.policy.cert_expiry_warning_days,
            )
        )
    return out


async def gather_status(
    loaded: LoadedSpec, args: argparse.Namespace, *, with_db: bool = True
) -> tuple[ObservationRun, Plan, DbView | None, ClusterVerdict]:
    if with_db:
        preload_driver()
    run = await observe_once(loaded, args, with_files=True)
    the_plan = plan_with_digest(loaded, run.observed)
    db = await db_view_for(loaded, run.observed) if with_db else None
    problems = db_disagreements(loaded, run.observed, db)
    return run, the_plan, db, cluster_verdict(loaded.spec, run.observed, the_plan, problems)


def revision_of(loaded: LoadedSpec, given: Path | None) -> RevisionStatus | None:
    """The revision lines; None (and a warning) when the state directory cannot be read."""
    state_dir = configured_state_dir(given) or default_state_dir(loaded.base_dir)
    try:
        return revision_status(loaded, state_dir)
    except (ReconcilerError, OSError) as exc:
        structlog.get_logger("reconciler").warning("revision not read", error=str(exc))
        return None


def cmd_status(args: argparse.Namespace) -> int:
    configure_logging(verbose=args.verbose)
    loaded = load_reporting_warnings(args.spec)
    run, _, db, verdict = asyncio.run(gather_status(loaded, args, with_db=not args.no_db))
    revision = revision_of(loaded, args.state_dir)
    expiries = certificate_expiries(loaded)
    report = build_report(loaded.spec, run.observed, verdict, expiries, db, revision)
    if args.format == "json":
        sys.stdout.write(render_json(report))
    else:
        write_text(sys.stdout, render_text(report))
    if run.permanent_errors:
        report_unobserved(run)
        return EXIT_ERROR
    return EXIT_OK if verdict.verdict is Verdict.CONVERGED else EXIT_NOT_CONVERGED
