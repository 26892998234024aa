"""Live subcommands: `observe`, `status`, `apply` (registered into the lead's `reconcile` CLI).

Exit codes: 0 ok / converged, 1 error (nothing or not everything done), 2 not
converged (`status`: drifted, degraded or no master; `apply`: applied but
something is held back or still settling).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reconciler.apply.audit import AuditLog, Journal, audit_path, journal_path
from reconciler.apply.database_view import DbView, db_disagreements, db_view_for, preload_driver
from reconciler.apply.diagnosis import diagnose
from reconciler.apply.executor import Executor, ExecutorOptions
from reconciler.apply.locks.backend import ClusterLock, acquire_lock, add_lock_arguments
from reconciler.apply.state_dir import STATE_DIR_NAME, default_state_dir
from reconciler.cli.status_report import CertExpiry, build_report, render_json, render_text
from reconciler.common.errors import DriftError, SpecError, StalePlanError
from reconciler.common.logging_setup import configure_logging
from reconciler.observe.observer import ObservationRun, observe_nodes
from reconciler.observe.snapshot_io import dump_snapshot
from reconciler.observe.snapshot_model import Observed
from reconciler.plan.facts import changed_facts
from reconciler.plan.model import Fact, Plan
from reconciler.plan.planner import plan as make_plan
from reconciler.plan.render import render_text as render_plan_text
from reconciler.plan.saved import is_saved_plan, load_plan
from reconciler.plan.verdict import ClusterVerdict, Verdict, cluster_verdict
from reconciler.spec.cert_checks import CertFormatError, certificate_expiry
from reconciler.spec.loader import (
    LoadedSpec,
    load_spec,
    read_local_files,
    resolve_spec_path,
    spec_digest,
)
from reconciler.transport.ssh import SshSettings, SshTransport

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_NOT_CONVERGED = 2


def _err(text: str) -> None:
    sys.stderr.write(text.rstrip("\n") + "\n")


def _out(text: str) -> None:
    sys.stdout.write(text.rstrip("\n") + "\n")
    sys.stdout.flush()


# ------------------------------------------------------------------ shared pieces
def add_connection_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--accept-new-host-keys",
        action="store_true",
        help="add unknown host keys to ssh.known_hosts (a changed key is always refused)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="SSH connect and per-command timeout (default: ssh.connect_timeout/command_timeout)",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (stderr)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


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
        type=_positive_int,
        default=5,
        metavar="N",
        help="fail an asynchronous step once its node missed N polls in a row, instead of "
        "polling it until the action timeout (default 5)",
    )


def add_live_plan_arguments(p: argparse.ArgumentParser) -> None:
    """Flags `reconcile plan` needs when it observes live (no --observed)."""
    add_connection_arguments(p)


def make_transport(loaded: LoadedSpec, args: argparse.Namespace) -> SshTransport:
    settings = SshSettings.from_spec(
        loaded.spec.ssh,
        loaded.base_dir,
        accept_new_host_keys=bool(getattr(args, "accept_new_host_keys", False)),
        timeout=getattr(args, "timeout", None),
    )
    return SshTransport(settings)


def _load(path: Path) -> LoadedSpec:
    loaded = load_spec(path)
    for warning in loaded.warnings:
        _err(warning.render())
    return loaded


def _report_unobserved(run: ObservationRun) -> None:
    for name, error in run.errors.items():
        kind = "error" if not error.retryable else "warning"
        _err(f"{kind}: {name}: {error.detail}")


def _raise_permanent(run: ObservationRun) -> None:
    """Authentication and host-key failures stop plan/apply: a human must act."""
    permanent = run.permanent_errors
    if permanent:
        first = next(iter(permanent.values()))
        if len(permanent) > 1:
            others = ", ".join(n for n in permanent if n != first.node)
            raise type(first)(first.node, f"{first.detail} (also: {others})")
        raise first


def _plan(loaded: LoadedSpec, observed: Observed) -> Plan:
    result = make_plan(loaded.spec, observed, read_local_files(loaded))
    return result.model_copy(update={"spec_digest": spec_digest(loaded.path)})


async def observe_for_plan(loaded: LoadedSpec, args: argparse.Namespace) -> Observed:
    """Live observation for `reconcile plan` (files listed: the planner compares checksums)."""
    configure_logging(verbose=int(getattr(args, "verbose", 0) or 0))
    transport = make_transport(loaded, args)
    try:
        run = await observe_nodes(loaded.spec, transport, with_files=True)
    finally:
        await transport.close()
    _report_unobserved(run)
    _raise_permanent(run)
    return run.observed


# ------------------------------------------------------------------------ observe
def cmd_observe(args: argparse.Namespace) -> int:
    configure_logging(verbose=args.verbose)
    loaded = _load(args.spec)
    run = asyncio.run(_observe(loaded, args, with_files=not args.no_files))
    _report_unobserved(run)
    text = dump_snapshot(run.observed)
    if args.output is None or str(args.output) == "-":
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        _err(
            f"wrote {args.output} ({len(run.observed.nodes)} node(s), "
            f"{len(run.errors)} not observed)"
        )
    return EXIT_ERROR if run.permanent_errors else EXIT_OK


async def _observe(
    loaded: LoadedSpec, args: argparse.Namespace, *, with_files: bool
) -> ObservationRun:
    transport = make_transport(loaded, args)
    try:
        return await observe_nodes(loaded.spec, transport, with_files=with_files)
    finally:
        await transport.close()


# ------------------------------------------------------------------------- status
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
    run = await _observe(loaded, args, with_files=True)
    the_plan = _plan(loaded, run.observed)
    db = await db_view_for(loaded, run.observed) if with_db else None
    problems = db_disagreements(loaded, run.observed, db)
    return run, the_plan, db, cluster_verdict(loaded.spec, run.observed, the_plan, problems)


def cmd_status(args: argparse.Namespace) -> int:
    configure_logging(verbose=args.verbose)
    loaded = _load(args.spec)
    run, _, db, verdict = asyncio.run(gather_status(loaded, args, with_db=not args.no_db))
    report = build_report(loaded.spec, run.observed, verdict, certificate_expiries(loaded), db)
    sys.stdout.write(render_json(report) if args.format == "json" else render_text(report))
    if run.permanent_errors:
        _report_unobserved(run)
        return EXIT_ERROR
    return EXIT_OK if verdict.verdict is Verdict.CONVERGED else EXIT_NOT_CONVERGED


# -------------------------------------------------------------------------- apply
def stale_facts(
    loaded: LoadedSpec, saved: Plan, observed: Observed
) -> list[tuple[Fact, str | None]]:
    """Every fact a saved plan's steps depend on that differs now (deduplicated, plan order)."""
    seen: set[tuple[str, str, str | None]] = set()
    facts: list[Fact] = []
    for step in saved.steps:
        for fact in step.depends_on:
            key = (fact.node, fact.key, fact.value)
            if key not in seen:
                seen.add(key)
                facts.append(fact)
    return list(changed_facts(loaded.spec, observed, facts))


