"""`reconcile watch SPEC_OR_DIR...` or `reconcile watch --git URL`: the live wiring of watch.

:func:`register` adds the subcommand to the main parser; :func:`run_watch` runs the
supervisor (:mod:`reconciler.watch.supervisor`) over one
:class:`reconciler.watch.runner.LiveClusterRunner` per spec file, the file watcher and
the metrics server until SIGTERM/SIGINT, with one shared bound on SSH work
(:mod:`reconciler.transport.bounded`); with ``--git`` also the git follower and the webhook
(:mod:`reconciler.cli.watch_git`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from reconciler.apply.locks.acquire import add_lock_arguments
from reconciler.apply.locks.url import parse_lock_url
from reconciler.apply.options import ExecutorOptions
from reconciler.apply.state_dir import STATE_DIR_NAME, configured_state_dir, prepare_state_dir
from reconciler.cli.argument_types import listen_port, positive_seconds
from reconciler.cli.arguments import add_backup_argument, add_executor_arguments
from reconciler.cli.watch_git import GitOptions, add_git_arguments, git_options_from_args
from reconciler.common.errors import ReconcilerError
from reconciler.common.logging_setup import configure_logging
from reconciler.watch.backoff import BackoffPolicy
from reconciler.watch.decision import Mode
from reconciler.watch.loop import WatchConfig
from reconciler.watch.triggers import DEFAULT_DEBOUNCE_MS, watch_for_changes

log = structlog.get_logger("reconciler.watch")

DEFAULT_METRICS_ADDRESS = "127.0.0.1"
DEFAULT_MAX_SSH = 256  # one round for ~80 three-node clusters; see docs/watch.md
EXIT_OK = 0


# --- running it -------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchOptions:
    paths: tuple[Path, ...]
    config: WatchConfig
    state_dir: Path | None
    metrics_port: int | None = None
    metrics_address: str = DEFAULT_METRICS_ADDRESS
    max_ssh: int = DEFAULT_MAX_SSH
    debounce_ms: int = DEFAULT_DEBOUNCE_MS
    healthz_max_age: float | None = None
    executor_options: ExecutorOptions = field(default_factory=ExecutorOptions)
    ssh_timeout: float | None = None
    lock_url: str | None = None
    lock_timeout: float = 0.0
    git: GitOptions | None = None  # --git: paths is empty, state_dir set

    @property
    def stale_after(self) -> float:
        if self.healthz_max_age is not None:
            return self.healthz_max_age
        return 3 * self.config.interval + 300


async def run_watch(options: WatchOptions) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code (0 after a graceful stop)."""
    # Imported here: every `reconcile` command builds the parser that registers `watch`,
    # and only `watch` needs prometheus-client and the live runner.
    from reconciler.cli.watch_git import GitWatch
    from reconciler.watch.metrics import (
        HealthState,
        MetricsServer,
        WatchMetrics,
        start_metrics_server,
    )
    from reconciler.watch.runner import LiveClusterRunner
    from reconciler.watch.supervisor import WatchSupervisor

    metrics = WatchMetrics()
    health = HealthState(stale_after=options.stale_after)
    ssh_limit = asyncio.Semaphore(options.max_ssh)

    def runner_factory(_path: Path) -> LiveClusterRunner:
        return LiveClusterRunner(
            state_dir=options.state_dir,
            ssh_limit=ssh_limit,
            executor_options=options.executor_options,
            ssh_timeout=options.ssh_timeout,
            lock_url=options.lock_url,
            lock_timeout=options.lock_timeout,
        )

    git = None
    if options.git is not None and options.state_dir is not None:
        git = GitWatch.create(options.git, prepare_state_dir(options.state_dir))
    supervisor = WatchSupervisor(
        [git.checkouts.stable] if git else list(options.paths),
        runner_factory,
        options.config,
        metrics=metrics,
        health=health,
        source=git.checkouts if git else None,
    )
    following = await git.start(supervisor) if git is not None else None
    server: MetricsServer | None = None
    if options.metrics_port is not None:
        try:
            server = start_metrics_server(
                metrics,
                health,
                host=options.metrics_address,
                port=options.metrics_port,
                webhook=git.webhook if git else None,
            )
        except OSError as exc:
            raise ReconcilerError(
                f"cannot serve metrics on {options.metrics_address}:{options.metrics_port} "
                f"(--metrics-address/--metrics-port): {exc.strerror or exc}"
            ) from None
        log.info(
            "metrics listening",
            address=options.metrics_address,
            port=server.port,
            paths="/metrics /healthz" + (" /hooks/git" if git and git.webhook else ""),
        )
    loop = asyncio.get_running_loop()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        name = signal.Signals(signum).name
        # Act first, log second: logging may fail (e.g. a closed stdout pipe).
        if signals_seen == 1:
            supervisor.stop()
            with contextlib.suppress(OSError):
                log.info("signal received: stopping after the current step", signal=name)
        else:
            for task in asyncio.all_tasks(loop):
                if task is not asyncio.current_task(loop):
                    task.cancel()
            with contextlib.suppress(OSError):
                log.warning("second signal: cancelling now", signal=name)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    log.info(
        "watch started",
        mode=options.config.mode.value,
        interval_s=options.config.interval,
        **(git.log_fields() if git else {"paths": [str(p) for p in options.paths]}),
        state_dir=str(options.state_dir or f"{STATE_DIR_NAME}/ next to each spec"),
        max_ssh=options.max_ssh,
    )
    try:
        watcher = asyncio.create_task(
            watch_for_changes(
                supervisor.watch_roots,
                supervisor.on_changes,
                supervisor.stop_event,
                debounce_ms=options.debounce_ms,
            ),
            name="file watcher",
        )
        await supervisor.run()
        await watcher
        if following is not None:  # a fetch under way is not waited for (it times out)
            following.cancel()
    except asyncio.CancelledError:
        log.warning("watch cancelled")
        return 130
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if server is not None:
            server.close()
    log.info("watch stopped")
    return EXIT_OK


