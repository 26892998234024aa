"""`cmslab up|down|status|fault`: run emulated CMS nodes on this machine."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cmslab import cleanup, labfiles, pgproc
from cmslab.config import (
    DEFAULT_BASE_ADDRESS,
    DEFAULT_DB_PORT,
    DEFAULT_DIR,
    DEFAULT_SSH_PORT,
    LabConfig,
    LabPaths,
    make_config,
    read_config,
    with_overrides,
    write_config,
)
from cmslab.ports import port_is_free


class LabError(RuntimeError):
    pass


def control(paths: LabPaths, request: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(paths.control_sock))
        s.sendall((json.dumps(request) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    if not buf:
        raise LabError("the lab closed the control connection")
    reply: dict[str, Any] = json.loads(buf)
    return reply


def running(paths: LabPaths) -> bool:
    return cleanup.supervisor_pid(paths) is not None


def check_postgres_access(paths: LabPaths) -> None:
    """As root the nodes' data directories belong to `postgres`: it must be able to reach DIR."""
    if not pgproc.as_root():
        return
    os.chmod(paths.root, 0o711)
    r = subprocess.run(
        ["runuser", "-u", "postgres", "--", "test", "-x", str(paths.root)], check=False
    )
    if r.returncode != 0:
        raise LabError(
            f"the postgres user cannot reach {paths.root}: every parent directory needs o+x "
            "(choose another --dir, e.g. under /tmp)"
        )


def ssh_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def busy_ports(cfg: LabConfig) -> list[str]:
    out = []
    for n in cfg.nodes:
        for port in (n.ssh_port, n.db_port, n.pg_port, n.watch_port):
            if not port_is_free(n.address, port):
                out.append(f"{n.address}:{port}")
    return out


def up(paths: LabPaths, cfg: LabConfig, timeout: float = 180.0) -> None:
    paths.root.mkdir(parents=True, exist_ok=True)
    if running(paths):
        return
    cleanup.stop_everything(paths)  # leftovers of a crash
    if busy := busy_ports(cfg):
        raise LabError(f"ports in use (another lab?): {', '.join(busy)}")
    write_config(paths, cfg)
    labfiles.write_all(paths, cfg)
    (paths.root / "nodes").mkdir(exist_ok=True)
    check_postgres_access(paths)
    os.chmod(paths.root / "nodes", 0o711)
    with paths.supervisor_log.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cmslab.supervisor", str(paths.root)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise LabError(f"the lab failed to start:\n{tail(paths.supervisor_log)}")
        if time.monotonic() > deadline:
            cleanup.stop_everything(paths)
            raise LabError(
                f"the lab did not start in {timeout:.0f} s:\n{tail(paths.supervisor_log)}"
            )
        try:
            reply = control(paths, {"op": "ping"}, timeout=5)
        except (OSError, LabError, ValueError):
            time.sleep(0.1)
            continue
        if reply.get("error"):
            proc.wait(60)
            raise LabError(f"the lab failed to start: {reply['error']}")
        if reply.get("ready") and all(ssh_answers(n.address, n.ssh_port) for n in cfg.nodes):
            return
        time.sleep(0.1)


def down(paths: LabPaths) -> None:
    if running(paths):
        with contextlib.suppress(OSError, LabError, ValueError):
            control(paths, {"op": "down"}, timeout=10)
        pid = cleanup.supervisor_pid(paths)
        if pid is not None and cleanup.wait_gone([pid], 90):
            cleanup.stop_supervisor(paths)
    cleanup.stop_everything(paths)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text().splitlines()[-lines:])
    except OSError:
        return ""


def table(rows: list[dict[str, Any]]) -> str:
    cols = [
        ("NODE", "name"),
        ("ADDRESS", "address"),
        ("SSH", "ssh_port"),
        ("DB", "db_port"),
        ("POWER", "power"),
        ("DB PORT", "db_port_state"),
        ("CLUSTERED", "clustered"),
        ("ROLE", "role"),
        ("LATENCY", "latency_ms"),
        ("LAST COMMAND", "last"),
    ]
    for r in rows:
        r["last"] = f"{r['last_command']} ({r['last_result']})" if r.get("last_command") else "-"
    widths = [max(len(h), *(len(str(r.get(k, ""))) for r in rows)) for h, k in cols]
    out = ["  ".join(h.ljust(w) for (h, _), w in zip(cols, widths, strict=True)).rstrip()]
    for r in rows:
        out.append(
            "  ".join(
                str(r.get(k, "")).ljust(w) for (_, k), w in zip(cols, widths, strict=True)
            ).rstrip()
        )
    return "\n".join(out)