def render_stale(changed: list[tuple[Fact, str | None]]) -> str:
    rows = [("fact", "planned", "current")] + [
        (f"{f.node}.{f.key}", repr(f.value), repr(cur)) for f, cur in changed
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _confirm(the_plan: Plan, args: argparse.Namespace) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        _err("error: refusing to apply without confirmation: stdin is not a terminal; pass --yes")
        return False
    destructive = sum(1 for s in the_plan.steps if s.destructive)
    answer = input(
        f"Apply {len(the_plan.steps)} step(s) ({destructive} destructive) to cluster "
        f"{the_plan.cluster}? Only 'yes' is accepted: "
    )
    return answer.strip() == "yes"


def executor_options(args: argparse.Namespace) -> ExecutorOptions:
    return ExecutorOptions(
        poll_interval=args.poll_interval,
        settle_seconds=args.settle_seconds,
        action_timeout=args.action_timeout,
        max_failed_polls=args.max_failed_polls,
    )


async def _apply(
    loaded: LoadedSpec,
    args: argparse.Namespace,
    saved: Plan | None,
    lock: ClusterLock,
    state_dir: Path,
) -> int:
    spec = loaded.spec
    preload_driver()  # for the database check that proves convergence at the end
    transport = make_transport(loaded, args)
    try:
        run = await observe_nodes(spec, transport, with_files=True)
        _report_unobserved(run)
        _raise_permanent(run)
        run = await _wait_for_running_commands(loaded, transport, run, args)
        if saved is not None:
            changed = stale_facts(loaded, saved, run.observed)
            if changed:
                _out(f"The saved plan is stale: {len(changed)} fact(s) changed since it was made:")
                _out(render_stale(changed))
                raise StalePlanError(
                    "saved plan refused: the cluster changed since the plan was made; "
                    "make a new plan",
                    changed=tuple(f"{f.node}.{f.key}" for f, _ in changed),
                )
            the_plan = saved
        else:
            the_plan = _plan(loaded, run.observed)
        _out(render_plan_text(the_plan))
        if the_plan.steps:
            if saved is None and not _confirm(the_plan, args):
                _out("Apply cancelled; nothing was changed.")
                return EXIT_ERROR
            run_id = lock.info.run_id
            stop = asyncio.Event()
            executor = Executor(
                spec,
                transport,
                observed=run.observed,
                audit=AuditLog(audit_path(state_dir, spec.cluster), spec.cluster, run_id),
                journal=Journal(journal_path(state_dir, spec.cluster), spec.cluster, run_id),
                lock=lock,
                options=executor_options(args),
                progress=_out,
                stop=stop,
                # no confirmation prompt between the observation and the first step
                observed_fresh=saved is not None or bool(args.yes),
            )
            with _stop_on_signals(stop):
                result = await executor.execute(the_plan)
            if result.stopped and result.error is None:
                left = [r for r in result.records if r.outcome == "abandoned"]
                running = "; ".join(f"`{r.step.command}` on {r.step.node}" for r in left)
                _out(
                    f"Stopped by a signal after {len(result.done)} step(s); "
                    + (
                        f"still running on the node (not waited for): {running}; "
                        if left
                        else "the running step finished; "
                    )
                    + "the lock is released. Run apply again to continue."
                )
                return EXIT_ERROR
            if result.error is not None:
                step = result.failed_step
                if isinstance(result.error, DriftError):
                    _out("Stopped: the cluster changed before the step ran:")
                    _out("\n".join(f"  {line}" for line in result.error.changed))
                    _out("Run apply again to re-plan from a fresh observation.")
                else:
                    node = step.node if step is not None else "?"
                    diagnosis = await diagnose(
                        spec, transport, node, result.error, result.observed, step
                    )
                    _out(diagnosis.render())
                return EXIT_ERROR
            _out(f"Applied {len(result.done)} step(s).")
        return await _verify(loaded, args, transport)
    finally:
        await transport.close()


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM/SIGINT during apply: finish the running step, start nothing new, release the
    lock (the caller's `finally`), exit 1. A second signal is not needed and is ignored."""
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def _running(observed: Observed) -> list[str]:
    out = []
    for name, obs in observed.nodes.items():
        status = obs.status if obs.reachable else None
        if status is not None and status.command_in_progress and status.last_command is not None:
            out.append(f"{name}: {status.last_command.raw}")
    return out


async def _wait_for_running_commands(
    loaded: LoadedSpec, transport: SshTransport, run: ObservationRun, args: argparse.Namespace
) -> ObservationRun:
    """A command still running (e.g. the join of an apply that was killed) finishes first:
    the planner plans nothing cluster-changing while one runs."""
    running = _running(run.observed)
    if not running:
        return run
    _out("Waiting for commands still running: " + "; ".join(running))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (args.action_timeout or loaded.spec.policy.action_timeout_seconds)
    while running and loop.time() < deadline:
        await asyncio.sleep(max(args.poll_interval, 0.2))
        run = await observe_nodes(loaded.spec, transport, with_files=True)
        running = _running(run.observed)
    return run


async def _verify(loaded: LoadedSpec, args: argparse.Namespace, transport: SshTransport) -> int:
    """Re-observe until converged (replicas catching up) or settle_seconds; print the verdict."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.settle_seconds
    while True:
        run = await observe_nodes(loaded.spec, transport, with_files=True)
        the_plan = _plan(loaded, run.observed)
        db = await db_view_for(loaded, run.observed)
        problems = db_disagreements(loaded, run.observed, db)
        verdict = cluster_verdict(loaded.spec, run.observed, the_plan, problems)
        if verdict.verdict is Verdict.CONVERGED or loop.time() >= deadline:
            break
        await asyncio.sleep(max(args.poll_interval, 0.5))
    if db is not None and db.reachable:
        streams = ", ".join(f"{s.address} lag {s.lag_bytes}" for s in db.replicas) or "none"
        _out(
            f"Database view: master {db.master_address} "
            f"{'in recovery!' if db.in_recovery else 'not in recovery'}; streaming: {streams}"
        )
    _out(f"Verdict: {verdict.verdict.value}")
    for reason in verdict.reasons:
        _out(f"  - {reason}")
    if the_plan.blocked:
        _out("Held back:")
        for b in the_plan.blocked:
            _out(f"  x {b.node or 'cluster'}: {b.reason}")
    return EXIT_OK if verdict.verdict is Verdict.CONVERGED else EXIT_NOT_CONVERGED


def cmd_apply(args: argparse.Namespace) -> int:
    configure_logging(verbose=args.verbose)
    saved: Plan | None = None
    if is_saved_plan(args.target):
        saved, spec_path = load_plan(args.target)
        loaded = _load(spec_path)
        if saved.spec_digest is not None and saved.spec_digest != spec_digest(loaded.path):
            raise StalePlanError(
                f"saved plan refused: the spec {spec_path} changed since the plan was made; "
                "make a new plan",
                changed=("spec",),
            )
        if saved.cluster != loaded.spec.cluster:
            raise SpecError(
                f"saved plan is for cluster {saved.cluster}, spec is {loaded.spec.cluster}"
            )
    else:
        loaded = _load(args.target)
    state_dir = args.state_dir or default_state_dir(loaded.base_dir)
    with acquire_lock(
        args.lock,
        state_dir=state_dir,
        cluster=loaded.spec.cluster,
        break_lock=args.break_lock,
        timeout=args.lock_timeout,
    ) as lock:
        return asyncio.run(_apply(loaded, args, saved, lock, state_dir))


# ----------------------------------------------------------------------- register
def register(subparsers: Any) -> None:
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
    add_connection_arguments(p)
    p.set_defaults(handler=cmd_status)

    p = subparsers.add_parser("apply", help="converge the live cluster (a spec or a saved plan)")
    p.add_argument("target", type=Path, metavar="SPEC_OR_PLAN_JSON")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help=f"lock, audit log and journal (default: {STATE_DIR_NAME}/ next to the spec)",
    )
    p.add_argument(
        "--break-lock", action="store_true", help="break a stale lock (never a live one)"
    )
    add_lock_arguments(p)
    add_executor_arguments(p, poll_interval=0.5)
    add_connection_arguments(p)
    p.set_defaults(handler=cmd_apply)