# --- command line ------------------------------------------------------------------------


def _env_port(name: str) -> int | None:
    value = os.environ.get(name)
    if not value:
        return None
    try:
        return listen_port(value)
    except argparse.ArgumentTypeError as exc:
        raise ReconcilerError(f"${name} {exc}") from None


def add_watch_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("specs", nargs="*", type=Path, metavar="SPEC_OR_DIR")
    p.add_argument(
        "--interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="cycle cadence per cluster (±10%% jitter); changes wake it earlier (default 60)",
    )
    p.add_argument(
        "--mode",
        choices=[m.value for m in Mode],
        default=Mode.REPORT.value,
        help="report: observe, plan and log the drift; heal: also apply it (default report)",
    )
    p.add_argument(
        "--metrics-port",
        type=listen_port,
        default=None,
        metavar="PORT",
        help="serve /metrics and /healthz on this port, 0: any free one (default "
        "$RECONCILE_METRICS_PORT; off)",
    )
    p.add_argument(
        "--metrics-address",
        default=os.environ.get("RECONCILE_METRICS_ADDRESS", DEFAULT_METRICS_ADDRESS),
        metavar="ADDR",
        help="address the metrics server binds (default $RECONCILE_METRICS_ADDRESS or 127.0.0.1)",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="lock, audit log and journal directory (default $RECONCILE_STATE_DIR, else "
        f"{STATE_DIR_NAME}/ next to each spec, the same as `reconcile apply`; with --git "
        f"{STATE_DIR_NAME}/ here, and the clone in its git/)",
    )
    p.add_argument(
        "--max-ssh",
        type=int,
        default=DEFAULT_MAX_SSH,
        metavar="N",
        help=f"SSH handshakes/requests in flight across all clusters (default {DEFAULT_MAX_SSH})",
    )
    p.add_argument(
        "--debounce-ms",
        type=int,
        default=DEFAULT_DEBOUNCE_MS,
        metavar="MS",
        help=f"group file changes for at most this long (default {DEFAULT_DEBOUNCE_MS})",
    )
    p.add_argument(
        "--healthz-max-age",
        type=float,
        default=None,
        metavar="SECONDS",
        help="/healthz fails when a loop made no progress for this long (default 3×interval+300)",
    )
    p.add_argument(
        "--log-format",
        choices=("auto", "console", "json"),
        default="auto",
        help="console on a TTY, JSON lines otherwise (default auto)",
    )
    p.add_argument(
        "--timeout",
        type=positive_seconds,
        metavar="SECONDS",
        help="SSH connect and per-command timeout (default: ssh.connect_timeout/command_timeout)",
    )
    add_executor_arguments(p, poll_interval=1.0)
    add_lock_arguments(p)
    add_backup_argument(p)
    add_git_arguments(p)
    p.add_argument("-v", "--verbose", action="count", default=0, help="-v: debug logs")


