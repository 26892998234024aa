"""The executor against the fake transport (the pure simulation behind the MMP's text).

Checks convergence, drift detection before a step, stop-on-failure with a
diagnosis, the destructive-step journal, resumability after any prefix, the
one-connection-per-node rule and the audit log.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from fake_transport import FakeCluster, FakeSession, FakeTransport

from reconciler.apply.audit import AuditLog, Journal, audit_path, journal_path
from reconciler.apply.diagnosis import diagnose, relevant_log_lines
from reconciler.apply.execution_result import ExecutionResult
from reconciler.apply.executor import Executor
from reconciler.apply.options import ExecutorOptions
from reconciler.apply.scheduling.order import deferred_preparation, step_predecessors
from reconciler.common.errors import (
    CommandFailedError,
    FactsChangedError,
    LockHeldError,
    StepFailedError,
)
from reconciler.observe.status_model import CommandResult
from reconciler.plan.model import Action, Plan, Step
from reconciler.plan.planner import plan
from reconciler.plan.simulation import SimNode, World, observe, settle
from reconciler.spec.local_file import LocalFile
from reconciler.spec.model import ClusterSpec
from reconciler.transport.interface import STATUS_COMMAND, NodeTarget

FAST = ExecutorOptions(poll_interval=0.0, settle_seconds=0.0, action_timeout=5.0)
CERT_FILES = {
    "certs/ca.cer": b"ca",
    "certs/server.cer": b"server cert",
    "certs/server.key": b"server key",
    "certs/client.cer": b"client cert",
    "certs/client.key": b"client key",
}
DB_CERTS = ("server.key", "server.cer", "client.key", "client.cer", "ca.cer")


def make_spec(n: int, master: str = "n1", **policy: Any) -> ClusterSpec:
    return ClusterSpec.model_validate(
        {
            "version": 1,
            "cluster": "unit",
            "master": master,
            "nodes": [{"name": f"n{i}", "address": f"127.0.20.{i}"} for i in range(1, n + 1)],
            "certificates": {
                "ca": "certs/ca.cer",
                "server": {"cert": "certs/server.cer", "key": "certs/server.key"},
                "client": {"cert": "certs/client.cer", "key": "certs/client.key"},
            },
            "ssh": {"known_hosts": "known_hosts"},
            "policy": policy,
        }
    )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, LocalFile]:
    out = {}
    for spec_path, data in CERT_FILES.items():
        local = tmp_path / spec_path
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data)
        out[spec_path] = LocalFile(
            spec_path=spec_path,
            local_path=str(local),
            remote_name=spec_path.rsplit("/", 1)[-1],
            sha256=hashlib.sha256(data).hexdigest(),
        )
    return out


def fresh_world(n: int) -> World:
    return World(
        nodes=tuple(
            SimNode(key=f"n{i}", address=f"127.0.20.{i}", files=()) for i in range(1, n + 1)
        )
    )


def clustered_world(n: int, master: int, files: dict[str, LocalFile]) -> World:
    listing = tuple(sorted((f.remote_name, f.sha256) for f in files.values()))
    master_address = f"127.0.20.{master}"
    nodes = tuple(
        SimNode(
            key=f"n{i}",
            address=f"127.0.20.{i}",
            files=listing,
            interface="a",
            certs=DB_CERTS,
            clustered=True,
            wal=10,
            last_command="database cluster initialize"
            if i == master
            else f"database cluster join {master_address}",
        )
        for i in range(1, n + 1)
    )
    addresses = tuple(node.address for node in nodes)
    return settle(World(nodes=nodes, membership=addresses, master=master_address))


class Harness:
    def __init__(
        self,
        spec: ClusterSpec,
        cluster: FakeCluster,
        state: Path,
        run_id: str = "r1",
        *,
        observed_fresh: bool = False,
    ):
        self.spec = spec
        self.observed_fresh = observed_fresh
        self.cluster = cluster
        self.transport = FakeTransport(cluster)
        self.audit = AuditLog(audit_path(state, spec.cluster), cluster=spec.cluster, run_id=run_id)
        self.journal = Journal(journal_path(state, spec.cluster), spec.cluster, run_id)
        self.lines: list[str] = []
        self.options = replace(FAST, backup_dir=state / "backups")
        self.stop: asyncio.Event | None = None

    async def execute(self, the_plan: Plan) -> ExecutionResult:
        executor = Executor(
            self.spec,
            self.transport,
            observed=observe(self.cluster.world),
            audit=self.audit,
            journal=self.journal,
            options=self.options,
            stop=self.stop,
            progress=self.lines.append,
            observed_fresh=self.observed_fresh,
        )
        return await executor.execute(the_plan)


def replan(spec: ClusterSpec, world: World, files: dict[str, LocalFile]) -> Plan:
    return plan(spec, observe(world), files)


async def test_fresh_three_nodes_converge_in_one_run(
    tmp_path: Path, files: dict[str, LocalFile]
) -> None:
    spec = make_spec(3)
    cluster = FakeCluster(fresh_world(3), async_polls=2)
    h = Harness(spec, cluster, tmp_path)
    first = replan(spec, cluster.world, files)
    assert first.steps
    result = await h.execute(first)
    assert result.ok, result.error
    assert sorted(r.step.id for r in result.records) == [s.id for s in first.steps]
    assert replan(spec, cluster.world, files).steps == ()
    assert cluster.world.master == "127.0.20.1"
    assert cluster.connects == {"n1": 1, "n2": 1, "n3": 1}  # one connection per node per run
    mutating = [c for _, c in cluster.commands]
    assert mutating.index("database cluster initialize") < mutating.index(
        "database cluster join 127.0.20.1"
    )
    audit = h.audit.entries()
    assert len(audit) == len(first.steps)
    assert all(e["result"] == "ok" and e["run_id"] == "r1" for e in audit)
    assert {e["node"] for e in audit} == {"n1", "n2", "n3"}


async def test_drift_before_a_step_stops_with_the_changed_facts(
    tmp_path: Path, files: dict[str, LocalFile]
) -> None:
    spec = make_spec(3)

    def break_n3(world: World, node: str, command: str) -> World:
        if command == "database cluster initialize":
            return world.with_node(replace(world.node("n3"), error="Couldn't join the cluster"))
        return world

    cluster = FakeCluster(fresh_world(3), before_command=break_n3)
    h = Harness(spec, cluster, tmp_path)
    the_plan = replan(spec, cluster.world, files)
    result = await h.execute(the_plan)
    assert isinstance(result.error, FactsChangedError), result.error
    assert any(c == "n3.state: planned 'disabled', now 'error'" for c in result.error.changed)
    failed = result.failed_step
    assert failed is not None and failed.node == "n3"
    assert ("n3", failed.command) not in cluster.commands
    # steps run by dependencies, not plan order: what ran before the failure may have a
    # later id (the initialize that broke n3), but nothing started after it
    failure_line = next(i for i, line in enumerate(h.lines) if "DRIFT" in line)
    assert not any(line.endswith(" ...") for line in h.lines[failure_line:])
    assert not any(n == "n3" and "join" in c for n, c in cluster.commands)


async def test_async_failure_stops_and_diagnoses(
    tmp_path: Path, files: dict[str, LocalFile]
) -> None:
    spec = make_spec(3)
    cluster = FakeCluster(
        fresh_world(3),
        fail_async={("n2", "database cluster join 127.0.20.1")},
        syslog=(
            "Nov 26 03:00:01 user.info n2 sfpool[12]: Health check 127.0.20.1: error (up = 1): "
            "could not connect to server: Connection refused\n"
            "Nov 26 03:00:02 user.info n2 sshd[13]: unrelated\n"
            "Nov 26 03:00:03 user.err n2 postgres[14]: FATAL: could not connect to the primary\n"
        ),
    )
    h = Harness(spec, cluster, tmp_path)
    result = await h.execute(replan(spec, cluster.world, files))
    assert isinstance(result.error, StepFailedError)
    assert "(Failed)" in str(result.error)
    assert ("n3", "database cluster join 127.0.20.1") not in cluster.commands
    step = result.failed_step
    assert step is not None
    diagnosis = await diagnose(spec, h.transport, step.node, result.error, result.observed, step)
    text = diagnosis.render()
    assert "'database cluster join 127.0.20.1' (Failed)" in text
    assert "sfpool[12]: Health check" in text and "postgres[14]" in text
    assert "sshd" not in text
    assert diagnosis.port_check is not None and diagnosis.port_check.address == "127.0.20.1"


@dataclass
class DiesAfterJoin(FakeCluster):
    """n2 accepts its `join`, then stops answering (powered off while the command runs)."""

    def execute(self, key: str, command: str, stdin: str | None) -> str:
        out = super().execute(key, command, stdin)
        if key == "n2" and command.startswith("database cluster join"):
            self.world = self.world.with_node(replace(self.world.node("n2"), up=False))
        return out


async def test_a_node_that_stops_answering_fails_its_step_after_bounded_polls(
    tmp_path: Path, files: dict[str, LocalFile]
) -> None:
    spec = make_spec(3)
    cluster = DiesAfterJoin(fresh_world(3), async_polls=1000)
    h = Harness(spec, cluster, tmp_path)
    h.options = replace(FAST, action_timeout=86400.0, max_failed_polls=3)
    result = await h.execute(replan(spec, cluster.world, files))
    assert isinstance(result.error, StepFailedError)
    assert result.error.retryable
    text = str(result.error)
    assert "n2 stopped answering while `database cluster join 127.0.20.1` was running" in text
    assert "3 polls in a row failed" in text and "may still be running" in text
    assert ("n3", "database cluster join 127.0.20.1") not in cluster.commands


async def test_a_stop_while_a_command_is_polled_gives_up_the_wait(
    tmp_path: Path, files: dict[str, LocalFile]
) -> None:
    spec = make_spec(3)
    stop = asyncio.Event()

    def stop_at_initialize(world: World, key: str, command: str) -> World:
        if command == "database cluster initialize":
            stop.set()  # SIGTERM arrives while the command runs
        return world

    cluster = FakeCluster(fresh_world(3), async_polls=1000, before_command=stop_at_initialize)
    h = Harness(spec, cluster, tmp_path)
    h.options = replace(FAST, action_timeout=86400.0)
    h.stop = stop
    result = await asyncio.wait_for(h.execute(replan(spec, cluster.world, files)), timeout=30)
    assert result.stopped and result.error is None
    (abandoned,) = [r for r in result.records if r.outcome == "abandoned"]
    assert abandoned.step.command == "database cluster initialize"
    assert "keeps running on the node" in abandoned.detail
    assert cluster.world.node("n1").running == "database cluster initialize"
    assert not [c for _, c in cluster.commands if c.startswith("database cluster join")]
    audit = [e for e in h.audit.entries() if e["result"] == "abandoned"]
    assert [e["command"] for e in audit] == ["database cluster initialize"]
    assert any("STOPPED" in line for line in h.lines)


async def test_refused_command_is_audited_and_stops(
    tmp_path: Path, files: dict[str, LocalFile]
) -> None:
    spec = make_spec(3)
    cluster = FakeCluster(
        fresh_world(3), fail_commands={("n1", "database cluster initialize"): "no licence"}
    )
    h = Harness(spec, cluster, tmp_path)
    result = await h.execute(replan(spec, cluster.world, files))
    assert isinstance(result.error, CommandFailedError)
    refused = [e for e in h.audit.entries() if e["command"] == "database cluster initialize"]
    assert len(refused) == 1
    assert refused[0]["result"] == "failed" and refused[0]["exit_status"] == 1
    assert not any("join" in c for _, c in cluster.commands)


async def test_master_move_with_journal(tmp_path: Path, files: dict[str, LocalFile]) -> None:
    spec = make_spec(3, master="n1")
    cluster = FakeCluster(clustered_world(3, master=2, files=files))
    h = Harness(spec, cluster, tmp_path)
    the_plan = replan(spec, cluster.world, files)
    assert any(s.action is Action.REMOVE for s in the_plan.steps)
    result = await h.execute(the_plan)
    assert result.ok, result.error
    assert cluster.world.master == "127.0.20.1"
    assert replan(spec, cluster.world, files).steps == ()
    events = [(e["node"], e["event"]) for e in h.journal.entries()]
    removes = [s for s in the_plan.steps if s.destructive]
    assert events == [(s.node, ev) for s in removes for ev in ("started", "completed")]
    # the backups came first, one per member, downloaded with their checksums
    backups = [s for s in the_plan.steps if s.action is Action.BACKUP]
    assert [s.node for s in backups] == ["n1", "n2", "n3"]
    assert the_plan.steps.index(backups[-1]) < the_plan.steps.index(removes[0])
    folder = tmp_path / "backups" / spec.cluster / (backups[0].backup or "")
    sums = (folder / "SHA256SUMS").read_text().splitlines()
    assert len(sums) == 6 and all(line.split("  ")[1].startswith("n") for line in sums)
    assert (folder / "n1" / f"{backups[0].backup}.bak").stat().st_mode & 0o777 == 0o600
    assert any("backup unit-undated saved in" in line for line in h.lines)


@pytest.mark.parametrize("cut", range(0, 14))
async def test_killed_after_any_prefix_then_rerun_converges_without_repeating(
    tmp_path: Path, files: dict[str, LocalFile], cut: int
) -> None:
    spec = make_spec(5, master="n1")
    cluster = FakeCluster(clustered_world(5, master=5, files=files))
    full = replan(spec, cluster.world, files)
    # 5 backups, then 4 removes (replicas, then the master), 4 joins
    assert [s.action for s in full.steps[:5]] == [Action.BACKUP] * 5
    assert len(full.steps) == 13
    first = Harness(spec, cluster, tmp_path, run_id="killed")
    prefix = full.model_copy(update={"steps": full.steps[:cut]})
    assert (await first.execute(prefix)).ok
    second = Harness(spec, cluster, tmp_path, run_id="again")
    result = await second.execute(replan(spec, cluster.world, files))
    assert result.ok, result.error
    assert replan(spec, cluster.world, files).steps == ()
    assert cluster.world.master == "127.0.20.1"
    removes = [c for c in cluster.commands if c[1] == "database cluster remove"]
    assert len(removes) == len(set(removes))  # no destructive step ran twice


async def test_journal_refuses_a_destructive_step_already_done(
    tmp_path: Path, files: dict[str, LocalFile]
) -> None:
    spec = make_spec(3)
    world = clustered_world(3, master=1, files=files)
    n2 = replace(
        world.node("n2"), last_command="database cluster remove", last_result=CommandResult.SUCCESS
    )
    cluster = FakeCluster(world.with_node(n2))
    h = Harness(spec, cluster, tmp_path, run_id="second")
    Journal(h.journal.path, spec.cluster, "first").mark(
        "started", step="s01", node="n2", command="database cluster remove"
    )
    step = Step(
        id="s01",
        node="n2",
        action=Action.REMOVE,
        command="database cluster remove",
        reason="test",
        destructive=True,
        confirm=True,
    )
    result = await h.execute(Plan(cluster="unit", steps=(step,)))
    assert isinstance(result.error, FactsChangedError)
    assert "already run by apply first" in str(result.error)
    assert ("n2", "database cluster remove") not in cluster.commands


async def test_unreachable_node_is_held_back_and_the_rest_converges(
    tmp_path: Path, files: dict[str, LocalFile]
) -> None:
    spec = make_spec(5)
    world = fresh_world(5)
    world = world.with_node(replace(world.node("n5"), up=False))
    cluster = FakeCluster(world)
    h = Harness(spec, cluster, tmp_path)
    the_plan = replan(spec, cluster.world, files)
    assert any(b.node == "n5" for b in the_plan.blocked)
    assert all(s.node != "n5" for s in the_plan.steps)
    result = await h.execute(the_plan)
    assert result.ok, result.error
    assert set(cluster.world.membership) == {f"127.0.20.{i}" for i in range(1, 5)}


async def test_stop_requested_gives_up_the_running_wait_and_starts_nothing_new(
    tmp_path: Path, files: dict[str, LocalFile]
) -> None:
    spec = make_spec(3)
    cluster = FakeCluster(fresh_world(3), async_polls=2)
    h = Harness(spec, cluster, tmp_path)
    the_plan = replan(spec, cluster.world, files)
    stop = asyncio.Event()

    def progress(line: str) -> None:  # SIGTERM arrives while `initialize` runs
        h.lines.append(line)
        if "database cluster initialize ..." in line:
            stop.set()

    executor = Executor(
        spec,
        h.transport,
        observed=observe(cluster.world),
        audit=h.audit,
        journal=h.journal,
        options=FAST,
        progress=progress,
        stop=stop,
    )
    result = await executor.execute(the_plan)
    assert result.ok and result.stopped
    outcomes = {r.step.action: r.outcome for r in result.records}
    assert outcomes[Action.INITIALIZE] == "abandoned"  # not waited for: it runs on
    assert Action.JOIN not in outcomes  # nothing started after the stop
    assert any("stop requested" in line for line in h.lines)
    busy = replan(spec, cluster.world, files)  # n1 is busy: a later run waits for it
    assert not {Action.INITIALIZE, Action.JOIN} & {s.action for s in busy.steps}
    for _ in range(3):  # the node finishes the command on its own
        cluster.status_text("n1")
    assert cluster.world.master == "127.0.20.1"
    rest = replan(spec, cluster.world, files)  # a later run picks up the rest
    assert [s.action for s in rest.steps if s.action is Action.JOIN] == [Action.JOIN] * 2


def test_relevant_log_lines_filters_processes() -> None:
    text = (
        "Nov 26 03:00:01 user.info cms1 schema_builder[1]: Schema upgrade complete\n"
        "Nov 26 03:00:02 user.info cms1 web_admin[2]: login\n"
        "Nov 26 03:00:03 user.info cms1 dbcluster_watcher[3]: Operation Complete\n"
    )
    assert relevant_log_lines(text) == [text.splitlines()[0], text.splitlines()[2]]


# ----------------------------------------------------------- dependency-driven scheduling
class SlowUploads(FakeTransport):
    """Uploads on the nodes in ``slow`` take ``delay`` seconds (the others are instant)."""

    def __init__(self, cluster: FakeCluster, slow: set[str], delay: float) -> None:
        super().__init__(cluster)
        self.slow = slow
        self.delay = delay

    async def session(self, target: NodeTarget) -> FakeSession:
        session = await super().session(target)
        if target.name in self.slow and not isinstance(session, _SlowSession):
            session = _SlowSession(target=session.target, cluster=session.cluster, delay=self.delay)
            self._sessions[target.name] = session
        return session


@dataclass
class _SlowSession(FakeSession):
    delay: float = 0.0

    async def upload(self, local_path: str, remote_name: str) -> None:
        await asyncio.sleep(self.delay)
        await super().upload(local_path, remote_name)


def _started(lines: list[str]) -> list[str]:
    return [line.split("]")[0][1:] for line in lines if line.endswith(" ...")]


async def test_initialize_overlaps_other_nodes_preparation_and_order_holds(
    tmp_path: Path, files: dict[str, LocalFile]
) -> None:
    spec = make_spec(3)
    members_at_join: dict[str, tuple[str, ...]] = {}

    def record(world: World, node: str, command: str) -> World:
        if " join " in f" {command} ":
            members_at_join[node] = world.membership
        return world

    cluster = FakeCluster(fresh_world(3), async_polls=2, before_command=record)
    h = Harness(spec, cluster, tmp_path)
    h.transport = SlowUploads(cluster, {"n2", "n3"}, delay=0.02)
    the_plan = replan(spec, cluster.world, files)
    result = await h.execute(the_plan)
    assert result.ok, result.error
    assert replan(spec, cluster.world, files).steps == ()
    done = [c for _, c in cluster.commands]
    initialize = done.index("database cluster initialize")
    # the master's initialize ran while the other nodes were still uploading
    last_upload_n3 = max(
        i for i, (n, c) in enumerate(cluster.commands) if n == "n3" and "sftp" in c
    )
    assert initialize < last_upload_n3
    # per node, the commands ran in plan order
    for node in ("n1", "n2", "n3"):
        planned = [
            s.command or f"sftp put {s.upload.remote_name if s.upload else ''}"
            for s in the_plan.steps
            if s.node == node
        ]
        assert [c for n, c in cluster.commands if n == node] == planned
    # a join only after initialize and after all of its node's preparation
    for node in ("n2", "n3"):
        own = [i for i, (n, _) in enumerate(cluster.commands) if n == node]
        join = own[-1]
        assert cluster.commands[join][1] == "database cluster join 127.0.20.1"
        assert join > initialize
        assert all(i < join for i in own[:-1])
    # join_concurrency 1: the second join started after the first one had taken effect
    assert "127.0.20.2" in members_at_join["n3"] or "127.0.20.3" in members_at_join["n2"]


async def test_failure_stops_new_starts_while_running_steps_finish(
    tmp_path: Path, files: dict[str, LocalFile]
) -> None:
    spec = make_spec(3)
    cluster = FakeCluster(
        fresh_world(3), fail_commands={("n1", "database cluster initialize"): "no licence"}
    )
    h = Harness(spec, cluster, tmp_path)
    h.transport = SlowUploads(cluster, {"n2", "n3"}, delay=0.02)
    the_plan = replan(spec, cluster.world, files)
    result = await h.execute(the_plan)
    assert isinstance(result.error, CommandFailedError)
    failed = result.failed_step
    assert failed is not None and failed.node == "n1" and failed.action is Action.INITIALIZE
    failure_line = next(i for i, line in enumerate(h.lines) if "FAILED" in line)
    assert not any(line.endswith(" ...") for line in h.lines[failure_line:])
    assert not any("join" in c for _, c in cluster.commands)
    # n2/n3 started preparing with initialize: the upload each was running finished
    # (recorded done), nothing after it started
    started = set(_started(h.lines))
    others = [s for s in the_plan.steps if s.node != "n1"]
    running = [s for s in others if s.id in started]
    assert running and len(running) < len(others)
    records = {r.step.id: r.outcome for r in result.records}
    assert set(records) == started
    assert all(records[s.id] == "done" for s in running)


def _step(i: int, node: str, action: Action, command: str | None = None) -> Step:
    return Step(id=f"s{i:02}", node=node, action=action, command=command or f"c{i}", reason="r")


def _fresh_cluster_steps() -> tuple[list[Step], dict[str, str]]:
    """Three fresh nodes: uploads, certs, initialize on n1, joins of n2 and n3; the
    joins' targets."""
    join = "database cluster join 10.0.0.1"
    steps = [
        _step(1, "n1", Action.UPLOAD),
        _step(2, "n2", Action.UPLOAD),
        _step(3, "n3", Action.UPLOAD),
        _step(4, "n1", Action.CERTS),
        _step(5, "n2", Action.CERTS),
        _step(6, "n3", Action.CERTS),
        _step(7, "n1", Action.INITIALIZE),
        _step(8, "n2", Action.JOIN, join),
        _step(9, "n3", Action.JOIN, join),
    ]
    return steps, {"s08": "n1", "s09": "n1"}


