"""Convergence: wall time of `reconcile apply` on 5 fresh nodes vs the same MMP commands run
one after another.

Two fresh 5-node labs. On the first, `reconcile apply --yes` runs as a user would run it
(subprocess; wall time includes start-up, observation, the per-step drift checks and the
final verification). On the second, the manual procedure runs strictly one after another,
as the brief describes it: log in to each node's MMP, the plan's commands (each upload,
each command, and for asynchronous commands the wait until `status` shows the result,
polled every 0.1 s), then `status` on every node. Two baselines are printed: the plan's
commands alone (strict) and the whole manual procedure. The ratio must be < 1:
per-node preparation runs concurrently and the checks ride along with the polls.

What apply can overlap is per-node preparation and the checks; `initialize` and the
joins (one at a time by default) take as long either way. So the ratio depends on the
MMP's latency: at 0 ms (the lab on one host) there is almost nothing to overlap and it is
about 1; at the 200 ms the observation fan-out benchmark models (and Cisco's round-trip
limit between database nodes) it is well below 1.

Our modules are byte-compiled first (`compileall`): this machine sets
PYTHONDONTWRITEBYTECODE=1, which would make every `reconcile` start-up compile ~50
modules again, something an installed wheel never does.

    python -m benchmarks.bench_convergence
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import datetime as dt
import itertools
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import reconciler
from reconciler.apply.step_outcome import same_command
from reconciler.common.logging_setup import configure_logging
from reconciler.observe.observer import observe_nodes
from reconciler.observe.status_parser import parse_status
from reconciler.plan.model import ASYNC_ACTIONS, Action, Step
from reconciler.plan.planner import plan as make_plan
from reconciler.spec.loader import LoadedSpec, load_spec, read_local_files
from reconciler.transport.interface import STATUS_COMMAND, NodeSession, node_targets
from reconciler.transport.ssh import SshSettings, SshTransport

from .lab_util import bench_lab, write_spec

ROUNDS = 5


def _phases(parts: dict[str, float]) -> str:
    return ", ".join(f"{name} {seconds:.2f}" for name, seconds in parts.items())


@dataclass(frozen=True)
class Baseline:
    commands: float  # the plan's commands one after another (strict)
    logins: float  # one SSH login per node, one after another
    final_status: float  # `status` on every node, one after another
    steps: int

    @property
    def manual(self) -> float:
        return self.logins + self.commands + self.final_status


async def _run_step(session: NodeSession, step: Step) -> None:
    if step.action is Action.UPLOAD and step.upload is not None:
        await session.upload(step.upload.local_path, step.upload.remote_name)
        return
    await session.run(step.command or "", stdin="Y\n" if step.confirm else None)
    while step.action in ASYNC_ACTIONS:
        last = parse_status((await session.run(STATUS_COMMAND)).stdout).last_command
        done = last is not None and last.result.value in ("success", "failed")
        if done and last is not None and same_command(last.command, step.command):
            return
        await asyncio.sleep(0.1)


async def sequential_baseline(loaded: LoadedSpec) -> Baseline:
    settings = SshSettings.from_spec(loaded.spec.ssh, loaded.base_dir)
    targets = node_targets(loaded.spec)
    planner_transport = SshTransport(settings)
    try:  # what to type: the plan apply would make (not timed)
        run = await observe_nodes(loaded.spec, planner_transport, with_files=True)
        the_plan = make_plan(loaded.spec, run.observed, read_local_files(loaded))
    finally:
        await planner_transport.close()
    transport = SshTransport(settings)
    try:
        started = time.perf_counter()
        for t in targets.values():
            await transport.session(t)
        logins = time.perf_counter() - started
        total = 0.0
        by_kind: dict[str, float] = {}
        for step in the_plan.steps:
            session = await transport.session(targets[step.node])
            started = time.perf_counter()
            await _run_step(session, step)
            took = time.perf_counter() - started
            total += took
            kind = f"join {step.node}" if step.action is Action.JOIN else step.action.value
            by_kind[kind] = by_kind.get(kind, 0.0) + took
        started = time.perf_counter()
        for t in targets.values():
            await (await transport.session(t)).run(STATUS_COMMAND)
        final_status = time.perf_counter() - started
        print(
            f"  sequential: logins {logins:.2f}, {_phases(by_kind)}, "
            f"status on every node {final_status:.2f}"
        )
        return Baseline(total, logins, final_status, len(the_plan.steps))
    finally:
        await transport.close()


def timed_apply(spec: Path) -> tuple[float, str]:
    wall_started = time.time()  # for the phase breakdown only (the audit log's clock)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "apply", str(spec), "--yes"],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"apply failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    print(f"  apply phases (from its audit log): {apply_phases(spec, wall_started, elapsed)}")
    return elapsed, proc.stdout


def apply_phases(spec: Path, wall_started: float, elapsed: float) -> str:
    """Where the apply's wall time went, from the command start times in its audit log:
    start-up + observation + plan until the first command, preparation until
    `initialize` was sent, then each cluster command until the next one, and the last
    one until the process ended (its wait, the final verification, exit)."""
    audits = sorted((spec.parent / ".reconcile").glob("*.audit.jsonl"))
    if not audits:
        return "no audit log"
    starts: list[tuple[float, str, str]] = []
    for line in audits[0].read_text().splitlines():
        entry = json.loads(line)
        at = dt.datetime.fromisoformat(entry["time"]).timestamp() - entry["duration_s"]
        starts.append((at - wall_started, entry["node"], entry["command"]))
    starts.sort()
    parts = {"start-up+observe+plan": starts[0][0]}
    cluster = [
        (at, node, cmd) for at, node, cmd in starts if " initialize" in cmd or " join " in cmd
    ]
    if cluster:
        parts["prep until initialize"] = cluster[0][0] - starts[0][0]
        for (at, node, cmd), (nxt, _, _) in itertools.pairwise(cluster):
            parts[f"{cmd.split()[2]} {node}"] = nxt - at
        at, node, cmd = cluster[-1]
        parts[f"{cmd.split()[2]} {node} + verify + exit"] = elapsed - at
    return _phases(parts)


def measure(latency_ms: int) -> tuple[float, float]:
    """ROUNDS alternating rounds at one MMP latency; the median ratios (strict, manual)."""
    print(f"-- MMP latency {latency_ms} ms per command (cmslab --latency-ms) --")
    strict: list[float] = []
    manual: list[float] = []
    baselines: list[float] = []
    for attempt in range(ROUNDS):  # alternate, so drift in machine load hits both sides
        with bench_lab("127.0.24.1", 5, latency_ms=latency_ms) as lab:
            wall, _ = timed_apply(write_spec(lab, 5, "bench-5.yaml"))
        with bench_lab("127.0.25.1", 5, latency_ms=latency_ms) as lab:
            loaded = load_spec(write_spec(lab, 5, "bench-5.yaml"))
            base = asyncio.run(sequential_baseline(loaded))
        strict.append(wall / base.commands)
        manual.append(wall / base.manual)
        baselines.append(base.manual)
        print(
            f"round {attempt + 1}: apply wall {wall:.2f} s (incl. start-up, observation, "
            f"drift checks, verification); {base.steps} steps one after another "
            f"{base.commands:.2f} s (ratio {strict[-1]:.2f}); the manual procedure "
            f"{base.manual:.2f} s (ratio {manual[-1]:.2f})"
        )
    with bench_lab("127.0.24.1", 5, latency_ms=latency_ms) as lab:
        wall_jc, _ = timed_apply(
            write_spec(lab, 5, "bench-5-jc.yaml", policy={"join_concurrency": 4})
        )
    result = (statistics.median(strict), statistics.median(manual))
    print(
        f"convergence ratio at {latency_ms} ms, median of {ROUNDS}: apply / manual procedure "
        f"{result[1]:.2f}; apply / the plan's commands alone {result[0]:.2f}"
    )
    print(
        f"with policy.join_concurrency=4: apply wall {wall_jc:.2f} s, ratio against the median "
        f"manual procedure {wall_jc / statistics.median(baselines):.2f}"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--latency-ms",
        default="0,50,200",
        help="comma-separated MMP latencies to measure at (default 0,50,200: a lab on one "
        "host; a short hop; the 200 ms the observation fan-out benchmark models, which is "
        "also Cisco's round-trip limit between database nodes)",
    )
    args = parser.parse_args(argv)
    configure_logging(verbose=0)
    compileall.compile_dir(Path(reconciler.__file__).parent, quiet=1)
    results = {int(x): measure(int(x)) for x in args.latency_ms.split(",")}
    print(
        "summary (apply / manual procedure; apply / commands alone): "
        + ", ".join(f"{ms} ms -> {m:.2f}; {c:.2f}" for ms, (c, m) in results.items())
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
