"""Throw-away labs for tests and benchmarks: a /tmp directory the `postgres` user can enter,
and a lab in it that is always stopped and removed afterwards."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cmslab import cleanup, cli
from cmslab.config import LabConfig, LabPaths


def scratch_dir(prefix: str) -> Path:
    """A new directory under /tmp, mode 0711: PostgreSQL runs as `postgres` when we are root."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(root, 0o711)
    return root


def discard_lab(paths: LabPaths, root: Path) -> None:
    """Stop the lab (leftovers too, even if `down` fails) and remove its directory ``root``."""
    try:
        cli.down(paths)
    finally:
        cleanup.stop_everything(paths)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def scratch_lab(cfg: LabConfig, prefix: str = "cmslab-") -> Iterator[LabPaths]:
    """`cmslab up` of ``cfg`` in a scratch directory; stopped and removed on exit."""
    root = scratch_dir(prefix)
    paths = LabPaths(root / "lab")
    try:
        cli.up(paths, cfg)
        yield paths
    finally:
        discard_lab(paths, root)