def test_step_predecessors_of_a_fresh_cluster() -> None:
    steps, targets = _fresh_cluster_steps()
    preds = step_predecessors(steps, clustered=frozenset(), targets=targets)
    assert preds[3] == {0}  # n1's certs after n1's upload only
    assert preds[6] == {0, 3}  # initialize: n1's preparation, not n2's or n3's
    assert preds[7] == {0, 1, 3, 4, 6}  # join n2: its preparation, the master's, initialize
    assert preds[8] == {0, 2, 3, 5, 6, 7}  # join n3 also after join n2 (one at a time)
    concurrent = step_predecessors(
        steps, clustered=frozenset(), targets=targets, join_concurrency=2
    )
    assert concurrent[8] == {0, 2, 3, 5, 6}
    # a node clustered at the start: a cluster step waits for its preparation (files in use)
    clustered = step_predecessors(steps, clustered=frozenset({"n3"}), targets=targets)
    assert clustered[6] == {0, 2, 3, 5}


def test_preparation_after_a_cluster_step_waits_for_it() -> None:
    steps = [
        _step(1, "n2", Action.REMOVE),
        _step(2, "n2", Action.CERTS),
        _step(3, "n3", Action.REMOVE),
        _step(4, "n3", Action.LOCALNODE),
        _step(5, "n4", Action.UPLOAD),
        _step(6, "n2", Action.JOIN, "database cluster join 10.0.0.1"),
    ]
    members = frozenset({"n1", "n2", "n3"})
    preds = step_predecessors(steps, clustered=members, targets={"s06": "n1"})
    assert preds[1] == {0}
    assert preds[2] == {0, 1}  # the second remove waits for n2's preparation (n2 clustered)
    assert preds[4] == {0, 2}  # n4's upload: only after the cluster steps before it
    assert preds[5] == {0, 1, 2, 3}  # n4 is not clustered: its upload does not hold the join


