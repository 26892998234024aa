"""Observation fan-out: `reconcile status` of 5 nodes vs 1 node, every MMP answer delayed 200 ms.

Both runs use the same code path as `reconcile status` (connect, `database cluster status`,
SFTP listing with checksums, plan, the database view when there is a master), in-process so
interpreter start-up does not hide the difference. The nodes are fresh (not clustered): a
1-node spec on a clustered lab would also observe the 4 members the spec does not list.
Nodes are observed concurrently, so 5 nodes should cost about what one costs.
Prints the medians and the ratio (target <= 1.3).

    python -m benchmarks.bench_observe_fanout
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from cmslab import cli as lab_cli
from reconciler.cli.status import gather_status
from reconciler.common.logging_setup import configure_logging
from reconciler.spec.loader import load_spec

from .lab_util import bench_lab, write_spec

LATENCY_MS = 200
RUNS = 5


def _args() -> argparse.Namespace:
    return argparse.Namespace(accept_new_host_keys=False, timeout=None, verbose=0)


async def _status_seconds(spec_path: object) -> float:
    loaded = load_spec(spec_path)  # type: ignore[arg-type]
    started = time.perf_counter()
    run, _, _, _ = await gather_status(loaded, _args())
    elapsed = time.perf_counter() - started
    assert not run.errors, run.errors
    return elapsed


def main() -> int:
    configure_logging(verbose=0)
    with bench_lab("127.0.23.1", 5) as lab:
        spec5 = write_spec(lab, 5, "bench-5.yaml")
        spec1 = write_spec(lab, 1, "bench-1.yaml")
        for node in lab.cfg.nodes:
            lab_cli.control(
                lab.paths,
                {"op": "fault", "node": node.name, "fault": "latency", "arg": str(LATENCY_MS)},
            )
        one = [asyncio.run(_status_seconds(spec1)) for _ in range(RUNS)]
        five = [asyncio.run(_status_seconds(spec5)) for _ in range(RUNS)]
    m1, m5 = statistics.median(one), statistics.median(five)
    print(f"latency per MMP answer: {LATENCY_MS} ms, {RUNS} runs each")
    print(f"status, 1 node : median {m1:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in one)})")
    print(f"status, 5 nodes: median {m5:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in five)})")
    print(f"fan-out ratio 5/1 = {m5 / m1:.2f}  (target <= 1.3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
