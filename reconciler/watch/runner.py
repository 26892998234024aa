"""The watch loop's I/O for one spec file: :class:`LiveClusterRunner`.

The same spec loader, observer, planner, verdict, executor, lock, audit log and
journal as `reconcile apply`, behind :class:`reconciler.watch.runner_interface.ClusterRunner`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import structlog

from reconciler.apply.applied_revision import write_applied_revision
from reconciler.apply.audit import AuditLog, Journal, audit_path, journal_path
from reconciler.apply.executor import Executor
from reconciler.apply.locks.acquire import acquire_lock
from reconciler.apply.options import ExecutorOptions
from reconciler.apply.state_dir import backups_dir, default_state_dir, prepare_state_dir
from reconciler.common.errors import FactsChangedError, LockHeldError, ReconcilerError
from reconciler.common.file_limits import CERT_LIMIT, SPEC_LIMIT, FileReadError, read_bounded
from reconciler.observe.observer import observe_cluster, observe_nodes
from reconciler.observe.snapshot_model import Observed
from reconciler.plan.facts import changed_facts
from reconciler.plan.model import Plan, Step
from reconciler.plan.planner import plan as make_plan
from reconciler.plan.verdict import cluster_verdict
from reconciler.spec.cert_checks import CertFormatError, certificate_expiry
from reconciler.spec.certificate_rules import certificate_sets
from reconciler.spec.file_checks import resolve_path
from reconciler.spec.loader import load_spec, read_local_files, resolve_spec_path, spec_digest
from reconciler.spec.local_file import LocalFile
from reconciler.transport.bounded import BoundedTransport
from reconciler.transport.interface import Transport
from reconciler.transport.ssh import SshSettings, SshTransport
from reconciler.watch.runner_interface import ApplyOutcome, SpecVersion

log = structlog.get_logger("reconciler.watch")


def _file_digest(path: Path, limit: int = CERT_LIMIT) -> str:
    """sha256 of a file read as the loader reads it (bounded); OSError when refused."""
    try:
        return hashlib.sha256(read_bounded(path, limit, "file")).hexdigest()
    except FileReadError as exc:
        if exc.missing:
            return "missing"
        raise OSError(exc.errno or errno.EINVAL, exc.reason, str(path)) from None


@dataclass
class LiveClusterRunner:
    """:class:`reconciler.watch.runner_interface.ClusterRunner` over SSH, for one spec file."""

    state_dir: Path | None  # None: `.reconcile/` next to the spec, as `reconcile apply`
    ssh_limit: asyncio.Semaphore
    executor_options: ExecutorOptions = field(default_factory=ExecutorOptions)
    ssh_timeout: float | None = None
    transport_max_age: float = 900.0  # reconnect at least this often (seconds)
    lock_url: str | None = None  # --lock / $RECONCILE_LOCK; None: file: in the state dir
    lock_timeout: float = 0.0  # --lock-timeout: wait this long for a held lock
    _local_files: dict[str, dict[str, LocalFile]] = field(default_factory=dict)
    _transport: Transport | None = None
    _transport_digest: str | None = None
    _transport_born: float = 0.0

    # --- spec ---------------------------------------------------------------------
    def load(self, path: Path) -> SpecVersion:
        loaded = load_spec(path)
        local_files = read_local_files(loaded)
        digest = _version_digest(
            spec_digest(path),
            {name: f.sha256 for name, f in local_files.items()},
        )
        self._local_files = {digest: local_files}  # only the newest version is planned
        files = tuple(sorted({Path(f.local_path) for f in local_files.values()}))
        return SpecVersion(loaded=loaded, digest=digest, files=files)

    def fingerprint(self, path: Path, last: SpecVersion | None) -> str:
        # The files ``last`` names, found from ``path`` as loading it would find them (from
        # a git source, ``path`` may be the same file in a newer checkout than ``last``'s).
        base_dir = path.absolute().parent
        files: dict[str, str] = {}
        if last is not None:
            for name in self._local_files.get(last.digest, {}):
                files[name] = _file_digest(resolve_path(base_dir, name))
        return _version_digest(_file_digest(path, SPEC_LIMIT), files)

    def _files_for(self, version: SpecVersion) -> dict[str, LocalFile]:
        files = self._local_files.get(version.digest)
        if files is None:
            files = read_local_files(version.loaded)
            self._local_files[version.digest] = files
        return files

    # --- observe and plan ---------------------------------------------------------
    def new_transport(self, version: SpecVersion) -> Transport:
        loaded = version.loaded
        settings = SshSettings.from_spec(loaded.spec.ssh, loaded.base_dir, timeout=self.ssh_timeout)
        return BoundedTransport(SshTransport(settings), self.ssh_limit)

    async def transport(self, version: SpecVersion) -> Transport:
        """The loop's SSH connections, kept from cycle to cycle.

        Re-created for a new spec version (its SSH settings may differ), after any
        trouble (:meth:`drop_transport`) and when older than ``transport_max_age``, so
        steady-state cycles cost one exec request and one SFTP listing per node, not
        a handshake.
        """
        now = time.monotonic()
        if self._transport is not None and (
            self._transport_digest != version.digest
            or now - self._transport_born > self.transport_max_age
        ):
            await self.drop_transport()
        if self._transport is None:
            self._transport = self.new_transport(version)
            self._transport_digest = version.digest
            self._transport_born = now
        return self._transport

    async def drop_transport(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            with contextlib.suppress(ReconcilerError, OSError):
                await transport.close()

    async def close(self) -> None:
        await self.drop_transport()

    async def observe(self, version: SpecVersion) -> Observed:
        transport = await self.transport(version)
        try:
            observed = await observe_cluster(version.loaded, transport, with_files=True)
        except BaseException:
            await self.drop_transport()
            raise
        if any(not obs.reachable for obs in observed.nodes.values()):
            # Start the next cycle from fresh connections (and one new login attempt).
            await self.drop_transport()
        return observed

    def plan(self, version: SpecVersion, observed: Observed) -> Plan:
        result = make_plan(version.loaded.spec, observed, self._files_for(version))
        return result.model_copy(update={"spec_digest": version.digest})

    def verdict(self, version: SpecVersion, observed: Observed, plan: Plan) -> str:
        verdict = cluster_verdict(version.loaded.spec, observed, plan).verdict
        return verdict.value.replace(" ", "_")

    # --- apply --------------------------------------------------------------------
    def state_dir_for(self, version: SpecVersion) -> Path:
        return self.state_dir or default_state_dir(version.loaded.base_dir)

    async def apply(
        self,
        version: SpecVersion,
        observed: Observed,
        plan: Plan,
        steps: tuple[Step, ...],
        stop: asyncio.Event,
    ) -> ApplyOutcome:
        cluster = version.cluster
        run_id = uuid.uuid4().hex[:12]
        revision = plan.revision_sha or plan.revision  # every audit and journal record names it
        try:
            state_dir = prepare_state_dir(self.state_dir_for(version))
        except ReconcilerError as exc:
            return ApplyOutcome(applied=0, failed=0, error=str(exc))
        try:
            # In a thread: a --lock-timeout wait (or a slow lock server) must not block the loop.
            lock = await asyncio.to_thread(
                acquire_lock,
                self.lock_url,
                state_dir=state_dir,
                cluster=cluster,
                run_id=run_id,
                timeout=self.lock_timeout,
            )
        except LockHeldError as exc:
            return ApplyOutcome(applied=0, failed=0, error=str(exc), lock_held=True)
        result = None
        stopped = False
        try:
            transport = await self.transport(version)
            # The cycle planned from an observation taken before the lock: the whole plan is
            # checked against one taken under it (another apply may have acted in between).
            spec = version.loaded.spec
            fresh = (await observe_nodes(spec, transport, with_files=True)).observed
            changed = changed_facts(spec, fresh, [f for s in steps for f in s.depends_on])
            if changed:
                what = "; ".join(
                    f"{fact.node} {fact.key} was {fact.value!r}, is {now!r}"
                    for fact, now in changed
                )
                log.info("plan stale under the lock", cluster=cluster, changed=what)
                return ApplyOutcome(
                    applied=0,
                    failed=0,
                    error=f"the cluster changed before the lock was taken ({what}): re-planned",
                    drift=True,
                )
            executor = Executor(
                spec,
                transport,
                observed=fresh,
                audit=AuditLog(audit_path(state_dir, cluster), cluster, run_id, revision),
                journal=Journal(journal_path(state_dir, cluster), cluster, run_id, revision),
                lock=lock,
                options=replace(
                    self.executor_options,
                    backup_dir=self.executor_options.backup_dir or backups_dir(state_dir),
                ),
                progress=lambda line: log.info("apply", cluster=cluster, detail=line),
                stop=stop,
                observed_fresh=True,  # read under the lock, just now
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
            drift=isinstance(error, FactsChangedError),
            stopped=stopped,
        )

    def note_revision(self, version: SpecVersion, how: str) -> None:
        if version.commit is None:
            return
        try:
            state_dir = prepare_state_dir(self.state_dir_for(version))
            write_applied_revision(state_dir, version.cluster, version.commit, how)
        except (ReconcilerError, OSError) as exc:
            log.warning("revision record not written", cluster=version.cluster, error=str(exc))

    # --- certificates -------------------------------------------------------------
    def certificate_days(self, version: SpecVersion, now: datetime) -> dict[str, float]:
        out: dict[str, float] = {}
        for _path, certs in certificate_sets(version.loaded.spec):
            names = [certs.ca, certs.client.cert]
            if certs.server is not None:
                names.append(certs.server.cert)
            for name in names:
                if name in out:
                    continue
                try:
                    expiry = certificate_expiry(resolve_spec_path(version.loaded, name))
                except (OSError, CertFormatError) as exc:
                    log.warning("certificate not readable", file=name, error=str(exc))
                    continue
                out[name] = round((expiry - now).total_seconds() / 86400, 3)
        return out


def _version_digest(spec_sha: str, files: dict[str, str]) -> str:
    h = hashlib.sha256(spec_sha.encode())
    for name in sorted(files):
        h.update(f"\0{name}\0{files[name]}".encode())
    return h.hexdigest()