def test_preparation_not_needed_by_the_next_cluster_step_waits_for_its_start() -> None:
    steps, targets = _fresh_cluster_steps()
    steps.append(_step(10, "n4", Action.UPLOAD))
    preds = step_predecessors(steps, clustered=frozenset(), targets=targets)
    # n1's preparation is what initialize needs and n2's what the join after it needs:
    # both start at once; n3's gives way to initialize (it has initialize and n2's join
    # to finish in); n4's upload comes after the joins (cluster steps): it waits for them
    # to finish, not just start
    assert deferred_preparation(steps, preds, frozenset()) == {2: 6, 5: 6}
    # clustered n3: initialize waits for n3's preparation, so nothing is deferred
    clustered = frozenset({"n3"})
    preds = step_predecessors(steps, clustered=clustered, targets=targets)
    assert deferred_preparation(steps, preds, clustered) == {}


async def test_an_error_no_step_handles_propagates_as_itself(
    tmp_path: Path, files: dict[str, LocalFile]
) -> None:
    class LostLock:
        def verify(self) -> None:  # checked before every step: nothing may start
            raise LockHeldError("lost the lock: it was broken by someone else")

    spec = make_spec(3)
    cluster = FakeCluster(fresh_world(3))
    executor = Executor(
        spec,
        FakeTransport(cluster),
        observed=observe(cluster.world),
        audit=AuditLog(audit_path(tmp_path, spec.cluster), cluster=spec.cluster, run_id="r"),
        journal=Journal(journal_path(tmp_path, spec.cluster), spec.cluster, "r"),
        lock=LostLock(),  # type: ignore[arg-type]
        options=FAST,
    )
    with pytest.raises(LockHeldError, match="lost the lock"):
        await executor.execute(replan(spec, cluster.world, files))
    assert not any("initialize" in c for _, c in cluster.commands)


