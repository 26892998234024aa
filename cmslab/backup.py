"""`backup snapshot <name>` and `backup list` of one node (docs/assumptions.md, A8).

A snapshot is two files in the node's SFTP root (`upload/`), both 0600: `<name>.bak`, the
node's `cluster` database as a PostgreSQL custom-format dump (`pg_dump -Fc`), and `<name>.json`,
what it is (node, address, name, UTC time, role, LSN, size and sha256 of the `.bak`). Dumped is
the cluster database of a clustered node (a replica's read-only copy on a replica), else the
local database when it holds a `cluster` database (a former master's, A3).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmslab import pgdb, pgproc
from cmslab.state import ROLE_CLIENT, ROLE_DATABASE

if TYPE_CHECKING:
    from cmslab.node import LabNode

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_NAME = 64
BUSY = "another database cluster command is in progress"
POSITION_SQL = """
SELECT pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery()
            THEN COALESCE(pg_last_wal_replay_lsn(), pg_last_wal_receive_lsn())::text
            ELSE pg_current_wal_lsn()::text END
"""


class Refused(Exception):
    """The snapshot is refused or failed: the reason, for `FAILURE: <reason>`."""


def valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME and NAME.fullmatch(name) is not None


def names(node: LabNode) -> list[str]:
    """The backups in the SFTP root: the names that have a `<name>.bak`, sorted."""
    found = (p.name[: -len(".bak")] for p in node.upload.glob("*.bak") if p.is_file())
    return sorted(n for n in found if valid_name(n))


def files(node: LabNode, name: str) -> tuple[Path, Path]:
    return node.upload / f"{name}.bak", node.upload / f"{name}.json"


async def snapshot(node: LabNode, name: str) -> None:
    """Write `<name>.bak` and `<name>.json`; raise Refused with the reason when it cannot."""
    if node.busy():
        raise Refused(BUSY)
    _check_free(node, name)
    async with node.lock:  # no PostgreSQL restart (watcher, command) while dumping
        if node.busy():  # a clustering command was accepted while this waited
            raise Refused(BUSY)
        _check_free(node, name)
        role = node.state.role
        if role == ROLE_CLIENT:
            raise Refused("this node is a client (connect): it holds no cluster database")
        started = dt.datetime.now(dt.UTC)
        if role == ROLE_DATABASE:
            data, lsn, is_replica = await _dump(node)
            described = "replica" if is_replica else "master"
        else:
            async with node.unclustered_db() as holds_cluster:
                if not holds_cluster:
                    raise Refused("this node holds no cluster database to back up")
                data, lsn, _ = await _dump(node)
            described = "unclustered"
    _write(node, name, data, _description(node, name, started, described, lsn, data))


def _check_free(node: LabNode, name: str) -> None:
    for path in files(node, name):
        if path.exists():
            raise Refused(f"backup '{name}' already exists ({path.name})")


async def _dump(node: LabNode) -> tuple[bytes, str, bool]:
    """The running database's `cluster` dump, its LSN (read just before) and whether a replica."""
    try:
        conn = await node.local_conn()
        async with conn:
            in_recovery, lsn = await pgdb.fetchone(conn, POSITION_SQL)
        data = await pgproc.dump(node.run_dir, node.cfg.pg_port, pgdb.DB)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Refused(f"cannot dump the cluster database: {first}") from exc
    return data, str(lsn), bool(in_recovery)


def _description(
    node: LabNode, name: str, started: dt.datetime, role: str, lsn: str, data: bytes
) -> dict[str, Any]:
    return {
        "name": name,
        "node": node.name,
        "address": node.address,
        "time": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "role": role,
        "database": pgdb.DB,
        "lsn": lsn,
        "file": f"{name}.bak",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def _write(node: LabNode, name: str, data: bytes, description: dict[str, Any]) -> None:
    """Both files, 0600 from the start and never over an existing file; none on failure."""
    bak, desc = files(node, name)
    text = (json.dumps(description, indent=2) + "\n").encode()
    made: list[Path] = []
    try:
        for path, content in ((bak, data), (desc, text)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            made.append(path)
            with os.fdopen(fd, "wb") as f:
                f.write(content)
    except OSError as exc:
        for path in made:
            with contextlib.suppress(OSError):
                path.unlink()
        raise Refused(f"cannot write backup '{name}': {exc.strerror or exc}") from exc
