"""Files the tool writes are its owner's only: directories 0700, files 0600.

The state directory holds the lock, the audit log and the journal; saved plans and
snapshots name the nodes, their files and their checksums. None of it is for other users
of an admin host. A directory or file that already exists with wider permissions and
belongs to us is narrowed; one that belongs to someone else is left as it is (its owner
chose).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def _narrow(path: Path, mode: int) -> None:
    with contextlib.suppress(OSError):
        info = path.stat()
        if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & ~mode:
            path.chmod(stat.S_IMODE(info.st_mode) & mode)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) 0700, or narrow it to 0700 if it is ours. OSError."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _narrow(path, DIR_MODE)
    return path


def write_private_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as a new 0600 file, replacing it whole (never half-written)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def open_private_append(path: Path) -> int:
    """A descriptor appending to ``path``, created 0600 (an existing file of ours narrowed)."""
    fd = os.open(
        path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), FILE_MODE
    )
    _narrow(path, FILE_MODE)
    return fd


def output_problem(path: Path) -> str | None:
    """Why ``path`` cannot be written as an output file, checked before any work is done
    (None when it can be): it is a directory, or its folder does not exist or is not one."""
    if path.is_dir():
        return "is a directory"
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        return f"folder {parent} does not exist"
    if not parent.is_dir():
        return f"{parent} is not a folder"
    if not os.access(parent, os.W_OK):
        return f"folder {parent} is not writable"
    return None