async def test_outcome_reads_are_reused_and_only_named_files_are_hashed(
    tmp_path: Path, files: dict[str, LocalFile]
) -> None:
    spec = make_spec(3)
    cluster = FakeCluster(fresh_world(3))
    h = Harness(spec, cluster, tmp_path)
    the_plan = replan(spec, cluster.world, files)
    result = await h.execute(the_plan)
    assert result.ok, result.error
    assert replan(spec, cluster.world, files).steps == ()
    # no step hashes the whole SFTP root, only the files it names
    assert cluster.listings == []
    by_node: dict[str, set[str]] = {}
    for step in the_plan.steps:
        named = {f.key.removeprefix("file:") for f in step.depends_on if f.key.startswith("file:")}
        if step.upload is not None:
            named.add(step.upload.remote_name)
        by_node.setdefault(step.node, set()).update(named)
    assert cluster.digest_reads
    for node, names in cluster.digest_reads:
        assert set(names) <= by_node[node], (node, names)
    # the master's steps up to initialize: the first precondition reads `status`, then
    # only the MMP commands' outcome checks (whose readings the next step re-uses; an
    # upload changes no status field, so its outcome check reads just its file)
    init = cluster.commands.index(("n1", "database cluster initialize"))
    before = [s for s in the_plan.steps if s.node == "n1" and s.action is not Action.INITIALIZE]
    commands = [s for s in before if s.action is not Action.UPLOAD]
    reads = [n for n, sent in cluster.status_reads if n == "n1" and sent <= init]
    assert len(before) > len(commands) >= 2
    assert len(reads) <= len(commands) + 1


