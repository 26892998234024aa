"""Scale: observe and plan N clusters of 3 nodes concurrently vs one cluster.

What one watch cycle does per cluster (``LiveClusterRunner.observe`` + ``plan``:
SSH connect, `database cluster status`, SFTP listing with checksums, plan), for
N clusters at once through one shared ``--max-ssh`` semaphore, as
``reconcile watch DIR`` does; compared with the same for one cluster.

The nodes: by default ONE light cmslab (``cmslab up --light``) of 3·N nodes on
127.0.43.1 and up, hosted by one lab process; light nodes run no PostgreSQL
until they are clustered, and the benchmark's fresh nodes never are. N spec
files are written into a temp dir: cluster i (``scale-NNN``) is nodes 3i+1..3i+3.
``--labs K`` instead starts K full 3-node labs (one lab process and one
PostgreSQL per node each) and spreads the N specs over them (the old mode).

Honesty: every node has the same MMP answer delay (``--latency-ms``); the
one-cluster baseline is cluster 0 of the same set, measured in the same run,
interleaved round by round with the N-cluster measurement (so load from other
processes hits both alike), the same number of rounds for both. Two kinds:
``cold`` drops every cluster's SSH connections before each round (first cycle,
or ``reconcile plan``); ``warm`` keeps them between rounds (the watch's steady
state). Prints medians and the ratio N clusters / 1 cluster (target < 3).

    python -m benchmarks.bench_scale [--clusters 50] [--runs 5] [--latency-ms 200]
                                     [--max-ssh 256] [--labs K] [--base-address A]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path

from ruamel.yaml import YAML

from cmslab import cleanup, labfiles
from cmslab.config import LabConfig, LabPaths, make_config
from cmslab.ports import port_is_free
from cmslab.scratch import scratch_lab
from reconciler.cli.watch import DEFAULT_MAX_SSH
from reconciler.common.logging_setup import configure_logging
from reconciler.watch.runner import LiveClusterRunner
from reconciler.watch.runner_interface import SpecVersion

from .lab_util import bench_lab, write_spec

FIRST_BASE = (127, 0, 43)  # --labs mode: labs at 127.0.43.1, 127.0.43.4, ... 127.0.44.1, ...
LIGHT_BASE = "127.0.43.1"  # light mode: nodes 127.0.43.1 .. 127.0.43.(3N)


def lab_base(i: int) -> str:
    a, b, c = FIRST_BASE
    offset = 3 * i
    return f"{a}.{b}.{c + offset // 240}.{1 + offset % 240}"


# --- the light lab -------------------------------------------------------------------------


def light_config(base_address: str, nodes: int, latency_ms: int) -> LabConfig:
    """A light lab of ``nodes`` nodes on SSH/watch/database ports free on every address."""
    probe = make_config(nodes, base_address=base_address, light=True)
    addresses = [n.address for n in probe.nodes]
    for ssh in range(24300, 25900, 7):
        db = ssh + 3000
        if all(port_is_free(a, p) for a in addresses for p in (ssh, ssh + 1000, db, db + 10000)):
            return make_config(
                nodes,
                base_address=base_address,
                ssh_port=ssh,
                db_port=db,
                latency_ms=latency_ms,
                light=True,
            )
    raise RuntimeError(f"no free ports on {addresses[0]}..{addresses[-1]}")


def light_lab(cfg: LabConfig) -> AbstractContextManager[LabPaths]:
    return scratch_lab(cfg, prefix="reconcile-bench-")


def write_light_specs(paths: LabPaths, clusters: int, out_dir: Path) -> list[Path]:
    """One spec per 3 consecutive nodes of the lab's own spec; file paths made absolute."""
    yaml = YAML()
    data = yaml.load(paths.lab_yaml.read_text())
    root = paths.root

    def absolute(files: dict[str, str]) -> None:
        for k, v in files.items():
            if isinstance(v, str):
                files[k] = str(root / v)
            else:
                absolute(v)

    for node in data["nodes"]:
        absolute(node["certificates"])
    absolute(data["certificates"])
    data["ssh"]["known_hosts"] = str(paths.known_hosts)
    all_nodes = list(data["nodes"])
    specs = []
    for i in range(clusters):
        data["cluster"] = f"scale-{i:03d}"
        data["nodes"] = all_nodes[3 * i : 3 * i + 3]
        data["master"] = data["nodes"][0]["name"]
        data["policy"] = {}
        path = out_dir / f"scale-{i:03d}.yaml"
        with path.open("w") as fh:
            yaml.dump(data, fh)
        specs.append(path)
    return specs


def write_lab_specs(
    stack: ExitStack, labs: int, clusters: int, latency_ms: int
) -> tuple[list[Path], list[LabPaths]]:
    """The old mode: ``labs`` full 3-node labs, the specs spread over them."""
    started = [stack.enter_context(bench_lab(lab_base(i), 3, latency_ms)) for i in range(labs)]
    for j, lab in enumerate(started):  # every lab has its own admin password
        os.environ[f"CMSLAB_PASSWORD_{j}"] = lab.password
    specs = []
    for i in range(clusters):
        j = i % labs
        spec = write_spec(started[j], 3, f"scale-{i:03d}.yaml")
        text = spec.read_text().replace("cluster: cmslab", f"cluster: scale-{i:03d}")
        text = text.replace("password_env: CMSLAB_PASSWORD", f"password_env: CMSLAB_PASSWORD_{j}")
        spec.write_text(text)
        specs.append(spec)
    return specs, [lab.paths for lab in started]


