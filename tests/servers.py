"""Real servers started by tests on loopback addresses: etcd (Debian's etcd-server) and
PostgreSQL 15 (run as the postgres user when the tests run as root)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextlib.contextmanager
def running_etcd(data: Path, host: str, prefix: str = "/test/locks") -> Iterator[str]:
    """A single-member etcd on ``host``; yields its lock URL ``etcd://host:port/prefix``."""
    binary = shutil.which("etcd")
    assert binary, "etcd not installed: apt-get install etcd-server (.ci/run does)"
    client = f"http://{host}:{free_port(host)}"
    peer = f"http://{host}:{free_port(host)}"
    log = (data / "etcd.log").open("wb")
    proc = subprocess.Popen(
        [binary, "--name", "t", "--data-dir", str(data / "d"),
         "--listen-client-urls", client, "--advertise-client-urls", client,
         "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
         "--initial-cluster", f"t={peer}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (data / "etcd.log").read_text()
            try:
                if httpx.get(f"{client}/health", timeout=1).json().get("health") == "true":
                    break
            except (httpx.HTTPError, ValueError):
                pass
            assert time.monotonic() < deadline, "etcd did not start"
            time.sleep(0.1)
        yield f"etcd://{client.removeprefix('http://')}{prefix}"
    finally:
        stop_process(proc)
        log.close()


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextlib.contextmanager
def running_postgres(host: str) -> Iterator[str]:
    """A PostgreSQL 15 on ``host`` with a database ``locks``; yields its URL (trust auth)."""
    assert (PG_BIN / "postgres").exists(), f"PostgreSQL 15 not installed in {PG_BIN}"
    base = Path(tempfile.mkdtemp(prefix="lockpg-"))  # /tmp: reachable by the postgres user
    data, sockets = base / "data", base / "sock"
    sockets.mkdir()
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        for path in (base, sockets):
            os.chown(path, pw.pw_uid, pw.pw_gid)
    port = free_port(host)
    started = False
    try:
        subprocess.run(
            _as_postgres([str(PG_BIN / "initdb"), "-A", "trust", "-U", "postgres", "-D",
                          str(data)]),
            check=True, capture_output=True,
        )  # fmt: skip
        options = f"-c listen_addresses={host} -p {port} -c unix_socket_directories={sockets}"
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(base / "log"),
                          "-w", "-o", options, "start"]),
            check=True, capture_output=True,
        )  # fmt: skip
        started = True
        with psycopg.connect(host=host, port=port, user="postgres", autocommit=True) as c:
            c.execute("CREATE DATABASE locks")
        yield f"postgresql://postgres@{host}:{port}/locks"
    finally:
        if started:
            subprocess.run(
                _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate",
                              "-w", "stop"]),
                capture_output=True,
            )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)