async def test_drift_after_a_cluster_step_is_seen_despite_an_earlier_outcome_read(
    tmp_path: Path, files: dict[str, LocalFile]
) -> None:
    """n3's own steps finished before n2's join; the join changes the cluster, so n3's
    join re-reads n3 instead of re-using its last outcome check."""
    spec = make_spec(3)

    def break_n3(world: World, node: str, command: str) -> World:
        if node == "n2" and command.startswith("database cluster join"):
            return world.with_node(replace(world.node("n3"), error="Couldn't join the cluster"))
        return world

    cluster = FakeCluster(fresh_world(3), before_command=break_n3)
    h = Harness(spec, cluster, tmp_path)
    result = await h.execute(replan(spec, cluster.world, files))
    assert isinstance(result.error, FactsChangedError), result.error
    assert any(c.startswith("n3.state: planned") for c in result.error.changed)
    assert not any(n == "n3" and "join" in c for n, c in cluster.commands)


async def test_a_fresh_observation_is_each_nodes_first_re_read(
    tmp_path: Path, files: dict[str, LocalFile]
) -> None:
    """apply --yes observes after taking the lock and starts at once: the first steps of
    the master and of the first joining node re-use that reading (status and the SFTP
    listing) instead of reading again. The last node prepares once `initialize` was sent
    (a cluster step ran since the observation), so it reads again."""
    spec = make_spec(3)
    cluster = FakeCluster(fresh_world(3), async_polls=2)
    the_plan = replan(spec, cluster.world, files)
    result = await Harness(spec, cluster, tmp_path, observed_fresh=True).execute(the_plan)
    assert result.ok, result.error
    assert replan(spec, cluster.world, files).steps == ()
    # their first contact is their first upload: neither status nor files were read
    # again, and the first status read comes after the first MMP command
    for node in ("n1", "n2"):
        seen = [what for n, what in cluster.timeline if n == node]
        assert seen[0].startswith("sftp put "), (node, seen)
        assert seen.index("database cluster localnode a") < seen.index(STATUS_COMMAND)
    n3 = [what for n, what in cluster.timeline if n == "n3"]
    first_upload = next(i for i, what in enumerate(n3) if what.startswith("sftp put "))
    assert STATUS_COMMAND in n3[:first_upload]
    assert cluster.timeline.index(INITIALIZE) < cluster.timeline.index(("n3", STATUS_COMMAND))


