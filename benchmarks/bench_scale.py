"""Scale: observe and plan N clusters of 3 nodes concurrently vs one cluster.

What one watch cycle does per cluster (``LiveClusterRunner.observe`` + ``plan``:
SSH connect, `database cluster status`, SFTP listing with checksums, plan), for
N clusters at once through one shared ``--max-ssh`` semaphore, as
``reconcile watch DIR`` does; compared with the same for one cluster.

cmslab has no light (database-less) node type, and each lab node runs its own
PostgreSQL, so N separate 3-node labs are costly on a small machine. The N
cluster specs are therefore spread over ``--labs`` labs of 3 fresh nodes (each
spec names one lab's 3 nodes under its own cluster name): the reconciler side
does exactly the work of N clusters (3·N SSH sessions), while the lab side is
shared. With ``--labs N`` every cluster has its own lab.

Prints medians of the wall times and the ratio N clusters / 1 cluster (target < 3).

    python -m benchmarks.bench_scale [--clusters 50] [--labs 5] [--max-ssh 64] [--runs 3]
                                     [--latency-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from contextlib import ExitStack
from pathlib import Path

from reconciler.cli_watch import LiveClusterRunner
from reconciler.logging_setup import configure_logging
from reconciler.watch_loop import Revision

from .lab_util import bench_lab, write_spec

FIRST_BASE = (127, 0, 43)  # labs at 127.0.43.1, 127.0.43.4, ... then 127.0.44.1, ...


def lab_base(i: int) -> str:
    a, b, c = FIRST_BASE
    offset = 3 * i
    return f"{a}.{b}.{c + offset // 240}.{1 + offset % 240}"


async def observe_and_plan(runner: LiveClusterRunner, revision: Revision) -> None:
    observed = await runner.observe(revision)
    unreachable = [n for n, o in observed.nodes.items() if not o.reachable]
    assert not unreachable, f"{revision.cluster}: unreachable {unreachable}"
    runner.plan(revision, observed)


async def timed(
    pairs: list[tuple[LiveClusterRunner, Revision]], *, cold: bool
) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) to observe and plan every pair once."""
    if cold:  # a new SSH connection per node, as the first cycle (or `reconcile plan`) does
        for runner, _ in pairs:
            await runner.drop_transport()
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(observe_and_plan(r, rev) for r, rev in pairs))
    return time.perf_counter() - wall, time.process_time() - cpu


async def measure(
    specs: list[Path], max_ssh: int, runs: int, *, cold: bool
) -> tuple[float, float, float]:
    """Medians: one cluster's wall time, all clusters' wall time, all clusters' CPU time."""
    limit = asyncio.Semaphore(max_ssh)
    pairs = []
    for spec in specs:
        runner = LiveClusterRunner(state_dir=None, ssh_limit=limit)
        pairs.append((runner, runner.load(spec)))
    await timed(pairs, cold=False)  # warm-up: imports, key loading, first connections
    one = [(await timed(pairs[:1], cold=cold))[0] for _ in range(max(runs, 5))]
    many = [await timed(pairs, cold=cold) for _ in range(runs)]
    for runner, _ in pairs:
        await runner.close()
    return (
        statistics.median(one),
        statistics.median(m[0] for m in many),
        statistics.median(m[1] for m in many),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument("--labs", type=int, default=5)
    parser.add_argument("--max-ssh", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--latency-ms", type=int, default=0, help="delay every MMP answer (a WAN's round trip)"
    )
    args = parser.parse_args()
    configure_logging(verbose=0)

    started = time.perf_counter()
    with ExitStack() as stack:
        labs = [
            stack.enter_context(bench_lab(lab_base(i), 3, args.latency_ms))
            for i in range(args.labs)
        ]
        print(f"{args.labs} lab(s) of 3 nodes up in {time.perf_counter() - started:.1f} s")
        for j, lab in enumerate(labs):  # every lab has its own admin password
            os.environ[f"CMSLAB_PASSWORD_{j}"] = lab.password
        specs = []
        for i in range(args.clusters):
            j = i % args.labs
            spec = write_spec(labs[j], 3, f"scale-{i:03d}.yaml")
            text = spec.read_text().replace("cluster: cmslab", f"cluster: scale-{i:03d}")
            text = text.replace(
                "password_env: CMSLAB_PASSWORD", f"password_env: CMSLAB_PASSWORD_{j}"
            )
            spec.write_text(text)
            specs.append(spec)
        results = {
            kind: asyncio.run(measure(specs, args.max_ssh, args.runs, cold=kind == "cold"))
            for kind in ("cold", "warm")
        }
    print(f"MMP answer latency: {args.latency_ms} ms; --max-ssh {args.max_ssh}")
    for kind, (one, many, cpu) in results.items():
        what = (
            "new SSH connections (first cycle)"
            if kind == "cold"
            else "connections kept between cycles (steady state)"
        )
        print(f"{kind}: {what}")
        print(f"  one cluster (3 nodes): median {one:.3f} s")
        print(
            f"  {args.clusters} clusters ({3 * args.clusters} nodes on {args.labs} lab(s)): "
            f"median {many:.3f} s wall, {cpu:.3f} s CPU in the reconciler"
        )
        print(f"  ratio {args.clusters} clusters / 1 cluster = {many / one:.2f} (target < 3)")


if __name__ == "__main__":
    main()