def options_from_args(args: argparse.Namespace) -> WatchOptions:
    if args.interval <= 0:
        raise ReconcilerError("--interval must be positive")
    if args.max_ssh < 1:
        raise ReconcilerError("--max-ssh must be at least 1")
    git = git_options_from_args(args)
    if git is None and not args.specs:
        raise ReconcilerError("give SPEC_OR_DIR... to watch, or --git URL to follow")
    metrics_port = (
        args.metrics_port if args.metrics_port is not None else _env_port("RECONCILE_METRICS_PORT")
    )
    if git is not None and git.webhook_secret and metrics_port is None:
        raise ReconcilerError("--webhook-secret-env: the webhook is served on --metrics-port")
    state_dir = configured_state_dir(args.state_dir)
    if git is not None and state_dir is None:
        state_dir = Path(STATE_DIR_NAME).absolute()
    return WatchOptions(
        paths=tuple(args.specs),
        config=WatchConfig(
            interval=args.interval,
            mode=Mode(args.mode),
            backoff=BackoffPolicy(cap=max(600.0, args.interval)),
        ),
        state_dir=state_dir,
        metrics_port=metrics_port,
        metrics_address=args.metrics_address,
        max_ssh=args.max_ssh,
        debounce_ms=args.debounce_ms,
        healthz_max_age=args.healthz_max_age,
        executor_options=ExecutorOptions(
            poll_interval=args.poll_interval,
            settle_seconds=args.settle_seconds,
            action_timeout=args.action_timeout,
            max_failed_polls=args.max_failed_polls,
            backup_dir=args.backup_dir,
        ),
        ssh_timeout=args.timeout,
        lock_url=parse_lock_url(args.lock).raw,  # a bad URL fails at start, not each cycle
        lock_timeout=args.lock_timeout,
        git=git,
    )


def cmd_watch(args: argparse.Namespace) -> int:
    configure_watch_logging(args.log_format, args.verbose)
    options = options_from_args(args)
    missing = [p for p in options.paths if not p.exists()]
    if missing:
        raise ReconcilerError("no such file or directory: " + ", ".join(map(str, missing)))
    return asyncio.run(run_watch(options))


def configure_watch_logging(fmt: str, verbose: int) -> None:
    """Info level by default (the summary lines); ``-v`` adds debug."""
    json_lines = None if fmt == "auto" else fmt == "json"
    configure_logging(verbose=1 + verbose, json_lines=json_lines)


def register(subparsers: Any) -> None:
    """Add `watch` to the main parser's subcommands (called by reconciler.cli)."""
    p = subparsers.add_parser(
        "watch",
        help="reconcile continuously: observe, plan, report or heal; woken by spec changes",
        description="Level-triggered loop per cluster, woken early when a spec file changes. "
        "Stop with SIGTERM/SIGINT: the current step finishes and the lock is released.",
    )
    add_watch_arguments(p)
    p.set_defaults(handler=cmd_watch)