async def test_without_a_fresh_observation_the_first_step_reads_again(
    tmp_path: Path, files: dict[str, LocalFile]
) -> None:
    spec = make_spec(3)
    cluster = FakeCluster(fresh_world(3), async_polls=2)
    result = await Harness(spec, cluster, tmp_path).execute(replan(spec, cluster.world, files))
    assert result.ok, result.error
    assert ("n1", 0) in cluster.status_reads


def _reads_between(
    cluster: FakeCluster, after: tuple[str, str], before: tuple[str, str]
) -> list[str]:
    """The nodes whose status was read between two commands, in order."""
    start = cluster.timeline.index(after)
    end = cluster.timeline.index(before)
    return [n for n, what in cluster.timeline[start:end] if what == STATUS_COMMAND]


INITIALIZE = ("n1", "database cluster initialize")
JOIN_N2 = ("n2", "database cluster join 127.0.20.1")


async def test_the_next_join_uses_the_reads_taken_with_the_last_poll(
    tmp_path: Path, files: dict[str, LocalFile]
) -> None:
    """While `initialize` runs, each poll round also reads the nodes the first join will
    re-read (its node; the master is the polled node): the join starts right after the
    round that shows (Success), without another round trip."""
    spec = make_spec(3)
    cluster = FakeCluster(fresh_world(3), async_polls=3)
    result = await Harness(spec, cluster, tmp_path).execute(replan(spec, cluster.world, files))
    assert result.ok, result.error
    between = _reads_between(cluster, INITIALIZE, JOIN_N2)
    assert between.count("n1") == 3  # the three polls; no re-read of the master
    assert between.count("n2") == 3  # read alongside each poll, not again afterwards
    # the second join: the polls of n2's join read n3 and the master alongside
    between = _reads_between(cluster, JOIN_N2, ("n3", "database cluster join 127.0.20.1"))
    assert between.count("n2") == between.count("n3") == between.count("n1") == 3


