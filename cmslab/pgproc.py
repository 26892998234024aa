"""Running PostgreSQL's own programs (initdb, pg_ctl, pg_basebackup, pg_dump) for a lab node.

As root every program runs as the `postgres` OS user (`runuser -u postgres --`) and the files it
needs are handed to that user; as any other user they simply run as that user.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
from collections.abc import Iterable
from pathlib import Path

PG_BIN_ENV = "CMSLAB_PG_BIN"


class PgError(RuntimeError):
    pass


def pg_bin() -> Path:
    env = os.environ.get(PG_BIN_ENV)
    if env:
        return Path(env)
    for version in ("17", "16", "15", "14"):
        p = Path(f"/usr/lib/postgresql/{version}/bin")
        if (p / "pg_ctl").exists():
            return p
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise PgError("PostgreSQL binaries not found: set CMSLAB_PG_BIN")


def as_root() -> bool:
    return os.geteuid() == 0


def pg_owner() -> tuple[int, int] | None:
    if not as_root():
        return None
    pw = pwd.getpwnam("postgres")
    return pw.pw_uid, pw.pw_gid


def give(*paths: Path, recursive: bool = False) -> None:
    """Hand files to the PostgreSQL OS user (no-op when not root)."""
    owner = pg_owner()
    if owner is None:
        return
    for path in paths:
        if not path.exists():
            continue
        os.chown(path, *owner)
        if recursive and path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                for n in dirnames + filenames:
                    os.chown(os.path.join(dirpath, n), *owner, follow_symlinks=False)


def command(tool: str, *args: str) -> list[str]:
    argv = [str(pg_bin() / tool), *args]
    if as_root():
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


async def run(tool: str, *args: str, timeout: float = 120.0) -> str:
    """Run `tool`; its output (stdout and stderr together) as text, PgError when it fails."""
    out, _ = await _run(tool, args, timeout, merge=True)
    return out.decode(errors="replace")


async def run_binary(tool: str, *args: str, timeout: float = 120.0) -> bytes:
    """Run `tool`; its stdout as bytes (stderr only in the PgError when it fails)."""
    out, _ = await _run(tool, args, timeout, merge=False)
    return out


async def _run(
    tool: str, args: tuple[str, ...], timeout: float, *, merge: bool
) -> tuple[bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *command(tool, *args),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT if merge else asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise PgError(f"{tool} timed out") from None
    if proc.returncode != 0:
        text = (out if merge else err or b"").decode(errors="replace")
        raise PgError(f"{tool} failed: {text.strip()[-600:]}")
    return out, err or b""


async def initdb(datadir: Path, template: Path) -> None:
    """Create a data directory: initdb once into `template`, then copy it (much faster)."""
    lock = _template_locks.setdefault(str(template), asyncio.Lock())
    async with lock:
        if not (template / "PG_VERSION").exists():
            if template.exists():
                shutil.rmtree(template)
            template.parent.mkdir(parents=True, exist_ok=True)
            template.mkdir(mode=0o700)
            give(template)
            await run(
                "initdb",
                "-D",
                str(template),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=reject",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            )
    await copy_datadir(template, datadir)


async def copy_datadir(source: Path, datadir: Path) -> None:
    """Replace `datadir` with a copy of the (stopped) data directory `source`."""
    if datadir.exists():
        shutil.rmtree(datadir)
    proc = await asyncio.create_subprocess_exec("cp", "-a", str(source), str(datadir))
    if await proc.wait() != 0:
        raise PgError(f"copying {source} to {datadir} failed")


_template_locks: dict[str, asyncio.Lock] = {}


def write_file(path: Path, text: str, mode: int = 0o600) -> None:
    path.write_text(text)
    os.chmod(path, mode)
    give(path)


def write_conf(datadir: Path, settings: dict[str, str | int], hba: Iterable[str]) -> None:
    lines = []
    for key, value in settings.items():
        if isinstance(value, int):
            lines.append(f"{key} = {value}")
        else:
            escaped = value.replace("'", "''")
            lines.append(f"{key} = '{escaped}'")
    write_file(datadir / "postgresql.conf", "\n".join(lines) + "\n")
    write_file(datadir / "pg_hba.conf", "\n".join(hba) + "\n")


def set_standby(datadir: Path, primary_conninfo: str) -> None:
    """standby.signal plus our own postgresql.auto.conf (replaces what pg_basebackup -R wrote)."""
    escaped = primary_conninfo.replace("'", "''")
    write_file(
        datadir / "postgresql.auto.conf",
        f"primary_conninfo = '{escaped}'\nrecovery_target_timeline = 'latest'\n",
    )
    write_file(datadir / "standby.signal", "")


def clear_standby(datadir: Path) -> None:
    write_file(datadir / "postgresql.auto.conf", "")
    (datadir / "standby.signal").unlink(missing_ok=True)


async def start(datadir: Path, logfile: Path) -> None:
    if not logfile.exists():
        logfile.touch()
    give(logfile)
    await run("pg_ctl", "-D", str(datadir), "-l", str(logfile), "-w", "-t", "60", "start")


async def stop(datadir: Path, mode: str = "fast") -> None:
    if postmaster_pid(datadir) is None:
        return
    try:
        await run("pg_ctl", "-D", str(datadir), "-m", mode, "-w", "-t", "60", "stop")
    except PgError:
        if postmaster_pid(datadir) is not None:
            raise


def postmaster_pid(datadir: Path) -> int | None:
    """The pid of a running postmaster of this data directory, else None."""
    try:
        first = (datadir / "postmaster.pid").read_text().splitlines()[0]
        pid = int(first)
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_is_postgres(pid) else None


def pid_is_postgres(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"postgres" in cmdline


def kill_leftover(datadir: Path) -> bool:
    """Stop a postmaster left behind by a crashed supervisor (synchronous, used by `down`)."""
    pid = postmaster_pid(datadir)
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGINT)  # fast shutdown
    except ProcessLookupError:
        return False
    return True


async def basebackup(datadir: Path, conninfo: str) -> None:
    if datadir.exists():
        shutil.rmtree(datadir)
    datadir.parent.mkdir(parents=True, exist_ok=True)
    await run(
        "pg_basebackup",
        "-D",
        str(datadir),
        "-X",
        "stream",
        "-c",
        "fast",
        "--no-sync",
        "-d",
        conninfo,
        timeout=300,
    )


async def dump(sockdir: Path, port: int, dbname: str) -> bytes:
    """`pg_dump -Fc` of one database through the node's unix socket (custom format, bytes)."""
    return await run_binary("pg_dump", "-Fc", *_socket_args(sockdir, port, dbname), timeout=300)


async def restore(sockdir: Path, port: int, dbname: str, dump_file: Path) -> None:
    """`pg_restore` a custom-format dump into the (empty) database `dbname`, all or nothing."""
    await run(
        "pg_restore",
        "--exit-on-error",
        "--single-transaction",
        *_socket_args(sockdir, port, dbname),
        str(dump_file),
        timeout=300,
    )


def _socket_args(sockdir: Path, port: int, dbname: str) -> list[str]:
    """A client's connection flags: the node's unix socket, as the postgres superuser."""
    return ["-h", str(sockdir), "-p", str(port), "-U", "postgres", "-d", dbname]