# --- the measurement -----------------------------------------------------------------------

Pairs = list[tuple[LiveClusterRunner, SpecVersion]]
TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes (the lab processes)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


async def observe_and_plan(runner: LiveClusterRunner, version: SpecVersion) -> None:
    observed = await runner.observe(version)
    unreachable = [n for n, o in observed.nodes.items() if not o.reachable]
    assert not unreachable, f"{version.cluster}: unreachable {unreachable}"
    runner.plan(version, observed)


async def timed(
    pairs: Pairs, everyone: Pairs, lab_pids: list[int], *, cold: bool
) -> tuple[float, float, float]:
    """Wall seconds, this process's and the lab processes' CPU seconds to observe and plan
    ``pairs`` once."""
    if cold:  # new SSH connections: nobody keeps any, as on a first cycle
        for runner, _ in everyone:
            await runner.drop_transport()
    wall, cpu, lab = time.perf_counter(), time.process_time(), cpu_of(lab_pids)
    await asyncio.gather(*(observe_and_plan(r, rev) for r, rev in pairs))
    return time.perf_counter() - wall, time.process_time() - cpu, cpu_of(lab_pids) - lab


Medians = tuple[float, float, float]  # wall, reconciler CPU, lab CPU (seconds)


async def measure(
    specs: list[Path], lab_pids: list[int], max_ssh: int, runs: int, *, cold: bool
) -> tuple[Medians, Medians]:
    """Medians for one cluster and for all clusters."""
    limit = asyncio.Semaphore(max_ssh)
    pairs = []
    for spec in specs:
        runner = LiveClusterRunner(state_dir=None, ssh_limit=limit)
        pairs.append((runner, runner.load(spec)))
    await timed(
        pairs, pairs, lab_pids, cold=False
    )  # warm-up: imports, key loading, first connections
    one, many = [], []
    for _ in range(runs):  # interleaved: both see the same background load
        one.append(await timed(pairs[:1], pairs, lab_pids, cold=cold))
        many.append(await timed(pairs, pairs, lab_pids, cold=cold))
    for runner, _ in pairs:
        await runner.close()

    def medians(rounds: list[tuple[float, float, float]]) -> Medians:
        wall, cpu, lab = zip(*rounds, strict=True)
        return statistics.median(wall), statistics.median(cpu), statistics.median(lab)

    return medians(one), medians(many)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5, help="rounds, for 1 and for N clusters")
    parser.add_argument(
        "--latency-ms", type=int, default=200, help="delay every MMP answer (a WAN's round trip)"
    )
    parser.add_argument("--max-ssh", type=int, default=DEFAULT_MAX_SSH)
    parser.add_argument(
        "--labs",
        type=int,
        default=0,
        help="old mode: this many full 3-node labs instead of one light lab",
    )
    parser.add_argument("--base-address", default=LIGHT_BASE, help="light lab's first node")
    args = parser.parse_args()
    configure_logging(verbose=0)

    started = time.perf_counter()
    with ExitStack() as stack:
        if args.labs:
            specs, lab_paths = write_lab_specs(stack, args.labs, args.clusters, args.latency_ms)
            where = f"{args.labs} full lab(s) of 3 nodes"
        else:
            cfg = light_config(args.base_address, 3 * args.clusters, args.latency_ms)
            paths = stack.enter_context(light_lab(cfg))
            os.environ["CMSLAB_PASSWORD"] = labfiles.read_password(paths)
            spec_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scale-")))
            specs = write_light_specs(paths, args.clusters, spec_dir)
            lab_paths = [paths]
            where = f"one light lab of {3 * args.clusters} nodes"
        print(f"{where} up in {time.perf_counter() - started:.1f} s")
        lab_pids = [p for p in map(cleanup.supervisor_pid, lab_paths) if p is not None]
        results = {
            kind: asyncio.run(
                measure(specs, lab_pids, args.max_ssh, args.runs, cold=kind == "cold")
            )
            for kind in ("cold", "warm")
        }
    print(
        f"MMP answer latency: {args.latency_ms} ms on every node; --max-ssh {args.max_ssh}; "
        f"{args.runs} interleaved rounds each"
    )
    for kind, ((one, one_cpu, one_lab), (many, many_cpu, many_lab)) in results.items():
        what = (
            "new SSH connections every round (first cycle)"
            if kind == "cold"
            else "connections kept between rounds (watch steady state)"
        )
        print(f"{kind}: {what}")
        print(
            f"  1 cluster (3 nodes): median {one:.3f} s wall, "
            f"CPU {one_cpu:.3f} s reconciler + {one_lab:.2f} s lab process(es)"
        )
        print(
            f"  {args.clusters} clusters ({3 * args.clusters} nodes, {where}): "
            f"median {many:.3f} s wall, CPU {many_cpu:.3f} s reconciler + {many_lab:.2f} s lab"
        )
        print(f"  ratio {args.clusters} clusters / 1 cluster = {many / one:.2f} (target < 3)")


if __name__ == "__main__":
    main()