async def test_a_look_ahead_reading_too_old_is_read_again(
    tmp_path: Path, files: dict[str, LocalFile], monkeypatch: pytest.MonkeyPatch
) -> None:
    import reconciler.apply.scheduling.readings as executor_module

    monkeypatch.setattr(executor_module, "OTHER_NODE_READING_SECONDS", -1.0)
    spec = make_spec(3)
    cluster = FakeCluster(fresh_world(3), async_polls=3)
    result = await Harness(spec, cluster, tmp_path).execute(replan(spec, cluster.world, files))
    assert result.ok, result.error
    between = _reads_between(cluster, INITIALIZE, JOIN_N2)
    assert between.count("n1") == 4  # three polls, then the join's own re-read of its target


async def _progress_lines(
    tmp_path: Path, files: dict[str, LocalFile], progress_every: float
) -> list[str]:
    """The progress lines of converging 3 fresh nodes whose commands run 4 polls each."""
    spec = make_spec(3)
    cluster = FakeCluster(fresh_world(3), async_polls=4)
    h = Harness(spec, cluster, tmp_path)
    h.options = ExecutorOptions(
        poll_interval=0.0,
        settle_seconds=0.0,
        action_timeout=5.0,
        progress_every=progress_every,
        backup_dir=tmp_path / "backups",
    )
    result = await h.execute(replan(spec, cluster.world, files))
    assert result.ok, result.error
    return h.lines


async def test_a_running_command_gets_progress_lines_with_its_last_command(
    tmp_path: Path, files: dict[str, LocalFile]
) -> None:
    # every poll is "late" (progress_every=0): each one says what is running and for how long
    lines = await _progress_lines(tmp_path, files, progress_every=0.0)
    running = [line for line in lines if "still running" in line]
    initialize = [line for line in running if "database cluster initialize" in line]
    assert initialize, lines
    assert all(line.startswith("[s") and "s elapsed); Last command: " in line for line in running)
    assert all("(In progress)" in line for line in initialize)
    joins = {line.split("]")[1].split(":")[0].strip() for line in running if "join" in line}
    assert joins == {"n2", "n3"}


async def test_no_progress_line_before_progress_every(
    tmp_path: Path, files: dict[str, LocalFile]
) -> None:
    lines = await _progress_lines(tmp_path, files, progress_every=3600.0)
    assert not [line for line in lines if "still running" in line]
