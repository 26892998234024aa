"""Execute a plan against the live cluster, step by step, with drift detection.

For every step:

1. **Re-observe** the nodes it touches (its node, the nodes its facts name, a
   join's target, and the current master only when a fact is a `sync`) and re-check its
   ``depends_on`` facts with :func:`reconciler.plan.facts.changed_facts`. A fact
   that differs is given ``settle_seconds`` to come back (an election or a
   replica catching up after the previous step); if it does not, the run stops
   with :class:`DriftError` naming each fact, its planned and its current value.
2. **Journal guard** for destructive steps: when the state dir's journal shows
   this exact command on this node was already started by an apply and the
   node's `Last command` shows it succeeded or still runs, the step's effect is
   already there: refuse instead of repeating it.
3. **Run** it: SFTP upload, or the exact MMP command (``Y`` on stdin when it
   asks); audit-log it.
4. For asynchronous commands (:data:`ASYNC_ACTIONS`) **poll** `status` until
   `Last command` shows the command with ``(Success)`` or ``(Failed)``, or
   ``policy.action_timeout_seconds`` expires.
5. **Check the expected outcome** (:mod:`reconciler.apply.step_outcome`), allowing it
   ``settle_seconds`` to appear.

Scheduling is driven by dependencies, not waves (:func:`step_predecessors`): a step
starts as soon as the earlier steps it depends on are done — every earlier step of its
node, every earlier cluster step, and for a cluster step also every earlier step on a
clustered node or on its join target. So the nodes' preparation (upload, localnode,
certs, `clear error` while not clustered) runs concurrently, the master's `initialize`
starts without waiting for the other nodes' preparation, and each join starts once the
cluster steps before it and its node's preparation are done. Preparation the next
cluster step and the one after it do not need waits until the next one has *started*
(:func:`deferred_preparation`): the critical path (the master's and the first joining
node's preparation, then `initialize`) does not share the process with it. Joins run
``policy.join_concurrency`` at a time (default 1: one after another). On any failure
nothing further starts; steps already running on other nodes finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import structlog

from reconciler.apply.audit import AuditLog, Journal
from reconciler.apply.locks.backend import ClusterLock
from reconciler.apply.step_outcome import outcome_problem, same_command
from reconciler.common.errors import (
    CommandFailedError,
    CommandTimeoutError,
    DriftError,
    ReconcilerError,
    StepAbandonedError,
    StepFailedError,
    TransportError,
)
from reconciler.observe.observer import merge_observations, observe_nodes
from reconciler.observe.snapshot_model import NodeObservation, Observed
from reconciler.observe.status_model import CommandResult
from reconciler.plan.cluster_view import build_view
from reconciler.plan.facts import FILE_PREFIX, changed_facts
from reconciler.plan.model import ASYNC_ACTIONS, Action, Fact, Plan, Step
from reconciler.spec.model import ClusterSpec
from reconciler.transport.interface import Transport, target_for

log = structlog.get_logger(__name__)

PREP_ACTIONS = frozenset({Action.UPLOAD, Action.LOCALNODE, Action.CERTS})
CLUSTER_ACTIONS = frozenset(
    {Action.INITIALIZE, Action.JOIN, Action.CONNECT, Action.REMOVE, Action.UPGRADE_SCHEMA}
)


@dataclass(frozen=True)
class ExecutorOptions:
    poll_interval: float = 0.5  # the longest wait between two polls (they start at 0.05 s)
    settle_seconds: float = 30.0
    action_timeout: float | None = None  # default: policy.action_timeout_seconds
    # polls in a row that may fail (the node does not answer) while an asynchronous command
    # runs, before the step fails instead of waiting for action_timeout
    max_failed_polls: int = 5


@dataclass
class StepRecord:
    step: Step
    outcome: str  # done | failed | drift | abandoned (stopped while its command ran)
    seconds: float
    detail: str = ""


@dataclass
class ExecutionResult:
    records: list[StepRecord] = field(default_factory=list)
    error: ReconcilerError | None = None
    failed_step: Step | None = None
    observed: Observed = field(default_factory=Observed)
    stopped: bool = False  # a stop was requested; steps not yet started were not run

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def done(self) -> list[Step]:
        return [r.step for r in self.records if r.outcome == "done"]


@dataclass(frozen=True)
class _Reading:
    """A node's observation read after this run's last command to it completed: by a
    step's outcome check, by the run's own observation just before the first step, or
    alongside the polls of an asynchronous step the next steps wait for (a look-ahead)."""

    observation: NodeObservation
    sent: int  # the node's MMP-commands-sent count when it was read
    cluster_sent: int  # the run's cluster-step commands-sent count when it was read
    uploads: int  # the node's uploads count when its file checksums were read
    files: frozenset[str]  # the files whose checksums it read
    taken: float  # time.monotonic() when it was read


# A reading stands in for the re-read of a node other than the step's own (a join's
# master) only this long: in practice it is from the poll round that saw the previous
# step finish, or from that step's outcome check.
OTHER_NODE_READING_SECONDS = 1.0


class _Backoff:
    """Poll delays: ``FIRST_POLL`` (0.05 s) for the first ``FAST_POLLING`` seconds, then
    x1.25 up to ``ceiling``. On the lab an asynchronous command finishes within a second
    or two, on a real CMS in seconds to minutes: a short first phase keeps the delay
    between a command finishing and the executor noticing small, the back-off keeps a
    long command from being polled 20 times a second."""

    FIRST_POLL = 0.05
    FAST_POLLING = 1.5
    FACTOR = 1.25

    def __init__(self, ceiling: float) -> None:
        self.ceiling = ceiling
        self.delay = min(self.FIRST_POLL, ceiling)
        self.fast_until = time.monotonic() + self.FAST_POLLING

    async def sleep(self) -> None:
        await asyncio.sleep(self.delay)
        self.advance()

    def advance(self) -> None:
        if time.monotonic() >= self.fast_until:
            self.delay = min(self.delay * self.FACTOR, self.ceiling)


def is_cluster_step(step: Step, clustered: frozenset[str]) -> bool:
    """A step that changes the cluster (membership, master, schema); `clear error` on a
    node that is not clustered is preparation."""
    if step.action is Action.CLEAR_ERROR:
        return step.node in clustered
    return step.action in CLUSTER_ACTIONS


def clustered_nodes(spec: ClusterSpec, observed: Observed, steps: list[Step]) -> frozenset[str]:
    """The step nodes that are clustered (or not shown to be unclustered) when the run starts."""
    view = build_view(spec, observed)
    out = set()
    for step in steps:
        nv = view.node(step.node) or view.by_address(step.node)
        if nv is None or not nv.reachable or not nv.unclustered:
            out.add(step.node)
    return frozenset(out)


def join_targets(spec: ClusterSpec, observed: Observed, steps: list[Step]) -> dict[str, str]:
    """Step id -> the node a join/connect names (its master), when it is known."""
    view = build_view(spec, observed)
    out: dict[str, str] = {}
    for step in steps:
        if step.action in (Action.JOIN, Action.CONNECT) and step.command:
            address = step.command.split()[-1]
            nv = view.by_address(address)
            out[step.id] = nv.key if nv is not None else address
    return out


def step_predecessors(
    steps: list[Step],
    *,
    clustered: frozenset[str],
    targets: dict[str, str],
    join_concurrency: int = 1,
) -> list[frozenset[int]]:
    """For each step (by index), the earlier steps that must be done before it starts.

    Pure. Step ``i`` waits for an earlier step ``j`` when

    * both run on the same node (plan order per node);
    * ``j`` is a cluster step (initialize, join, connect, remove, upgrade_schema, `clear
      error` on a clustered node): nothing passes a cluster change — except that joins
      following one another among the cluster steps do not wait for each other when
      ``join_concurrency`` > 1 (the executor's semaphore limits them);
    * ``i`` is a cluster step and ``j`` runs on a node that is clustered (or unobservable)
      at the start — its files and settings are in use by the cluster — or on the node
      ``i`` joins/connects to;
    * ``i`` is a cluster step and ``j``'s facts name ``i``'s node or target (``j`` must
      check them before ``i`` may change them);
    * ``i`` is preparation and its facts name ``j``'s node.

    A cluster step does not wait for the preparation of the other nodes its facts name
    (`initialize` names every node's `state` and `master`): the planner leaves out of
    ``depends_on`` every fact an earlier step changes, so that preparation cannot change
    them, and the step re-checks them right before it runs anyway.

    Everything else — preparation of nodes not clustered — overlaps: the master's
    `initialize` runs while the other nodes upload (see :func:`deferred_preparation`),
    and a join starts as soon as the cluster steps before it and its own node's
    preparation are done.
    """
    out: list[frozenset[int]] = []
    cluster = [is_cluster_step(s, clustered) for s in steps]
    for i, step in enumerate(steps):
        involved = {step.node}
        target = targets.get(step.id)
        if target is not None:
            involved.add(target)
        named = {f.node for f in step.depends_on}
        joins_run = step.action is Action.JOIN and join_concurrency > 1
        preds: set[int] = set()
        for j in range(i - 1, -1, -1):
            other = steps[j]
            if cluster[j] and joins_run:
                if other.action is Action.JOIN:
                    continue  # an earlier join of the same run of joins
                joins_run = False
            if (
                other.node == step.node
                or cluster[j]
                or (other.node in named and not cluster[i])
                or (
                    cluster[i]
                    and (
                        other.node in clustered
                        or other.node in involved
                        or any(f.node in involved for f in other.depends_on)
                    )
                )
            ):
                preds.add(j)
        out.append(frozenset(preds))
    return out


def deferred_preparation(
    steps: list[Step], preds: list[frozenset[int]], clustered: frozenset[str]
) -> dict[int, int]:
    """Preparation that gives way to the critical path: step index -> the index of the
    cluster step whose *start* it waits for.

    Pure. A preparation step that neither the next cluster step after it nor the one
    after that needs (not even through other steps) starts only once the next cluster
    step has started. On fresh nodes the master's and the first joining node's
    preparation run at once, and `initialize` starts without the other nodes'
    preparation competing for the same process and cores; those prepare while
    `initialize` and the first join run, long before their own joins. (Deferring the
    first joining node too would put its preparation on the critical path whenever it
    takes longer than `initialize`, as it does at a 200 ms MMP latency.) No cycle is
    possible: the cluster step does not wait for the step deferred to it (by
    construction), and every other wait points to an earlier step or an
    earlier-starting cluster step.
    """
    ancestors: list[set[int]] = []
    for i in range(len(steps)):
        found: set[int] = set(preds[i])
        for j in preds[i]:
            found |= ancestors[j]
        ancestors.append(found)
    cluster = [is_cluster_step(s, clustered) for s in steps]
    out: dict[int, int] = {}
    for i in range(len(steps)):
        if cluster[i]:
            continue
        later = [c for c in range(i + 1, len(steps)) if cluster[c]][:2]
        if later and not any(i in ancestors[c] for c in later):
            out[i] = later[0]
    return out


def files_named(facts: Iterable[Fact]) -> dict[str, frozenset[str]]:
    """Node -> the files whose `file:<name>` facts appear in ``facts``."""
    named: dict[str, set[str]] = {}
    for fact in facts:
        if fact.key.startswith(FILE_PREFIX):
            named.setdefault(fact.node, set()).add(fact.key[len(FILE_PREFIX) :])
    return {node: frozenset(names) for node, names in named.items()}


def describe_changes(changed: tuple[tuple[object, str | None], ...]) -> tuple[str, ...]:
    lines = []
    for fact, current in changed:
        node = getattr(fact, "node", "?")
        key = getattr(fact, "key", "?")
        planned = getattr(fact, "value", None)
        lines.append(f"{node}.{key}: planned {planned!r}, now {current!r}")
    return tuple(lines)


class Executor:
    def __init__(
        self,
        spec: ClusterSpec,
        transport: Transport,
        *,
        observed: Observed,
        audit: AuditLog,
        journal: Journal,
        lock: ClusterLock | None = None,
        options: ExecutorOptions | None = None,
        progress: Callable[[str], None] | None = None,
        stop: asyncio.Event | None = None,
        observed_fresh: bool = False,
    ) -> None:
        """``stop``: once set, no further step starts; steps already running finish
        (SIGTERM/SIGINT in `apply` and `watch`: finish the current step, then stop).
        ``observed_fresh``: ``observed`` was read by this run just now (no confirmation
        prompt or other pause since): each node's first step re-uses it as its re-read."""
        self.spec = spec
        self.stop = stop
        self.transport = transport
        self.observed = observed
        self.audit = audit
        self.journal = journal
        self.lock = lock
        self.options = options or ExecutorOptions()
        self.action_timeout = self.options.action_timeout or spec.policy.action_timeout_seconds
        self._progress = progress or (lambda _line: None)
        self._result = ExecutionResult(observed=observed)
        # Re-use of an outcome check's observation by the node's next step (docs/live.md):
        self._sent: dict[str, int] = {}  # node -> MMP commands this run sent it
        self._uploads: dict[str, int] = {}  # node -> uploads this run sent it
        self._cluster_sent = 0  # cluster-step commands this run sent (any node)
        self._readings: dict[str, _Reading] = {}
        self._clustered: frozenset[str] = frozenset()
        self._observed_fresh = observed_fresh
        # the scheduler's view, for the look-ahead polls of asynchronous steps
        self._steps: list[Step] = []
        self._preds: list[frozenset[int]] = []
        self._finished: list[asyncio.Event] = []

    # ------------------------------------------------------------------ driver
    async def execute(self, plan: Plan) -> ExecutionResult:
        steps = list(plan.steps)
        if steps and self._result.error is None:
            clustered = clustered_nodes(self.spec, self.observed, steps)
            self._clustered = clustered
            preds = step_predecessors(
                steps,
                clustered=clustered,
                targets=join_targets(self.spec, self.observed, steps),
                join_concurrency=self.spec.policy.join_concurrency,
            )
            deferred = deferred_preparation(steps, preds, clustered)
            started = [asyncio.Event() for _ in steps]
            finished = [asyncio.Event() for _ in steps]
            self._steps, self._preds, self._finished = steps, preds, finished
            if self._observed_fresh:
                self._seed_readings(steps)
            joins = asyncio.Semaphore(max(1, self.spec.policy.join_concurrency))

            async def scheduled(index: int) -> None:
                try:
                    for before in sorted(preds[index]):
                        await finished[before].wait()
                    if index in deferred:
                        await started[deferred[index]].wait()
                    step = steps[index]
                    if step.action is Action.JOIN:
                        async with joins:
                            started[index].set()
                            await self._run_one(step)
                    else:
                        started[index].set()
                        await self._run_one(step)
                finally:
                    started[index].set()
                    finished[index].set()

            try:
                async with asyncio.TaskGroup() as group:
                    for index in range(len(steps)):
                        group.create_task(scheduled(index))
            except BaseExceptionGroup as errors:
                # An error no step handles (the lock lost, the audit log unwritable, a bug)
                # cancels the other steps and propagates as itself, as it did before.
                raise errors.exceptions[0] from None
        self._result.observed = self.observed
        return self._result

    async def _run_one(self, step: Step) -> None:
        if self._result.error is not None:
            return
        if self.stop is not None and self.stop.is_set():
            if not self._result.stopped:
                self._progress(f"stop requested: {step.id} and later steps not started")
            self._result.stopped = True
            return
        if self.lock is not None:
            self.lock.verify()  # LockLostError: stop before this step (the lock's backend)
        started = time.monotonic()
        label = step.command or f"upload {step.upload.remote_name if step.upload else '?'}"
        self._progress(f"[{step.id}] {step.node}: {label} ...")
        try:
            await self._step(step)
        except DriftError as exc:
            self._fail(step, exc, "drift", started)
            return
        except (StepFailedError, TransportError) as exc:
            self._fail(step, exc, "failed", started)
            return
        except StepAbandonedError as exc:
            seconds = time.monotonic() - started
            self._result.records.append(StepRecord(step, "abandoned", seconds, str(exc)))
            self.audit.record(
                node=step.node,
                command=step.command or "",
                result="abandoned",
                duration=seconds,
                step=step.id,
                exit_status=None,
                detail=str(exc),
            )
            self._result.stopped = True
            self._progress(f"[{step.id}] {step.node}: STOPPED: {exc}")
            return
        seconds = time.monotonic() - started
        self._result.records.append(StepRecord(step, "done", seconds))
        self._progress(f"[{step.id}] {step.node}: done ({seconds:.1f}s)")

    def _fail(self, step: Step, exc: ReconcilerError, outcome: str, started: float) -> None:
        seconds = time.monotonic() - started
        self._result.records.append(StepRecord(step, outcome, seconds, str(exc)))
        if self._result.error is None:
            self._result.error = exc
            self._result.failed_step = step
        self._progress(f"[{step.id}] {step.node}: {outcome.upper()}: {exc}")
        log.error("step stopped the apply", step=step.id, node=step.node, outcome=outcome)

    # ------------------------------------------------------------- one step
    async def _step(self, step: Step) -> None:
        marks = [time.monotonic()]
        await self._check_facts(step)
        marks.append(time.monotonic())
        if step.destructive:
            self._journal_guard(step)
            self.journal.mark("started", step=step.id, node=step.node, command=step.command or "")
        try:
            await self._perform(step)
            marks.append(time.monotonic())
            shown = None
            if step.action in ASYNC_ACTIONS:
                shown = await self._wait_for_result(step)
            marks.append(time.monotonic())
            await self._check_outcome(step, shown)
            marks.append(time.monotonic())
            log.debug(
                "step timing",
                step=step.id,
                node=step.node,
                check=round(marks[1] - marks[0], 3),
                run=round(marks[2] - marks[1], 3),
                wait=round(marks[3] - marks[2], 3),
                outcome=round(marks[4] - marks[3], 3),
            )
        except (StepFailedError, TransportError):
            if step.destructive:
                self.journal.mark(
                    "failed", step=step.id, node=step.node, command=step.command or ""
                )
            raise
        if step.destructive:
            self.journal.mark("completed", step=step.id, node=step.node, command=step.command or "")

    def _seed_readings(self, steps: list[Step]) -> None:
        """The run's own observation, read just before the first step with nothing sent
        since, is each node's re-read for its first step. It listed the whole SFTP root,
        so it answers for every file the steps name (a missing file is absent)."""
        named = files_named(fact for step in steps for fact in step.depends_on)
        for node, obs in self.observed.nodes.items():
            if not obs.reachable or obs.status is None:
                continue
            listed = set(obs.files) | named.get(node, set()) if obs.files is not None else set()
            self._readings[node] = _Reading(
                observation=obs,
                sent=0,
                cluster_sent=0,
                uploads=0,
                files=frozenset(listed),
                taken=time.monotonic(),
            )

    def _lookahead_nodes(self, step: Step) -> list[str]:
        """The nodes the steps that wait only for ``step`` will re-read first (a join's
        node and its master): read alongside ``step``'s polls, the last poll round's
        readings are their re-reads, so the next join does not wait one more round trip."""
        if not self._steps or (self.stop is not None and self.stop.is_set()):
            return []
        index = next((i for i, s in enumerate(self._steps) if s is step), None)
        if index is None:
            return []
        names: list[str] = []
        for later, preds in enumerate(self._preds):
            if index not in preds or later <= index:
                continue
            if any(not self._finished[p].is_set() for p in preds if p != index):
                continue
            for name in self._touched(self._steps[later]):
                if name != step.node and name not in names:
                    names.append(name)
        return names

    def _record_lookahead(
        self, names: list[str], fresh: Observed, counts: dict[str, tuple[int, int, int]]
    ) -> None:
        now = time.monotonic()
        for name in names:
            obs = fresh.get(name)
            if not obs.reachable or counts[name] != self._counts(name):
                continue
            sent, uploads, cluster_sent = counts[name]
            self._readings[name] = _Reading(
                observation=obs,
                sent=sent,
                cluster_sent=cluster_sent,
                uploads=uploads,
                files=frozenset(),
                taken=now,
            )

    def _recent_reading(self, node: str) -> bool:
        """A reading of ``node`` that still stands for a re-read by another node's step."""
        reading = self._valid_reading(node)
        return (
            reading is not None and time.monotonic() - reading.taken <= OTHER_NODE_READING_SECONDS
        )

    def _touched(self, step: Step) -> list[str]:
        """The nodes to re-observe before ``step``: its node, the nodes its facts name, a
        join's/connect's target and — only when a fact is a `sync` (defined by the master's
        own status) — the current master."""
        names: list[str] = [step.node]
        for fact in step.depends_on:
            if fact.node not in names:
                names.append(fact.node)
        joins = step.action in (Action.JOIN, Action.CONNECT) and bool(step.command)
        if not joins and not any(f.key == "sync" for f in step.depends_on):
            return names
        view = build_view(self.spec, self.observed)
        master = view.master_node
        if master is not None and master.key not in names:
            names.append(master.key)
        if joins and step.command:
            target = view.by_address(step.command.split()[-1])
            if target is not None and target.key not in names:
                names.append(target.key)
        return names

    async def _reobserve(
        self, names: list[str], *, files: dict[str, frozenset[str]] | None = None
    ) -> Observed:
        """Re-read the status of ``names`` and, concurrently, the checksums of the files
        ``files`` names per node (only those files, not the whole SFTP root). Returns
        what was read; ``self.observed`` is updated with it."""
        wanted = {n: f for n, f in (files or {}).items() if f and n in names}
        run, digests = await asyncio.gather(
            observe_nodes(self.spec, self.transport, names, with_files=False),
            asyncio.gather(*(self._digests(n, f) for n, f in wanted.items())),
        )
        nodes = dict(run.observed.nodes)
        for name, got in zip(wanted, digests, strict=True):
            obs = nodes.get(name)
            if obs is not None and obs.reachable:
                nodes[name] = self._with_digests(name, obs, got)
        fresh = Observed(observed_at=run.observed.observed_at, nodes=nodes)
        self.observed = merge_observations(self.observed, fresh)
        return fresh

    def _with_digests(
        self, name: str, obs: NodeObservation, got: dict[str, str | None] | TransportError
    ) -> NodeObservation:
        """``obs`` with the checksums just read (after an SFTP error: the node unreachable,
        as a failed listing made it)."""
        if isinstance(got, TransportError):
            return NodeObservation(unreachable=got.detail)
        known = dict(obs.files if obs.files is not None else self.observed.get(name).files or {})
        for file, digest in got.items():
            if digest is None:
                known.pop(file, None)
            else:
                known[file] = digest
        return obs.model_copy(update={"files": known})

    async def _digests(
        self, name: str, files: frozenset[str]
    ) -> dict[str, str | None] | TransportError:
        try:
            session = await self.transport.session(target_for(self.spec, name))
            return await session.file_digests(sorted(files))
        except TransportError as exc:
            return exc

    def _record_reading(self, step: Step, obs: NodeObservation, files: frozenset[str]) -> None:
        """Keep what ``step`` read of its node after the node's last command completed
        (its outcome check; its precondition check when nothing was to re-use), for the
        outcome check of an upload and for the node's next step."""
        if obs.reachable:
            self._readings[step.node] = _Reading(
                observation=obs,
                sent=self._sent.get(step.node, 0),
                cluster_sent=self._cluster_sent,
                uploads=self._uploads.get(step.node, 0),
                files=files,
                taken=time.monotonic(),
            )

    def _counts(self, node: str) -> tuple[int, int, int]:
        return (self._sent.get(node, 0), self._uploads.get(node, 0), self._cluster_sent)

    def _valid_reading(self, node: str) -> _Reading | None:
        """The node's last outcome-check reading while its status is still a re-read: no
        MMP command of this run reached the node, and no cluster step ran, since. (An
        upload changes no status field, only its own file.)"""
        reading = self._readings.get(node)
        if (
            reading is None
            or reading.sent != self._sent.get(node, 0)
            or reading.cluster_sent != self._cluster_sent
        ):
            return None
        return reading

    def _files_read(self, reading: _Reading, node: str) -> frozenset[str]:
        """The files whose checksums in ``reading`` are still a re-read (no upload since)."""
        return reading.files if reading.uploads == self._uploads.get(node, 0) else frozenset()

    async def _reuse_reading(self, node: str, files: frozenset[str]) -> bool:
        """Take the node's last outcome-check reading as its re-read (see
        :meth:`_valid_reading`); the checksums of files it did not read (or that were
        uploaded since) are read now, just those files. False: read the node again."""
        reading = self._valid_reading(node)
        if reading is None:
            return False
        obs = reading.observation
        missing = files - self._files_read(reading, node)
        if missing:
            counts = (self._sent.get(node, 0), self._uploads.get(node, 0))
            obs = self._with_digests(node, obs, await self._digests(node, missing))
            if not obs.reachable or counts != (
                self._sent.get(node, 0),
                self._uploads.get(node, 0),
            ):
                return False
        self.observed = merge_observations(self.observed, Observed(nodes={node: obs}))
        return True

    async def _check_facts(self, step: Step) -> None:
        # file checksums only for the files the facts name (an upload's own file:<name>)
        wanted = files_named(step.depends_on)
        deadline = time.monotonic() + self.options.settle_seconds
        backoff = _Backoff(self.options.poll_interval)
        first = True
        while True:
            names = self._touched(step)
            # Only the first check may re-use a reading (taken after the node's last
            # command completed, nothing sent to it since: docs/live.md): any for the
            # step's own node; for other nodes (a join's target, a fact's node) only one
            # less than OTHER_NODE_READING_SECONDS old, i.e. from the poll round or the
            # outcome check that just ended the previous step.
            if first and await self._reuse_reading(step.node, wanted.get(step.node, frozenset())):
                names.remove(step.node)
            if first:
                names = [
                    n
                    for n in names
                    if n == step.node or wanted.get(n) or not self._recent_reading(n)
                ]
            first = False
            if names:
                counts = self._counts(step.node)
                fresh = await self._reobserve(names, files=wanted)
                if step.node in names and counts == self._counts(step.node):
                    # read after the node's last command (its steps run one at a time):
                    # a re-read for this step's own outcome check, e.g. an upload's
                    self._record_reading(
                        step, fresh.get(step.node), wanted.get(step.node, frozenset())
                    )
            changed = changed_facts(self.spec, self.observed, step.depends_on)
            waiting = self._join_target_problem(step)
            if not changed and waiting is None:
                return
            if time.monotonic() >= deadline:
                if not changed and waiting is not None:
                    raise StepFailedError(
                        f"step {step.id} on {step.node} not run: {waiting}",
                        node=step.node,
                        step_id=step.id,
                        retryable=True,
                    )
                lines = describe_changes(changed)
                raise DriftError(
                    f"step {step.id} on {step.node} not run: the cluster changed since the plan "
                    f"({'; '.join(lines)})",
                    changed=lines,
                )
            await backoff.sleep()

    def _join_target_problem(self, step: Step) -> str | None:
        """A join/connect needs its target to be the master now (an earlier step of the
        same plan, e.g. the master move, may have just made it one: give the election
        time to finish)."""
        if step.action not in (Action.JOIN, Action.CONNECT) or not step.command:
            return None
        target = step.command.split()[-1]
        view = build_view(self.spec, self.observed)
        node = view.by_address(target)
        if node is None or not node.reachable:
            return None  # not observable from here: let the MMP answer
        if node.role == "master":
            return None
        return f"its target {target} is not (yet) the master (it is {node.role})"

    def _journal_guard(self, step: Step) -> None:
        entry = self.journal.last_event(step.node, step.command or "")
        if entry is None or entry.get("event") not in ("started", "completed"):
            return
        status = self.observed.get(step.node).status
        last = status.last_command if status is not None else None
        if (
            last is not None
            and same_command(last.command, step.command)
            and last.result in (CommandResult.SUCCESS, CommandResult.IN_PROGRESS)
        ):
            message = (
                f"step {step.id}: {step.command!r} on {step.node} was already run by apply "
                f"{entry.get('run_id')} at {entry.get('time')} and the node shows it "
                f"({last.raw}); not repeating a destructive step — re-plan from a fresh "
                "observation"
            )
            raise DriftError(message, changed=(f"{step.node}.last_command: {last.raw}",))

    async def _perform(self, step: Step) -> None:
        target = target_for(self.spec, step.node)
        session = await self.transport.session(target)
        started = time.monotonic()
        # counted before sending: a command that fails or times out may still have acted
        if step.action is Action.UPLOAD:
            self._uploads[step.node] = self._uploads.get(step.node, 0) + 1
        else:
            self._sent[step.node] = self._sent.get(step.node, 0) + 1
        if is_cluster_step(step, self._clustered):
            self._cluster_sent += 1
        if step.action is Action.UPLOAD:
            if step.upload is None:
                raise StepFailedError("upload step without a file", node=step.node, step_id=step.id)
            what = f"sftp put {step.upload.remote_name}"
            try:
                await session.upload(step.upload.local_path, step.upload.remote_name)
            except TransportError as exc:
                self._audit(step, what, exc, started)
                raise
            self._audit(step, what, None, started)
            return
        command = step.command or ""
        try:
            output = await session.run(command, stdin="Y\n" if step.confirm else None)
        except TransportError as exc:
            self._audit(step, command, exc, started)
            raise
        self._audit(step, command, None, started, exit_status=output.exit_status)

    def _audit(
        self,
        step: Step,
        command: str,
        error: TransportError | None,
        started: float,
        *,
        exit_status: int | None = None,
    ) -> None:
        if error is None:
            result = "ok"
        elif isinstance(error, CommandTimeoutError):
            result = "timeout"
        elif isinstance(error, CommandFailedError):
            result = "failed"
            exit_status = error.exit_status
        else:
            result = "unreachable"
        self.audit.record(
            node=step.node,
            command=command,
            result=result,
            duration=time.monotonic() - started,
            step=step.id,
            exit_status=exit_status,
            detail=error.detail if error is not None else None,
        )

    async def _wait_for_result(self, step: Step) -> NodeObservation:
        """Poll until the node shows the command's result; returns the observation that
        shows ``(Success)``."""
        target = target_for(self.spec, step.node)
        deadline = time.monotonic() + self.action_timeout
        backoff = _Backoff(self.options.poll_interval)
        failed = 0  # polls in a row at which the node did not answer
        while True:
            ahead = self._lookahead_nodes(step)  # the next steps' other inputs may finish
            counts = {name: self._counts(name) for name in ahead}
            fresh = await self._unless_stopped(step, self._reobserve([step.node, *ahead]))
            self._record_lookahead(ahead, fresh, counts)
            obs = fresh.get(step.node)
            failed = 0 if obs.reachable else failed + 1
            if failed >= self.options.max_failed_polls:
                raise StepFailedError(
                    f"{step.node} stopped answering while `{step.command}` was running "
                    f"({failed} polls in a row failed: {obs.why_not}); the command may still "
                    "be running on the node",
                    node=step.node,
                    step_id=step.id,
                    retryable=True,
                )
            last = obs.status.last_command if obs.status is not None and obs.reachable else None
            if last is not None and same_command(last.command, step.command):
                if last.result is CommandResult.SUCCESS:
                    return obs
                if last.result is CommandResult.FAILED:
                    raise StepFailedError(
                        f"{step.command!r} on {step.node} reported (Failed)",
                        node=step.node,
                        step_id=step.id,
                    )
            if time.monotonic() >= deadline:
                shown = last.raw if last is not None else obs.why_not
                raise StepFailedError(
                    f"{step.command!r} on {target.label} did not finish within "
                    f"{self.action_timeout:g}s (Last command: {shown})",
                    node=step.node,
                    step_id=step.id,
                    retryable=True,
                )
            await self._sleep_unless_stopped(step, backoff)

    def _abandoned(self, step: Step) -> StepAbandonedError:
        return StepAbandonedError(
            f"stopped while `{step.command}` was running on {step.node}: the command keeps "
            "running on the node (a later run waits for it and checks its result)",
            node=step.node,
            step_id=step.id,
        )

    async def _unless_stopped(self, step: Step, poll: Awaitable[Observed]) -> Observed:
        """One poll round, given up as soon as a stop is requested (a node that hangs must
        not keep a stopped apply waiting)."""
        if self.stop is None:
            return await poll
        reading = asyncio.ensure_future(poll)
        stopping = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if reading.done():
            return reading.result()
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError, ReconcilerError):
            await reading
        raise self._abandoned(step)

    async def _sleep_unless_stopped(self, step: Step, backoff: _Backoff) -> None:
        """The poll delay, cut short by a stop request: then the wait is given up."""
        if self.stop is None:
            await backoff.sleep()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=backoff.delay)
        backoff.advance()
        if self.stop.is_set():
            raise self._abandoned(step)

    async def _check_outcome(self, step: Step, shown: NodeObservation | None) -> None:
        """``shown``: the observation :meth:`_wait_for_result` just read (after the
        command completed). An upload's outcome is its file's checksum: just that file is
        read (and the status only when the node's last reading is no longer a re-read)."""
        name = step.upload.remote_name if step.upload is not None else None
        deadline = time.monotonic() + self.options.settle_seconds
        backoff = _Backoff(self.options.poll_interval)
        while True:
            files: frozenset[str] = frozenset()
            if name is not None:
                shown, files = await self._read_upload(step.node, name)
            elif shown is None:
                shown = (await self._reobserve([step.node])).get(step.node)
            problem = outcome_problem(step, shown)
            if problem is None:
                self._record_reading(step, shown, files)
                return
            if time.monotonic() >= deadline:
                raise StepFailedError(
                    f"step {step.id} on {step.node}: unexpected outcome: {problem}"
                    + (f" (expected: {step.expect})" if step.expect else ""),
                    node=step.node,
                    step_id=step.id,
                )
            shown = None
            await backoff.sleep()

    async def _read_upload(self, node: str, name: str) -> tuple[NodeObservation, frozenset[str]]:
        """After uploading ``name``: the node's observation with that file's checksum
        read now, and the files whose checksums in it are a re-read."""
        reading = self._valid_reading(node)
        if reading is None:
            fresh = await self._reobserve([node], files={node: frozenset({name})})
            return fresh.get(node), frozenset({name})
        # the upload (this step's, the node's only one since the reading when the
        # counts say so) changed only this file: the others read then still hold
        before = reading.files if reading.uploads == self._uploads.get(node, 0) - 1 else None
        obs = self._with_digests(
            node, reading.observation, await self._digests(node, frozenset({name}))
        )
        if obs.reachable:
            self.observed = merge_observations(self.observed, Observed(nodes={node: obs}))
        return obs, (before or frozenset()) | {name}
