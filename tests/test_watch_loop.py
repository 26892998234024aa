"""The watch loop's decisions, driven through an injected fake runner (no I/O, no SSH)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from reconciler.common.diagnostics import Diagnostic, Severity
from reconciler.common.errors import SpecError, UnreachableError
from reconciler.observe.snapshot_model import Observed
from reconciler.plan.model import Action, Plan, Step
from reconciler.spec.loader import LoadedSpec
from reconciler.spec.model import ClusterSpec
from reconciler.transport.bounded import BoundedTransport
from reconciler.transport.interface import CommandOutput, NodeTarget
from reconciler.watch.backoff import BackoffPolicy
from reconciler.watch.decision import Mode, decide
from reconciler.watch.loop import ClusterLoop, WatchConfig
from reconciler.watch.metrics import HealthState, WatchMetrics
from reconciler.watch.runner_interface import ApplyOutcome, SpecVersion
from reconciler.watch.supervisor import WatchSupervisor
from reconciler.watch.triggers import symlink_parents, watch_for_changes

# Friday 2026-11-20 12:00 UTC; the window below is Saturday night.
NOON_FRIDAY = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SATURDAY_NIGHT = datetime(2026, 11, 21, 23, 0, tzinfo=UTC)
WINDOW = {"days": ["sat"], "start": "22:00", "end": "02:00", "timezone": "UTC"}


def make_spec(cluster: str = "lon", **policy: Any) -> ClusterSpec:
    return ClusterSpec.model_validate(
        {
            "version": 1,
            "cluster": cluster,
            "master": "cms1",
            "nodes": [
                {"name": "cms1", "address": "127.0.0.1"},
                {"name": "cms2", "address": "127.0.0.2"},
                {"name": "cms3", "address": "127.0.0.3"},
            ],
            "certificates": {"ca": "ca.pem", "client": {"cert": "c.pem", "key": "c.key"}},
            "ssh": {"known_hosts": "known_hosts"},
            "policy": policy,
        }
    )


def step(
    n: int, action: Action = Action.JOIN, *, destructive: bool = False, procedure: str | None = None
) -> Step:
    return Step(
        id=f"s{n:02d}",
        node=f"cms{n}",
        action=action,
        command=f"database cluster {action.value}",
        reason="test",
        destructive=destructive,
        procedure=procedure,
    )


SPEC_ERROR = SpecError(
    "invalid",
    (
        Diagnostic(Severity.ERROR, "lon.yaml", 3, 1, "master", "unknown node 'cms9'"),
        Diagnostic(Severity.ERROR, "lon.yaml", 7, 5, "nodes[1].address", "duplicate address"),
    ),
)


class FakeRunner:
    """In-memory spec "file" contents; each valid content maps to a spec and a plan."""

    def __init__(self, spec: ClusterSpec | None = None, steps: tuple[Step, ...] = ()) -> None:
        self.content = "v1"
        self.specs: dict[str, ClusterSpec] = {"v1": spec or make_spec()}
        self.steps: dict[str, tuple[Step, ...]] = {"v1": steps}
        self.outcomes: list[ApplyOutcome] = []
        self.gate: asyncio.Event | None = None
        self.apply_started = asyncio.Event()
        self.calls: list[tuple[str, str]] = []  # (what, spec version digest)
        self.applied: list[tuple[str, tuple[str, ...]]] = []
        self.observe_error: Exception | None = None

    def load(self, path: Path) -> SpecVersion:
        spec = self.specs.get(self.content)
        if spec is None:
            raise SPEC_ERROR
        loaded = LoadedSpec(spec=spec, path=path, base_dir=path.parent, warnings=())
        return SpecVersion(loaded=loaded, digest=self.content)

    def fingerprint(self, path: Path, last: SpecVersion | None) -> str:
        return self.content

    async def observe(self, version: SpecVersion) -> Observed:
        self.calls.append(("observe", version.digest))
        if self.observe_error is not None:
            raise self.observe_error
        return Observed()

    def plan(self, version: SpecVersion, observed: Observed) -> Plan:
        self.calls.append(("plan", version.digest))
        return Plan(cluster=version.cluster, steps=self.steps[version.digest])

    def verdict(self, version: SpecVersion, observed: Observed, plan: Plan) -> str:
        return "drifted" if plan.steps else "converged"

    async def apply(
        self,
        version: SpecVersion,
        observed: Observed,
        plan: Plan,
        steps: tuple[Step, ...],
        stop: asyncio.Event,
    ) -> ApplyOutcome:
        self.calls.append(("apply", version.digest))
        self.applied.append((version.digest, tuple(s.id for s in steps)))
        self.apply_started.set()
        done = 0
        for _ in steps:
            if stop.is_set():
                return ApplyOutcome(applied=done, failed=0, stopped=True)
            if self.gate is not None:
                await self.gate.wait()
            done += 1
        if self.outcomes:
            return self.outcomes.pop(0)
        return ApplyOutcome(applied=done, failed=0)

    def certificate_days(self, version: SpecVersion, now: datetime) -> dict[str, float]:
        return {"ca.pem": 100.0}

    def note_revision(self, version: SpecVersion, how: str) -> None:
        self.calls.append(("note_revision", how))

    async def close(self) -> None:
        self.calls.append(("close", ""))

    def count(self, what: str) -> int:
        return sum(1 for w, _ in self.calls if w == what)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def make_loop(
    runner: FakeRunner,
    mode: Mode = Mode.HEAL,
    *,
    now: datetime = NOON_FRIDAY,
    clock: Clock | None = None,
    interval: float = 60.0,
    **kwargs: Any,
) -> ClusterLoop:
    config = WatchConfig(
        interval=interval,
        mode=mode,
        backoff=BackoffPolicy(base=10, factor=2, cap=40, jitter=0),
        followup_delay=0.01,
    )
    return ClusterLoop(
        Path("/specs/lon.yaml"),
        runner,
        config,
        now=lambda: now,
        monotonic=clock or Clock(),
        rand=lambda: 0.5,
        **kwargs,
    )


# --- decide() ---------------------------------------------------------------------------

PLAN = Plan(
    cluster="lon",
    steps=(
        step(1, Action.UPLOAD),
        step(2, Action.CERTS),
        step(3, Action.REMOVE, destructive=True),
        step(4),
    ),
)


def test_decide_report_and_paused_apply_nothing() -> None:
    report = decide(PLAN, mode=Mode.REPORT, paused=False, destructive_ok=True)
    assert (report.to_apply, len(report.pending), report.held_because) == ((), 4, "report mode")
    paused = decide(PLAN, mode=Mode.HEAL, paused=True, destructive_ok=True)
    assert paused.to_apply == ()
    assert paused.held_because is not None and "paused" in paused.held_because


def test_decide_heal_inside_window_applies_everything() -> None:
    d = decide(PLAN, mode=Mode.HEAL, paused=False, destructive_ok=True)
    assert d.to_apply == PLAN.steps and d.pending == ()


def test_decide_outside_window_cuts_at_first_destructive_step() -> None:
    opening = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)
    d = decide(PLAN, mode=Mode.HEAL, paused=False, destructive_ok=False, next_window=opening)
    assert [s.id for s in d.to_apply] == ["s01", "s02"]
    assert [s.id for s in d.pending] == ["s03", "s04"]
    assert d.held_because is not None
    assert "destructive step s03" in d.held_because and "2026-11-21T22:00" in d.held_because


def test_decide_master_move_is_gated_even_when_not_destructive() -> None:
    plan = Plan(cluster="lon", steps=(step(1), step(2, procedure="master-move"), step(3)))
    d = decide(plan, mode=Mode.HEAL, paused=False, destructive_ok=False)
    assert [s.id for s in d.to_apply] == ["s01"]
    assert d.held_because is not None and "master move s02" in d.held_because


def test_decide_without_gated_steps_ignores_windows() -> None:
    plan = Plan(cluster="lon", steps=(step(1), step(2)))
    assert decide(plan, mode=Mode.HEAL, paused=False, destructive_ok=False).to_apply == plan.steps


def test_decide_backoff_holds_everything() -> None:
    d = decide(PLAN, mode=Mode.HEAL, paused=False, destructive_ok=True, backoff_wait=12)
    assert d.to_apply == ()
    assert d.held_because is not None and "backing off" in d.held_because


def test_decide_empty_plan() -> None:
    d = decide(Plan(cluster="lon"), mode=Mode.HEAL, paused=True, destructive_ok=False)
    assert d.to_apply == () and d.pending == () and d.held_because is None


# --- one cycle ----------------------------------------------------------------------------


async def test_report_mode_logs_drift_and_applies_nothing() -> None:
    runner = FakeRunner(steps=(step(1), step(2)))
    loop = make_loop(runner, Mode.REPORT)
    with capture_logs() as logs:
        summary = await loop.cycle()
    assert runner.count("apply") == 0
    assert (summary.verdict, summary.pending, summary.applied) == ("drifted", 2, 0)
    planned = [e for e in logs if e["event"] == "planned step"]
    assert [e["step"] for e in planned] == ["s01", "s02"]
    cycle_lines = [e for e in logs if e["event"].startswith("cycle")]
    assert len(cycle_lines) == 1
    line = cycle_lines[0]
    assert {k: line[k] for k in ("cluster", "verdict", "pending", "applied", "failed")} == {
        "cluster": "lon",
        "verdict": "drifted",
        "pending": 2,
        "applied": 0,
        "failed": 0,
    }
    assert "paused" in line and "duration_s" in line
    # The same drift is not repeated in the next cycle's log, the summary is.
    with capture_logs() as logs:
        await loop.cycle()
    assert not [e for e in logs if e["event"] == "planned step"]
    assert len([e for e in logs if e["event"].startswith("cycle")]) == 1


async def test_heal_mode_applies_the_plan() -> None:
    runner = FakeRunner(steps=(step(1), step(2)))
    summary = await make_loop(runner, Mode.HEAL).cycle()
    assert runner.applied == [("v1", ("s01", "s02"))]
    assert (summary.applied, summary.failed, summary.pending) == (2, 0, 0)


async def test_converged_cluster_applies_nothing() -> None:
    runner = FakeRunner()
    summary = await make_loop(runner, Mode.HEAL).cycle()
    assert runner.count("apply") == 0
    assert (summary.verdict, summary.pending) == ("converged", 0)


async def test_paused_observes_and_reports_loudly() -> None:
    runner = FakeRunner(spec=make_spec(paused=True), steps=(step(1),))
    loop = make_loop(runner, Mode.HEAL)
    with capture_logs() as logs:
        summary = await loop.cycle()
    assert runner.count("observe") == 1 and runner.count("apply") == 0
    assert summary.paused and summary.pending == 1
    (line,) = [e for e in logs if e["event"].startswith("cycle")]
    assert "PAUSED" in line["event"] and line["paused"] is True


async def test_invalid_spec_first_time_enforces_nothing() -> None:
    runner = FakeRunner(steps=(step(1),))
    runner.content = "broken"
    loop = make_loop(runner, Mode.HEAL)
    with capture_logs() as logs:
        summary = await loop.cycle()
    assert runner.calls == []
    assert (summary.spec_valid, summary.outcome, summary.verdict) == (
        False,
        "invalid_spec",
        "unknown",
    )
    diagnostics = [e["diagnostic"] for e in logs if e["event"] == "diagnostic"]
    assert diagnostics == [d.render() for d in SPEC_ERROR.diagnostics]  # type: ignore[attr-defined]


async def test_invalid_spec_keeps_the_last_valid_one_in_force() -> None:
    runner = FakeRunner(steps=(step(1),))
    loop = make_loop(runner, Mode.HEAL)
    await loop.cycle()
    runner.content = "broken"
    with capture_logs() as logs:
        summary = await loop.cycle()
    # Planned and applied from v1, never from the broken content.
    assert runner.calls[-3:] == [("observe", "v1"), ("plan", "v1"), ("apply", "v1")]
    assert not summary.spec_valid and summary.digest == "v1"
    assert len([e for e in logs if e["event"] == "diagnostic"]) == 2
    kept = [e for e in logs if e["event"] == "spec invalid"]
    assert kept[0]["kept"] == "last valid spec stays in force"
    (line,) = [e for e in logs if e["event"].startswith("cycle")]
    assert line["spec"] == "INVALID: last valid spec in force"
    # The same broken content is not reported again every cycle ...
    with capture_logs() as logs:
        await loop.cycle()
    assert not [e for e in logs if e["event"] == "diagnostic"]
    # ... and fixing it resumes with the new version.
    runner.specs["v2"] = make_spec()
    runner.steps["v2"] = (step(3),)
    runner.content = "v2"
    summary = await loop.cycle()
    assert summary.spec_valid and runner.applied[-1] == ("v2", ("s03",))


async def test_failed_apply_backs_off_and_a_newer_spec_resets_it() -> None:
    clock = Clock()
    runner = FakeRunner(steps=(step(1),))
    runner.outcomes = [ApplyOutcome(applied=0, failed=1, error="join failed")]
    loop = make_loop(runner, Mode.HEAL, clock=clock)
    summary = await loop.cycle()
    assert summary.outcome == "apply_failed" and loop.retry.failures == 1
    # Within the backoff: planned, not applied.
    clock.t += 5
    summary = await loop.cycle()
    assert runner.count("apply") == 1
    assert summary.held_because is not None and "backing off" in summary.held_because
    # After the backoff (10 s): retried, fails again, delay doubles.
    clock.t += 6
    runner.outcomes = [ApplyOutcome(applied=0, failed=1, error="join failed")]
    await loop.cycle()
    assert runner.count("apply") == 2 and loop.retry.failures == 2
    assert loop.retry.waiting("v1", clock.t) == 20
    # A newer spec replaces the pending retry at once, with a fresh backoff.
    runner.specs["v2"] = make_spec()
    runner.steps["v2"] = (step(2),)
    runner.content = "v2"
    clock.t += 1
    summary = await loop.cycle()
    assert runner.applied[-1] == ("v2", ("s02",))
    assert summary.outcome == "ok" and loop.retry.failures == 0


async def test_backoff_caps() -> None:
    clock = Clock()
    runner = FakeRunner(steps=(step(1),))
    loop = make_loop(runner, Mode.HEAL, clock=clock)
    waits = []
    for _ in range(5):
        runner.outcomes = [ApplyOutcome(applied=0, failed=1, error="x")]
        await loop.cycle()
        waits.append(loop.retry.waiting("v1", clock.t))
        clock.t += 1000
    assert waits == [10, 20, 40, 40, 40]


async def test_lock_held_is_not_a_failure() -> None:
    runner = FakeRunner(steps=(step(1),))
    runner.outcomes = [ApplyOutcome(applied=0, failed=0, error="held by x", lock_held=True)]
    loop = make_loop(runner, Mode.HEAL)
    summary = await loop.cycle()
    assert loop.retry.failures == 0 and summary.outcome == "ok"
    assert summary.held_because == "lock held: held by x"


async def test_observe_failure_is_reported_and_nothing_planned() -> None:
    runner = FakeRunner(steps=(step(1),))
    runner.observe_error = UnreachableError("cms1", "connection refused")
    summary = await make_loop(runner, Mode.HEAL).cycle()
    assert summary.outcome == "observe_failed" and runner.count("plan") == 0


async def test_outside_window_applies_only_the_prefix_before_destructive_steps() -> None:
    steps = (step(1, Action.UPLOAD), step(2, Action.REMOVE, destructive=True), step(3))
    runner = FakeRunner(spec=make_spec(maintenance_windows=[WINDOW]), steps=steps)
    summary = await make_loop(runner, Mode.HEAL, now=NOON_FRIDAY).cycle()
    assert runner.applied == [("v1", ("s01",))]
    assert summary.pending == 2 and not summary.in_window
    assert (
        summary.held_because is not None and "outside maintenance windows" in summary.held_because
    )

    runner = FakeRunner(spec=make_spec(maintenance_windows=[WINDOW]), steps=steps)
    summary = await make_loop(runner, Mode.HEAL, now=SATURDAY_NIGHT).cycle()
    assert runner.applied == [("v1", ("s01", "s02", "s03"))]
    assert summary.pending == 0 and summary.in_window


async def test_master_move_outside_window_is_only_reported() -> None:
    steps = (step(1, Action.REMOVE, destructive=True, procedure="master-move"), step(2))
    runner = FakeRunner(spec=make_spec(maintenance_windows=[WINDOW]), steps=steps)
    summary = await make_loop(runner, Mode.HEAL, now=NOON_FRIDAY).cycle()
    assert runner.count("apply") == 0 and summary.pending == 2


async def test_metrics_follow_the_cycles() -> None:
    metrics = WatchMetrics()
    runner = FakeRunner(steps=(step(1), step(2)))
    await make_loop(runner, Mode.HEAL, metrics=metrics).cycle()

    def value(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"cluster": "lon", **labels})

    assert value("cms_reconciler_cluster_state", state="drifted") == 1
    assert value("cms_reconciler_steps_applied_total") == 2
    assert value("cms_reconciler_steps_pending") == 0
    assert value("cms_reconciler_node_reachable", node="cms1") == 0  # Observed() is empty
    assert value("cms_reconciler_certificate_expiry_days", file="ca.pem") == 100
    assert value("cms_reconciler_cycles_total", outcome="ok") == 1


async def test_health_and_metrics_follow_the_cluster_name_once_known() -> None:
    metrics = WatchMetrics()
    health = HealthState(stale_after=60)
    runner = FakeRunner(spec=make_spec("par"))
    runner.content = "broken"
    loop = make_loop(runner, Mode.REPORT, metrics=metrics, health=health)
    await loop.cycle()  # never valid yet: known by the file's stem
    assert metrics.registry.get_sample_value("cms_reconciler_spec_valid", {"cluster": "lon"}) == 0
    runner.content = "v1"
    await loop.cycle()
    assert (
        metrics.registry.get_sample_value("cms_reconciler_spec_valid", {"cluster": "lon"}) is None
    )
    assert metrics.registry.get_sample_value("cms_reconciler_spec_valid", {"cluster": "par"}) == 1
    healthy, lines = health.check()
    assert healthy and len(lines) == 1 and lines[0].startswith("spec /specs/lon.yaml")


# --- the running loop ---------------------------------------------------------------------


async def test_never_replans_while_an_apply_runs() -> None:
    runner = FakeRunner(steps=(step(1),))
    runner.gate = asyncio.Event()
    loop = make_loop(runner, Mode.HEAL, interval=3600)
    task = asyncio.create_task(loop.run())
    await asyncio.wait_for(runner.apply_started.wait(), 5)
    for _ in range(5):
        loop.wake()
        await asyncio.sleep(0.01)
    assert runner.count("plan") == 1 and loop.applying
    # A newer spec arrives during the apply: it is planned right after it.
    runner.specs["v2"] = make_spec()
    runner.steps["v2"] = ()
    runner.content = "v2"
    runner.gate.set()
    for _ in range(500):
        if ("plan", "v2") in runner.calls:
            break
        await asyncio.sleep(0.01)
    assert runner.calls.index(("plan", "v2")) > runner.calls.index(("apply", "v1"))
    loop.stop()
    await asyncio.wait_for(task, 5)


async def test_stop_during_apply_finishes_the_step_and_ends_the_loop() -> None:
    runner = FakeRunner(steps=(step(1), step(2), step(3)))
    runner.gate = asyncio.Event()
    loop = make_loop(runner, Mode.HEAL, interval=3600)
    task = asyncio.create_task(loop.run())
    await asyncio.wait_for(runner.apply_started.wait(), 5)
    loop.stop()
    runner.gate.set()
    await asyncio.wait_for(task, 5)
    assert loop.last_summary is not None
    assert loop.last_summary.applied == 1  # the running step finished, no further step
    assert loop.last_summary.pending == 2
    assert loop.retry.failures == 0
    assert runner.calls[-1] == ("close", "")  # connections kept between cycles released


async def test_wake_starts_a_cycle_without_waiting_for_the_interval() -> None:
    runner = FakeRunner()
    health = HealthState(stale_after=60)
    loop = make_loop(runner, Mode.REPORT, interval=3600, health=health)
    task = asyncio.create_task(loop.run())
    while loop.cycles < 1:
        await asyncio.sleep(0.01)
    loop.wake()
    for _ in range(500):
        if loop.cycles >= 2:
            break
        await asyncio.sleep(0.01)
    assert loop.cycles == 2
    assert health.check()[0]
    loop.stop()
    await asyncio.wait_for(task, 5)


# --- several clusters ---------------------------------------------------------------------


class FileRunner(FakeRunner):
    """Reads the cluster name from a real file; 'broken' in the text makes it invalid."""

    def load(self, path: Path) -> SpecVersion:
        text = path.read_text()
        if "broken" in text:
            raise SPEC_ERROR
        match = re.search(r"^cluster: (\S+)", text, re.M)
        assert match
        loaded = LoadedSpec(
            spec=make_spec(match.group(1)), path=path, base_dir=path.parent, warnings=()
        )
        return SpecVersion(loaded=loaded, digest=text)

    def fingerprint(self, path: Path, last: SpecVersion | None) -> str:
        return path.read_text()

    def plan(self, version: SpecVersion, observed: Observed) -> Plan:
        self.calls.append(("plan", version.digest))
        return Plan(cluster=version.cluster)


def write(path: Path, cluster: str, extra: str = "") -> None:
    path.write_text(f"version: 1\ncluster: {cluster}\n{extra}")


async def test_supervisor_follows_a_directory(tmp_path: Path) -> None:
    write(tmp_path / "lon.yaml", "lon")
    write(tmp_path / "par.yml", "par")
    (tmp_path / "snapshot.yaml").write_text("nodes: {}\n")  # not a spec: skipped
    (tmp_path / "notes.txt").write_text("version: 1\ncluster: x\n")
    metrics = WatchMetrics()
    sup = WatchSupervisor([tmp_path], FileRunner, WatchConfig(interval=3600), metrics=metrics)
    task = asyncio.create_task(sup.run(rediscover_every=3600))
    await _until(lambda: all(loop.cycles >= 1 for loop in sup.loops.values()) and sup.loops)
    assert sorted(p.name for p in sup.loops) == ["lon.yaml", "par.yml"]

    # Only the cluster whose file changed is woken.
    write(tmp_path / "lon.yaml", "lon", "# changed\n")
    woken = sup.on_changes([tmp_path / "lon.yaml"])
    assert [loop.name for loop in woken] == ["lon"]

    # A new file is picked up, a removed one dropped (with its metrics).
    write(tmp_path / "ber.yaml", "ber")
    sup.on_changes([tmp_path / "ber.yaml"])
    assert (tmp_path / "ber.yaml") in sup.loops
    (tmp_path / "par.yml").unlink()
    sup.on_changes([tmp_path / "par.yml"])
    assert (tmp_path / "par.yml") not in sup.loops
    sample = metrics.registry.get_sample_value(
        "cms_reconciler_cycles_total", {"cluster": "par", "outcome": "ok"}
    )
    assert sample is None

    # A watched file that breaks stays watched (reported invalid), not dropped.
    (tmp_path / "lon.yaml").write_text("broken: [\n")
    sup.on_changes([tmp_path / "lon.yaml"])
    assert (tmp_path / "lon.yaml") in sup.loops

    sup.stop()
    await asyncio.wait_for(task, 5)


async def test_two_files_for_one_cluster_the_second_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "lon")
    write(tmp_path / "b.yaml", "lon")
    sup = WatchSupervisor([tmp_path], FileRunner, WatchConfig(interval=3600))
    with capture_logs() as logs:
        task = asyncio.create_task(sup.run(rediscover_every=3600))
        await _until(lambda: len(sup.loops) == 2 and all(lp.cycles for lp in sup.loops.values()))
        sup.stop()
        await asyncio.wait_for(task, 5)
    a, b = sup.loops[tmp_path / "a.yaml"], sup.loops[tmp_path / "b.yaml"]
    assert a.last_summary is not None and a.last_summary.spec_valid
    assert b.last_summary is not None and not b.last_summary.spec_valid
    assert b.current is None
    refused = [e for e in logs if "another file" in e["event"]]
    assert refused and refused[0]["other"] == str(tmp_path / "a.yaml")


async def test_named_file_that_is_not_a_spec_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "lon.yaml"
    bad.write_text("broken: [\n")
    sup = WatchSupervisor([bad], FileRunner, WatchConfig(interval=3600))
    with capture_logs() as logs:
        task = asyncio.create_task(sup.run(rediscover_every=3600))
        await _until(lambda: bool(sup.loops) and sup.loops[bad].cycles >= 1)
        sup.stop()
        await asyncio.wait_for(task, 5)
    assert [e for e in logs if e["event"] == "spec invalid"]


async def _until(condition: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


@pytest.fixture(autouse=True)
def _plain_structlog() -> None:
    structlog.reset_defaults()


# --- the file watcher (real watchfiles on a temporary directory) ---------------------------


async def _write_until_seen(path: Path, seen: list[set[Path]], attempts: int = 40) -> None:
    """The watcher has no "ready" signal: write until a batch names the file."""
    for i in range(attempts):
        path.write_text(f"version: 1\ncluster: lon\n# {i}\n")
        for _ in range(25):
            if any(path in batch for batch in seen):
                return
            await asyncio.sleep(0.02)
    raise AssertionError(f"no change reported for {path}")


async def test_file_watcher_reports_changes_and_follows_new_roots(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    roots = {first}
    seen: list[set[Path]] = []
    stop = asyncio.Event()
    task = asyncio.create_task(watch_for_changes(lambda: set(roots), seen.append, stop))
    try:
        await _write_until_seen(first / "lon.yaml", seen)
        roots.add(second)  # picked up after the next batch or recheck
        (first / "poke.yaml").write_text("x")
        await _write_until_seen(second / "par.yaml", seen, attempts=400)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def test_symlink_parents(tmp_path: Path) -> None:
    real = tmp_path / "rev-1" / "specs"
    real.mkdir(parents=True)
    (tmp_path / "current").symlink_to(tmp_path / "rev-1")
    assert symlink_parents(tmp_path / "current" / "specs") == {tmp_path}
    assert symlink_parents(real) == set()


# --- the shared SSH bound -------------------------------------------------------------------


class SlowSession:
    def __init__(self, target: NodeTarget, counter: dict[str, int]) -> None:
        self._target = target
        self.counter = counter

    @property
    def target(self) -> NodeTarget:
        return self._target

    async def run(self, command: str, *, stdin: str | None = None) -> CommandOutput:
        self.counter["now"] += 1
        self.counter["max"] = max(self.counter["max"], self.counter["now"])
        await asyncio.sleep(0.01)
        self.counter["now"] -= 1
        return CommandOutput(self._target.name, command, "SUCCESS\n", "", 0, 0.01)

    async def upload(self, local_path: str, remote_name: str) -> None:
        await self.run("upload")

    async def list_files(self) -> dict[str, str]:
        await self.run("list")
        return {}

    async def close(self) -> None:
        return None


class SlowTransport:
    def __init__(self, counter: dict[str, int]) -> None:
        self.counter = counter
        self.sessions: dict[str, SlowSession] = {}
        self.closed = False

    async def session(self, target: NodeTarget) -> SlowSession:
        if target.name not in self.sessions:
            self.sessions[target.name] = SlowSession(target, self.counter)
        return self.sessions[target.name]

    def forget(self, target: NodeTarget) -> None:
        self.sessions.pop(target.name, None)

    async def close(self) -> None:
        self.closed = True


async def test_bounded_transports_share_one_limit() -> None:
    counter = {"now": 0, "max": 0}
    limit = asyncio.Semaphore(3)
    transports = [BoundedTransport(SlowTransport(counter), limit) for _ in range(5)]
    targets = [NodeTarget(f"n{i}", f"127.0.0.{i}", f"127.0.0.{i}", 22) for i in range(4)]

    async def work(t: BoundedTransport, target: NodeTarget) -> None:
        session = await t.session(target)
        await session.run("database cluster status")
        await session.list_files()

    await asyncio.gather(*(work(t, tg) for t in transports for tg in targets))
    assert counter["max"] == 3  # 20 sessions' requests, never more than 3 in flight
    first = transports[0]
    assert await first.session(targets[0]) is await first.session(targets[0])
    await first.close()
    assert isinstance(first._inner, SlowTransport) and first._inner.closed
