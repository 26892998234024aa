"""`reconcile watch SPEC_OR_DIR...`: the live wiring of the watch loop.

:func:`register` adds the subcommand to the main parser. :class:`LiveClusterRunner`
is the loop's I/O for one spec file — the same spec loader, observer, planner,
verdict, executor, lock, audit log and journal as `reconcile apply` — and
:class:`BoundedTransport` shares one limit on concurrent SSH work between all
watched clusters. :func:`run_watch` runs the supervisor, the file watcher and
the metrics server until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import signal
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from reconciler.apply_lock import ApplyLock
from reconciler.audit_log import AuditLog, Journal, audit_path, journal_path
from reconciler.backoff import BackoffPolicy
from reconciler.cert_checks import CertFormatError, certificate_expiry
from reconciler.cli_live import STATE_DIR_NAME, add_executor_arguments
from reconciler.cluster_verdict import cluster_verdict
from reconciler.errors import DriftError, LockHeldError, ReconcilerError
from reconciler.executor import Executor, ExecutorOptions
from reconciler.logging_setup import configure_logging
from reconciler.metrics import HealthState, MetricsServer, WatchMetrics, start_metrics_server
from reconciler.observer import observe_cluster
from reconciler.plan_model import LocalFile, Plan, Step
from reconciler.planner import plan as make_plan
from reconciler.snapshot_model import Observed
from reconciler.spec_loader import load_spec, read_local_files, resolve_spec_path
from reconciler.spec_rules import certificate_sets
from reconciler.ssh_transport import SshSettings, SshTransport
from reconciler.transport import CommandOutput, NodeSession, NodeTarget, Transport
from reconciler.watch_loop import ApplyOutcome, Mode, Revision, WatchConfig, WatchSupervisor
from reconciler.watch_triggers import DEFAULT_DEBOUNCE_MS, watch_for_changes

log = structlog.get_logger("reconciler.watch")

DEFAULT_METRICS_ADDRESS = "127.0.0.1"
DEFAULT_MAX_SSH = 256  # one round for ~80 three-node clusters; see docs/watch.md
EXIT_OK = 0


# --- a shared bound on SSH work -------------------------------------------------------


class BoundedSession:
    """A session whose commands and transfers each take a slot of the shared limit."""

    def __init__(self, inner: NodeSession, limit: asyncio.Semaphore) -> None:
        self._inner = inner
        self._limit = limit

    @property
    def target(self) -> NodeTarget:
        return self._inner.target

    async def run(self, command: str, *, stdin: str | None = None) -> CommandOutput:
        async with self._limit:
            return await self._inner.run(command, stdin=stdin)

    async def upload(self, local_path: str, remote_name: str) -> None:
        async with self._limit:
            await self._inner.upload(local_path, remote_name)

    async def list_files(self) -> dict[str, str]:
        async with self._limit:
            return await self._inner.list_files()

    async def file_digests(self, names: Iterable[str]) -> dict[str, str | None]:
        async with self._limit:
            return await self._inner.file_digests(names)

    async def close(self) -> None:
        await self._inner.close()


class BoundedTransport:
    """Wraps a run's transport: connecting and every exec/SFTP request hold a slot.

    One semaphore is shared by all clusters' transports, so at most ``limit``
    SSH handshakes or requests are in flight in the whole process however many
    clusters are watched; a long asynchronous MMP command (polled with
    ``status``) does not hold a slot while it runs on the node.
    """

    def __init__(self, inner: Transport, limit: asyncio.Semaphore) -> None:
        self._inner = inner
        self._limit = limit
        self._sessions: dict[str, BoundedSession] = {}

    async def session(self, target: NodeTarget) -> NodeSession:
        async with self._limit:
            inner = await self._inner.session(target)
        wrapped = self._sessions.get(target.name)
        if wrapped is None or wrapped._inner is not inner:
            wrapped = BoundedSession(inner, self._limit)
            self._sessions[target.name] = wrapped
        return wrapped

    def forget(self, target: NodeTarget) -> None:
        self._sessions.pop(target.name, None)
        self._inner.forget(target)

    async def close(self) -> None:
        self._sessions.clear()
        await self._inner.close()


# --- the live runner --------------------------------------------------------------------


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return "missing"


@dataclass
class LiveClusterRunner:
    """:class:`reconciler.watch_loop.ClusterRunner` over SSH, for one spec file."""

    state_dir: Path | None  # None: `.reconcile/` next to the spec, as `reconcile apply`
    ssh_limit: asyncio.Semaphore
    executor_options: ExecutorOptions = field(default_factory=ExecutorOptions)
    ssh_timeout: float | None = None
    transport_max_age: float = 900.0  # reconnect at least this often (seconds)
    _local_files: dict[str, dict[str, LocalFile]] = field(default_factory=dict)
    _transport: Transport | None = None
    _transport_digest: str | None = None
    _transport_born: float = 0.0

    # --- spec ---------------------------------------------------------------------
    def load(self, path: Path) -> Revision:
        loaded = load_spec(path)
        local_files = read_local_files(loaded)
        digest = _revision_digest(
            hashlib.sha256(path.read_bytes()).hexdigest(),
            {name: f.sha256 for name, f in local_files.items()},
        )
        self._local_files = {digest: local_files}  # only the newest revision is planned
        files = tuple(sorted({Path(f.local_path) for f in local_files.values()}))
        return Revision(loaded=loaded, digest=digest, files=files)

    def fingerprint(self, path: Path, last: Revision | None) -> str:
        files: dict[str, str] = {}
        if last is not None:
            for name in self._local_files.get(last.digest, {}):
                files[name] = _file_digest(resolve_spec_path(last.loaded, name))
        return _revision_digest(_file_digest(path), files)

    def _files_for(self, revision: Revision) -> dict[str, LocalFile]:
        files = self._local_files.get(revision.digest)
        if files is None:
            files = read_local_files(revision.loaded)
            self._local_files[revision.digest] = files
        return files

    # --- observe and plan ---------------------------------------------------------
    def new_transport(self, revision: Revision) -> Transport:
        loaded = revision.loaded
        settings = SshSettings.from_spec(loaded.spec.ssh, loaded.base_dir, timeout=self.ssh_timeout)
        return BoundedTransport(SshTransport(settings), self.ssh_limit)

    async def transport(self, revision: Revision) -> Transport:
        """The loop's SSH connections, kept from cycle to cycle.

        Re-created for a new spec revision (its SSH settings may differ), after any
        trouble (:meth:`drop_transport`) and when older than ``transport_max_age``, so
        steady-state cycles cost one exec request and one SFTP listing per node, not
        a handshake.
        """
        now = time.monotonic()
        if self._transport is not None and (
            self._transport_digest != revision.digest
            or now - self._transport_born > self.transport_max_age
        ):
            await self.drop_transport()
        if self._transport is None:
            self._transport = self.new_transport(revision)
            self._transport_digest = revision.digest
            self._transport_born = now
        return self._transport

    async def drop_transport(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            with contextlib.suppress(ReconcilerError, OSError):
                await transport.close()

    async def close(self) -> None:
        await self.drop_transport()

    async def observe(self, revision: Revision) -> Observed:
        transport = await self.transport(revision)
        try:
            observed = await observe_cluster(revision.loaded, transport, with_files=True)
        except BaseException:
            await self.drop_transport()
            raise
        if any(not obs.reachable for obs in observed.nodes.values()):
            # Start the next cycle from fresh connections (and one new login attempt).
            await self.drop_transport()
        return observed

    def plan(self, revision: Revision, observed: Observed) -> Plan:
        result = make_plan(revision.loaded.spec, observed, self._files_for(revision))
        return result.model_copy(update={"spec_digest": revision.digest})

    def verdict(self, revision: Revision, observed: Observed, plan: Plan) -> str:
        verdict = cluster_verdict(revision.loaded.spec, observed, plan).verdict
        return verdict.value.replace(" ", "_")

    # --- apply --------------------------------------------------------------------
    def state_dir_for(self, revision: Revision) -> Path:
        return self.state_dir or revision.loaded.base_dir / STATE_DIR_NAME

    async def apply(
        self,
        revision: Revision,
        observed: Observed,
        plan: Plan,
        steps: tuple[Step, ...],
        stop: asyncio.Event,
    ) -> ApplyOutcome:
        cluster = revision.cluster
        run_id = uuid.uuid4().hex[:12]
        state_dir = self.state_dir_for(revision)
        try:
            lock = ApplyLock.acquire(state_dir, cluster, run_id=run_id)
        except LockHeldError as exc:
            return ApplyOutcome(applied=0, failed=0, error=str(exc), lock_held=True)
        result = None
        stopped = False
        try:
            transport = await self.transport(revision)
            executor = Executor(
                revision.loaded.spec,
                transport,
                observed=observed,
                audit=AuditLog(audit_path(state_dir, cluster), cluster, run_id),
                journal=Journal(journal_path(state_dir, cluster), cluster, run_id),
                lock=lock,
                options=self.executor_options,
                progress=lambda line: log.info("apply", cluster=cluster, detail=line),
                stop=stop,
            )
            # Once `stop` is set the executor starts no further step; running ones finish.
            result = await executor.execute(plan.model_copy(update={"steps": steps}))
            stopped = result.stopped
        except BaseException:
            await self.drop_transport()
            raise
        finally:
            lock.release()
        if result is not None and not result.ok:
            await self.drop_transport()
        if result is None:
            return ApplyOutcome(applied=0, failed=0, stopped=stopped)
        failed = sum(1 for r in result.records if r.outcome == "failed")
        error = result.error
        return ApplyOutcome(
            applied=len(result.done),
            failed=failed,
            error=str(error) if error is not None else None,
            drift=isinstance(error, DriftError),
            stopped=stopped,
        )

    # --- certificates -------------------------------------------------------------
    def certificate_days(self, revision: Revision, now: datetime) -> dict[str, float]:
        out: dict[str, float] = {}
        for _path, certs in certificate_sets(revision.loaded.spec):
            names = [certs.ca, certs.client.cert]
            if certs.server is not None:
                names.append(certs.server.cert)
            for name in names:
                if name in out:
                    continue
                try:
                    expiry = certificate_expiry(resolve_spec_path(revision.loaded, name))
                except (OSError, CertFormatError) as exc:
                    log.warning("certificate not readable", file=name, error=str(exc))
                    continue
                out[name] = round((expiry - now).total_seconds() / 86400, 3)
        return out


def _revision_digest(spec_sha: str, files: dict[str, str]) -> str:
    h = hashlib.sha256(spec_sha.encode())
    for name in sorted(files):
        h.update(f"\0{name}\0{files[name]}".encode())
    return h.hexdigest()


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

    @property
    def stale_after(self) -> float:
        if self.healthz_max_age is not None:
            return self.healthz_max_age
        return 3 * self.config.interval + 300


async def run_watch(options: WatchOptions) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code (0 after a graceful stop)."""
    metrics = WatchMetrics()
    health = HealthState(stale_after=options.stale_after)
    ssh_limit = asyncio.Semaphore(options.max_ssh)

    def runner_factory(_path: Path) -> LiveClusterRunner:
        return LiveClusterRunner(
            state_dir=options.state_dir,
            ssh_limit=ssh_limit,
            executor_options=options.executor_options,
            ssh_timeout=options.ssh_timeout,
        )

    supervisor = WatchSupervisor(
        list(options.paths), runner_factory, options.config, metrics=metrics, health=health
    )
    server: MetricsServer | None = None
    if options.metrics_port is not None:
        server = start_metrics_server(
            metrics, health, host=options.metrics_address, port=options.metrics_port
        )
        log.info(
            "metrics listening",
            address=options.metrics_address,
            port=server.port,
            paths="/metrics /healthz",
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
        paths=[str(p) for p in options.paths],
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
        return int(value)
    except ValueError:
        raise ReconcilerError(f"${name} must be a port number, not {value!r}") from None


def default_state_dir() -> Path | None:
    """$RECONCILE_STATE_DIR, else None (`.reconcile/` next to each spec, like apply)."""
    env = os.environ.get("RECONCILE_STATE_DIR")
    return Path(env) if env else None


def add_watch_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("specs", nargs="+", type=Path, metavar="SPEC_OR_DIR")
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
        type=int,
        default=None,
        metavar="PORT",
        help="serve /metrics and /healthz on this port (default $RECONCILE_METRICS_PORT; off)",
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
        f"{STATE_DIR_NAME}/ next to each spec, the same as `reconcile apply`)",
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
        type=float,
        metavar="SECONDS",
        help="SSH connect and per-command timeout (default: ssh.connect_timeout/command_timeout)",
    )
    add_executor_arguments(p, poll_interval=1.0)
    p.add_argument("-v", "--verbose", action="count", default=0, help="-v: debug logs")


def options_from_args(args: argparse.Namespace) -> WatchOptions:
    if args.interval <= 0:
        raise ReconcilerError("--interval must be positive")
    if args.max_ssh < 1:
        raise ReconcilerError("--max-ssh must be at least 1")
    return WatchOptions(
        paths=tuple(args.specs),
        config=WatchConfig(
            interval=args.interval,
            mode=Mode(args.mode),
            backoff=BackoffPolicy(cap=max(600.0, args.interval)),
        ),
        state_dir=args.state_dir or default_state_dir(),
        metrics_port=(
            args.metrics_port
            if args.metrics_port is not None
            else _env_port("RECONCILE_METRICS_PORT")
        ),
        metrics_address=args.metrics_address,
        max_ssh=args.max_ssh,
        debounce_ms=args.debounce_ms,
        healthz_max_age=args.healthz_max_age,
        executor_options=ExecutorOptions(
            poll_interval=args.poll_interval,
            settle_seconds=args.settle_seconds,
            action_timeout=args.action_timeout,
        ),
        ssh_timeout=args.timeout,
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
