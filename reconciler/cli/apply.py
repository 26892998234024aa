"""`reconcile apply SPEC_OR_PLAN_JSON`: converge the live cluster.

Under the cluster lock: observe (waiting for commands still running), refuse a
stale saved plan, ask for confirmation (a plan made now, without ``--yes``), run
the executor (SIGTERM/SIGINT finish the running step and start nothing new),
diagnose a failed step, then re-observe until converged or ``--settle-seconds``
and print the verdict. Exit 0 converged, 1 error, 2 applied but not converged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path

from reconciler.apply.audit import AuditLog, Journal, audit_path, journal_path
from reconciler.apply.database_view import db_disagreements, db_view_for, preload_driver
from reconciler.apply.diagnosis import diagnose
from reconciler.apply.executor import Executor
from reconciler.apply.locks.acquire import ClusterLock, acquire_lock
from reconciler.apply.options import ExecutorOptions
from reconciler.apply.state_dir import (
    backups_dir,
    configured_state_dir,
    default_state_dir,
    prepare_state_dir,
)
from reconciler.cli.apply_report import ApplyReport
from reconciler.cli.arguments import executor_options
from reconciler.cli.live_observation import (
    load_reporting_warnings,
    make_transport,
    raise_permanent,
    report_unobserved,
)
from reconciler.cli.live_output import EXIT_ERROR, EXIT_NOT_CONVERGED, EXIT_OK, to_stderr, to_stdout
from reconciler.cli.plan_revision import with_local_revision
from reconciler.cli.planning import plan_with_digest
from reconciler.cli.stale_plan import render_stale, stale_facts
from reconciler.common.errors import (
    FactsChangedError,
    ReconcilerError,
    SpecError,
    StalePlanError,
)
from reconciler.common.logging_setup import configure_logging
from reconciler.observe.observer import ObservationRun, observe_nodes
from reconciler.observe.snapshot_model import Observed
from reconciler.plan.model import Plan
from reconciler.plan.render import render_text as render_plan_text
from reconciler.plan.saved import is_saved_plan, load_plan
from reconciler.plan.verdict import Verdict, cluster_verdict
from reconciler.spec.loader import LoadedSpec, spec_digest
from reconciler.transport.interface import Transport


def _confirm(the_plan: Plan, args: argparse.Namespace) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        to_stderr(
            "error: refusing to apply without confirmation: stdin is not a terminal; pass --yes"
        )
        return False
    destructive = sum(1 for s in the_plan.steps if s.destructive)
    answer = input(
        f"Apply {len(the_plan.steps)} step(s) ({destructive} destructive) to cluster "
        f"{the_plan.cluster}? Only 'yes' is accepted: "
    )
    return answer.strip() == "yes"


PlanMaker = Callable[[Observed, Transport], Awaitable[Plan]]


async def run_apply(
    loaded: LoadedSpec,
    args: argparse.Namespace,
    saved: Plan | None,
    lock: ClusterLock,
    state_dir: Path,
    report: ApplyReport,
    *,
    make_plan: PlanMaker | None = None,
    confirm: Callable[[Plan], bool] | None = None,
) -> int:
    """Observe, plan (``make_plan``, default the spec's plan; a saved plan is checked for
    staleness instead), confirm (``confirm``, default a typed 'yes' unless --yes), execute,
    diagnose, verify. `reconcile recover` runs its own plan and confirmation through it."""
    spec = loaded.spec
    preload_driver()  # for the database check that proves convergence at the end
    transport = make_transport(loaded, args)
    try:
        run = await observe_nodes(spec, transport, with_files=True, log_failures=False)
        report_unobserved(run, permanent_raised=True)
        raise_permanent(run)
        run = await _wait_for_running_commands(loaded, transport, run, args, report)
        if saved is not None:
            changed = stale_facts(loaded, saved, run.observed)
            if changed:
                report.say(
                    f"The saved plan is stale: {len(changed)} fact(s) changed since it was made:"
                )
                report.say(render_stale(changed))
                raise StalePlanError(
                    "saved plan refused: the cluster changed since the plan was made; "
                    "make a new plan",
                    changed=tuple(f"{f.node}.{f.key}" for f, _ in changed),
                )
            the_plan = saved
        elif make_plan is not None:
            the_plan = await make_plan(run.observed, transport)
        else:
            the_plan = plan_with_digest(loaded, run.observed)
        if the_plan.revision is None:  # a saved plan keeps what it was made from
            the_plan = with_local_revision(the_plan, loaded)
        revision = the_plan.revision_sha or the_plan.revision
        report.say(render_plan_text(the_plan))
        if the_plan.steps:
            confirmed = (confirm or (lambda p: _confirm(p, args)))(the_plan)
            if saved is None and not confirmed:
                report.say("Apply cancelled; nothing was changed.")
                report.outcome = "cancelled"
                return EXIT_ERROR
            run_id = lock.info.run_id
            stop = asyncio.Event()
            executor = Executor(
                spec,
                transport,
                observed=run.observed,
                audit=AuditLog(audit_path(state_dir, spec.cluster), spec.cluster, run_id, revision),
                journal=Journal(
                    journal_path(state_dir, spec.cluster), spec.cluster, run_id, revision
                ),
                lock=lock,
                options=_with_backup_dir(executor_options(args), state_dir),
                progress=report.say,
                stop=stop,
                # no confirmation prompt between the observation and the first step
                observed_fresh=saved is not None or bool(args.yes),
            )
            with _stop_on_signals(stop):
                result = await executor.execute(the_plan)
            report.records = list(result.records)
            report.error = None if result.error is None else str(result.error)
            if result.stopped and result.error is None:
                left = [r for r in result.records if r.outcome == "abandoned"]
                running = "; ".join(f"`{r.step.command}` on {r.step.node}" for r in left)
                report.say(
                    f"Stopped by a signal after {len(result.done)} step(s); "
                    + (
                        f"still running on the node (not waited for): {running}; "
                        if left
                        else "the running step finished; "
                    )
                    + "the lock is released. Run apply again to continue."
                )
                report.outcome = "stopped"
                return EXIT_ERROR
            if result.error is not None:
                step = result.failed_step
                if isinstance(result.error, FactsChangedError):
                    to_stderr("Stopped: the cluster changed before the step ran:")
                    to_stderr("\n".join(f"  {line}" for line in result.error.changed))
                    to_stderr("Run apply again to re-plan from a fresh observation.")
                    report.outcome = "facts changed"
                else:
                    node = step.node if step is not None else "?"
                    diagnosis = await diagnose(
                        spec, transport, node, result.error, result.observed, step
                    )
                    to_stderr(diagnosis.render())
                    report.outcome = "failed"
                return EXIT_ERROR
            report.say(f"Applied {len(result.done)} step(s).")
            report.outcome = "applied"
            return await _verify(
                loaded, args, transport, report, applied=True, observed=result.observed
            )
        return await _verify(loaded, args, transport, report, applied=False, observed=run.observed)
    finally:
        await transport.close()


def _with_backup_dir(options: ExecutorOptions, state_dir: Path) -> ExecutorOptions:
    return replace(options, backup_dir=options.backup_dir or backups_dir(state_dir))


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
    loaded: LoadedSpec,
    transport: Transport,
    run: ObservationRun,
    args: argparse.Namespace,
    report: ApplyReport,
) -> ObservationRun:
    """A command still running (e.g. the join of an apply that was killed) finishes first:
    the planner plans nothing cluster-changing while one runs."""
    running = _running(run.observed)
    if not running:
        return run
    report.say("Waiting for commands still running: " + "; ".join(running))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (args.action_timeout or loaded.spec.policy.action_timeout_seconds)
    while running and loop.time() < deadline:
        await asyncio.sleep(max(args.poll_interval, 0.2))
        run = await observe_nodes(loaded.spec, transport, with_files=True, log_failures=False)
        running = _running(run.observed)
    return run


PROGRESS_SECONDS = 10.0  # a waiting apply says what it waits for at least this often


def _worth_waiting(applied: bool, observed: Observed) -> bool:
    """Waiting for the cluster to settle can change the verdict only after steps ran, or
    when every node answered (a replica still catching up); never for a node that did not
    answer or could not be read: that needs a person, not time."""
    return applied or all(obs.reachable for obs in observed.nodes.values())


async def _observe(loaded: LoadedSpec, transport: Transport) -> Observed:
    run = await observe_nodes(loaded.spec, transport, with_files=True, log_failures=False)
    return run.observed


async def _verify(
    loaded: LoadedSpec,
    args: argparse.Namespace,
    transport: Transport,
    report: ApplyReport,
    *,
    applied: bool,
    observed: Observed,
) -> int:
    """The verdict; re-observed until converged or settle_seconds when waiting can change
    it, saying what it waits for (at the start and every PROGRESS_SECONDS)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + (args.settle_seconds if _worth_waiting(applied, observed) else 0.0)
    said: float | None = None
    if applied:  # the run's last reading may predate the last step's effects
        observed = await _observe(loaded, transport)
    while True:
        the_plan = plan_with_digest(loaded, observed)
        db = await db_view_for(loaded, observed)
        problems = db_disagreements(loaded, observed, db)
        verdict = cluster_verdict(loaded.spec, observed, the_plan, problems)
        now = loop.time()
        if verdict.verdict is Verdict.CONVERGED or now >= deadline:
            break
        if said is None or now - said >= PROGRESS_SECONDS:
            what = verdict.reasons[0] if verdict.reasons else verdict.verdict.value
            report.say(
                f"Waiting for the cluster to settle ({now - started:.0f} s of "
                f"{args.settle_seconds:.0f} s): {what}"
            )
            said = now
        await asyncio.sleep(max(args.poll_interval, 0.5))
        observed = await _observe(loaded, transport)
    if db is not None and db.reachable:
        streams = ", ".join(f"{s.address} lag {s.lag_bytes}" for s in db.replicas) or "none"
        report.say(
            f"Database view: master {db.master_address} "
            f"{'in recovery!' if db.in_recovery else 'not in recovery'}; streaming: {streams}"
        )
    report.verdict, report.db, report.held_back = verdict, db, the_plan.blocked
    report.say(f"Verdict: {verdict.verdict.value}")
    for reason in verdict.reasons:
        report.say(f"  - {reason}")
    if the_plan.blocked and applied:  # without steps, the plan above already said it
        report.say("Held back:")
        for b in the_plan.blocked:
            report.say(f"  x {b.node or 'cluster'}: {b.reason}")
    return EXIT_OK if verdict.verdict is Verdict.CONVERGED else EXIT_NOT_CONVERGED


def cmd_apply(args: argparse.Namespace) -> int:
    configure_logging(verbose=args.verbose)
    as_json = args.format == "json"
    if as_json and not args.yes and not is_saved_plan(args.target):
        raise ReconcilerError("--format json cannot ask for confirmation: add --yes")
    saved: Plan | None = None
    if is_saved_plan(args.target):
        saved, spec_path = load_plan(args.target)
        loaded = load_reporting_warnings(spec_path)
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
        loaded = load_reporting_warnings(args.target)
    state_dir = prepare_state_dir(
        configured_state_dir(args.state_dir) or default_state_dir(loaded.base_dir)
    )
    with acquire_lock(
        args.lock,
        state_dir=state_dir,
        cluster=loaded.spec.cluster,
        break_lock=args.break_lock,
        timeout=args.lock_timeout,
    ) as lock:
        report = ApplyReport(loaded.spec.cluster, say=to_stderr if as_json else to_stdout)
        code = asyncio.run(run_apply(loaded, args, saved, lock, state_dir, report))
    if as_json:
        sys.stdout.write(report.to_json(code))
    return code
