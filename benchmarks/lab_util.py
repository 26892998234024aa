"""Start/stop a throw-away cmslab for a benchmark (loopback 127.0.2x.x, free SSH ports)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cmslab.config import LabConfig, LabPaths, make_config
from cmslab.ports import port_is_free
from cmslab.scratch import scratch_lab


@dataclass
class BenchLab:
    paths: LabPaths
    cfg: LabConfig
    password: str


@contextmanager
def bench_lab(base_address: str, nodes: int, latency_ms: int = 0) -> Iterator[BenchLab]:
    prefix, last = base_address.rsplit(".", 1)
    addresses = [f"{prefix}.{int(last) + i}" for i in range(nodes)]
    port = next(
        p
        for p in range(24300, 25900, 7)
        if all(port_is_free(a, q) for a in addresses for q in (p, p + 1000))
    )
    cfg = make_config(nodes, base_address=base_address, ssh_port=port, latency_ms=latency_ms)
    with scratch_lab(cfg, prefix="reconcile-bench-") as paths:
        os.environ["CMSLAB_PASSWORD"] = paths.password_file.read_text().strip()
        yield BenchLab(paths, cfg, os.environ["CMSLAB_PASSWORD"])


def write_spec(
    lab: BenchLab, nodes: int, name: str, policy: dict[str, object] | None = None
) -> Path:
    """The lab's spec cut to its first ``nodes`` nodes (unsafe topology allowed for 1 node)."""
    from ruamel.yaml import YAML

    yaml = YAML()
    data = yaml.load(lab.paths.lab_yaml.read_text())
    data["nodes"] = data["nodes"][:nodes]
    data["policy"] = dict(policy or {})
    if nodes < 3:
        data["policy"]["allow_unsafe_topology"] = True
    path = lab.paths.root / name
    with path.open("w") as fh:
        yaml.dump(data, fh)
    return path