def print_status(paths: LabPaths) -> int:
    if not running(paths):
        print(f"lab in {paths.root} is not running")
        return 3
    reply = control(paths, {"op": "status"})
    print(table(reply["nodes"]))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cmslab", description=__doc__)
    p.add_argument("--dir", default=os.environ.get("CMSLAB_DIR", DEFAULT_DIR), help="lab directory")
    sub = p.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("up", help="start the lab (or resume it from --dir)")
    u.add_argument("--nodes", type=int, default=None, help="number of nodes (default 3)")
    u.add_argument(
        "--base-address", default=None, help=f"first node's address ({DEFAULT_BASE_ADDRESS})"
    )
    u.add_argument("--ssh-port", type=int, default=None, help=f"MMP SSH port ({DEFAULT_SSH_PORT})")
    u.add_argument("--db-port", type=int, default=None, help=f"database port ({DEFAULT_DB_PORT})")
    u.add_argument(
        "--pg-port", type=int, default=None, help="internal PostgreSQL port (db-port+10000)"
    )
    u.add_argument("--watch-port", type=int, default=None, help="watcher port (ssh-port+1000)")
    u.add_argument("--wording", choices=("master", "primary"), default=None)
    u.add_argument("--latency-ms", type=int, default=None, help="delay before each MMP answer")
    u.add_argument(
        "--light",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="light nodes (for many nodes, e.g. --nodes 150 --light): no PostgreSQL until "
        "`initialize`/`join` creates the node's cluster database; otherwise fully functional",
    )
    u.add_argument("--timeout", type=float, default=180.0)
    sub.add_parser("down", help="stop everything; data stays in --dir")
    sub.add_parser("status", help="show the nodes")
    f = sub.add_parser("fault", help="inject a fault")
    f.add_argument("node", help="node name or address")
    f.add_argument(
        "fault",
        choices=("kill", "revive", "block-db", "unblock-db", "schema-error", "latency"),
    )
    f.add_argument("arg", nargs="?", help="milliseconds for latency")
    return p


def config_for_up(paths: LabPaths, a: argparse.Namespace) -> LabConfig:
    if paths.lab_json.exists():
        cfg = read_config(paths)
        if a.nodes is not None and a.nodes != len(cfg.nodes):
            raise LabError(
                f"{paths.root} holds a lab of {len(cfg.nodes)} nodes; "
                f"use another --dir for {a.nodes}"
            )
        return with_overrides(cfg, a.wording, a.latency_ms, a.light)
    return make_config(
        nodes=a.nodes or 3,
        base_address=a.base_address or DEFAULT_BASE_ADDRESS,
        ssh_port=a.ssh_port or DEFAULT_SSH_PORT,
        db_port=a.db_port or DEFAULT_DB_PORT,
        wording=a.wording or "master",
        latency_ms=a.latency_ms or 0,
        pg_port=a.pg_port,
        watch_port=a.watch_port,
        light=bool(a.light),
    )


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    paths = LabPaths(Path(a.dir).resolve())
    try:
        if a.cmd == "up":
            cfg = config_for_up(paths, a)
            started = time.monotonic()
            up(paths, cfg, a.timeout)
            print(f"lab up in {paths.root} ({time.monotonic() - started:.1f} s)")
            print_status(paths)
            print(f"spec: {paths.lab_yaml}")
            print(f"password: export CMSLAB_PASSWORD=$(cat {paths.password_file})")
            first = cfg.nodes[0]
            print(
                f"try: ssh -p {first.ssh_port} -o UserKnownHostsFile={paths.known_hosts} "
                f"{cfg.admin_user}@{first.address} database cluster status"
            )
            return 0
        if a.cmd == "down":
            down(paths)
            print(f"lab in {paths.root} stopped (data kept)")
            return 0
        if a.cmd == "status":
            return print_status(paths)
        if a.cmd == "fault":
            if not running(paths):
                raise LabError(f"lab in {paths.root} is not running")
            reply = control(paths, {"op": "fault", "node": a.node, "fault": a.fault, "arg": a.arg})
            print(reply.get("message", ""))
            return 0 if reply.get("ok") else 1
    except (LabError, ValueError, OSError) as exc:
        print(f"cmslab: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
