"""Convergence: wall time of `reconcile apply` on 5 fresh nodes vs the same MMP commands run
one after another.

Two fresh 5-node labs. On the first, `reconcile apply --yes` runs as a user would run it
(subprocess; wall time includes start-up, observation, the per-step drift checks and the
final verification). On the second, the same plan's commands run strictly one after another
over one SSH connection per node (each upload, each command, and for asynchronous commands
the wait until `status` shows the result, polled every 0.1 s); the baseline is the sum of
those durations. The ratio must be < 1: per-node preparation runs concurrently.

    python -m benchmarks.bench_convergence
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from reconciler.logging_setup import configure_logging
from reconciler.observer import observe_nodes
from reconciler.plan_model import ASYNC_ACTIONS, Action, Plan
from reconciler.planner import plan as make_plan
from reconciler.spec_loader import LoadedSpec, load_spec, read_local_files
from reconciler.ssh_transport import SshSettings, SshTransport
from reconciler.status_parser import parse_status
from reconciler.step_outcome import same_command
from reconciler.transport import STATUS_COMMAND, node_targets

from .lab_util import bench_lab, write_spec

ROUNDS = 3


def _phases(parts: dict[str, float]) -> str:
    return ", ".join(f"{name} {seconds:.2f}" for name, seconds in parts.items())


async def sequential_baseline(loaded: LoadedSpec) -> tuple[float, int, Plan]:
    transport = SshTransport(SshSettings.from_spec(loaded.spec.ssh, loaded.base_dir))
    targets = node_targets(loaded.spec)
    try:
        run = await observe_nodes(loaded.spec, transport, with_files=True)
        the_plan = make_plan(loaded.spec, run.observed, read_local_files(loaded))
        for t in targets.values():  # connections are not part of a command's duration
            await transport.session(t)
        total = 0.0
        by_kind: dict[str, float] = {}
        for step in the_plan.steps:
            session = await transport.session(targets[step.node])
            started = time.perf_counter()
            if step.action is Action.UPLOAD and step.upload is not None:
                await session.upload(step.upload.local_path, step.upload.remote_name)
            else:
                await session.run(step.command or "", stdin="Y\n" if step.confirm else None)
                while step.action in ASYNC_ACTIONS:
                    status = parse_status((await session.run(STATUS_COMMAND)).stdout)
                    last = status.last_command
                    if (
                        last
                        and same_command(last.command, step.command)
                        and last.result.value
                        in (
                            "success",
                            "failed",
                        )
                    ):
                        break
                    await asyncio.sleep(0.1)
            took = time.perf_counter() - started
            total += took
            kind = step.action.value
            if step.action is Action.JOIN:
                kind = f"join {step.node}"
            by_kind[kind] = by_kind.get(kind, 0.0) + took
        print(f"  sequential, by action: {_phases(by_kind)}")
        return total, len(the_plan.steps), the_plan
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


def measure(latency_ms: int) -> float:
    """ROUNDS alternating rounds at one MMP latency; returns the median ratio."""
    print(f"-- MMP latency {latency_ms} ms per command (cmslab --latency-ms) --")
    ratios: list[float] = []
    baselines: list[float] = []
    for attempt in range(ROUNDS):  # alternate, so drift in machine load hits both sides
        with bench_lab("127.0.24.1", 5, latency_ms=latency_ms) as lab:
            wall, _ = timed_apply(write_spec(lab, 5, "bench-5.yaml"))
        with bench_lab("127.0.25.1", 5, latency_ms=latency_ms) as lab:
            loaded = load_spec(write_spec(lab, 5, "bench-5.yaml"))
            baseline, steps, _ = asyncio.run(sequential_baseline(loaded))
        ratios.append(wall / baseline)
        baselines.append(baseline)
        print(
            f"round {attempt + 1}: apply wall {wall:.2f} s (incl. start-up, observation, "
            f"drift checks, verification); {steps} steps one after another {baseline:.2f} s; "
            f"ratio {wall / baseline:.2f}"
        )
    with bench_lab("127.0.24.1", 5, latency_ms=latency_ms) as lab:
        wall_jc, _ = timed_apply(
            write_spec(lab, 5, "bench-5-jc.yaml", policy={"join_concurrency": 4})
        )
    median = statistics.median(ratios)
    print(
        f"convergence ratio apply/sequential at {latency_ms} ms, median of {ROUNDS}: {median:.2f}"
    )
    base = statistics.median(baselines)
    print(
        f"with policy.join_concurrency=4: apply wall {wall_jc:.2f} s, ratio against the median "
        f"sequential baseline {wall_jc / base:.2f}"
    )
    return median


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--latency-ms",
        default="0,50",
        help="comma-separated MMP latencies to measure at (default 0,50: a lab on one host, "
        "and nodes at other sites as Cisco recommends)",
    )
    args = parser.parse_args(argv)
    configure_logging(verbose=0)
    results = {int(x): measure(int(x)) for x in args.latency_ms.split(",")}
    print("summary: " + ", ".join(f"{ms} ms -> ratio {r:.2f}" for ms, r in results.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
