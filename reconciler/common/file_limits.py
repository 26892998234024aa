"""Every file the reconciler reads is read here: regular files only, never more than a limit.

=====================================  ==========  =======================================
file                                   limit       read by
=====================================  ==========  =======================================
spec (YAML)                            1 MiB       spec_loader, spec_discovery, watch
certificate, private key, ``ssh.key``  1 MiB       spec_loader (checks, upload digests),
                                                   cert_checks.certificate_expiry
``known_hosts``                        4 MiB       spec_loader (check), ssh_transport
snapshot (``--observed``)              16 MiB      snapshot_io
saved plan (``apply plan.json``)       16 MiB      plan_io
one raw status text in a snapshot      64 KiB      snapshot_io (checked before parsing)
=====================================  ==========  =======================================

:func:`read_bounded` refuses anything that is not a regular file (a FIFO, a device such
as ``/dev/zero``, a socket, a directory) *without opening it for reading*: the path is
``stat``-ed first, then opened non-blocking and ``fstat``-ed again (a file swapped for a
FIFO in between is refused too, and the open cannot hang). It reads at most
``limit + 1`` bytes, so a file that grows after the ``stat`` is still refused by size.

Problems raise :class:`FileReadError`, a :class:`~reconciler.common.errors.SpecError` (bad
input: exit 1, nothing touched) whose message names the file. File contents are never
part of a message.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from reconciler.common.errors import SpecError

KIB = 1024
MIB = 1024 * KIB

SPEC_LIMIT = 1 * MIB
CERT_LIMIT = 1 * MIB  # certificates, private keys and the ssh.key file
KNOWN_HOSTS_LIMIT = 4 * MIB
SNAPSHOT_LIMIT = 16 * MIB
PLAN_LIMIT = 16 * MIB
STATUS_TEXT_LIMIT = 64 * KIB  # one `database cluster status` text in a snapshot

_CHUNK = 1 * MIB

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileReadError(SpecError):
    """A file could not be read or was refused; ``reason`` never quotes its content."""

    def __init__(self, path: Path | str, what: str, reason: str, *, err: int | None = None):
        super().__init__(f"{path}: cannot read {what}: {reason}")
        self.path = Path(path)
        self.what = what
        self.reason = reason
        self.errno = err

    @property
    def missing(self) -> bool:
        return self.errno == errno.ENOENT


def format_size(size: int) -> str:
    """``1048576`` -> ``"1 MiB"``; ``65536`` -> ``"64 KiB"``; other sizes in bytes."""
    for unit, name in ((MIB, "MiB"), (KIB, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size} bytes"


def read_bounded(path: Path | str, limit: int, what: str) -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit``); FileReadError otherwise.

    ``what`` names the file in messages ("spec file", "saved plan", ...).
    """
    name = os.fspath(path)
    try:
        info = os.stat(name)
    except OSError as exc:
        raise _os_error(path, what, exc) from None
    _check_regular(path, what, info.st_mode)
    if info.st_size > limit:
        raise _too_large(path, what, limit, info.st_size)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(name, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _os_error(path, what, exc) from None
    chunks: list[bytes] = []
    try:
        _check_regular(path, what, os.fstat(fd).st_mode)  # replaced after the stat?
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, _CHUNK))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise _os_error(path, what, exc) from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise _too_large(path, what, limit, None)
    return data


def read_text_bounded(path: Path | str, limit: int, what: str) -> str:
    """:func:`read_bounded`, decoded as UTF-8 (FileReadError naming the line otherwise)."""
    data = read_bounded(path, limit, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FileReadError(path, what, f"not valid UTF-8 (line {line})") from None


def _check_regular(path: Path | str, what: str, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise FileReadError(path, what, os.strerror(errno.EISDIR), err=errno.EISDIR)
    kind = next((text for test, text in _KINDS if test(mode)), "some other kind of file")
    raise FileReadError(path, what, f"not a regular file but {kind}; refused without reading it")


def _too_large(path: Path | str, what: str, limit: int, size: int | None) -> FileReadError:
    found = f"{size} bytes" if size is not None else "it grew while being read"
    return FileReadError(
        path,
        what,
        f"too large ({found}; the limit for a {what} is {format_size(limit)}); "
        "refused without parsing it",
    )


def _os_error(path: Path | str, what: str, exc: OSError) -> FileReadError:
    return FileReadError(path, what, exc.strerror or type(exc).__name__, err=exc.errno)


__all__ = [
    "CERT_LIMIT",
    "KNOWN_HOSTS_LIMIT",
    "PLAN_LIMIT",
    "SNAPSHOT_LIMIT",
    "SPEC_LIMIT",
    "STATUS_TEXT_LIMIT",
    "FileReadError",
    "format_size",
    "read_bounded",
    "read_text_bounded",
]
