"""The files side of atomic checkouts: sync a tree to disk, swap a link, delete safely, prune.

A checkout is complete exactly when its folder is named by a full sha (see
:mod:`reconciler.source.git_source`): these helpers keep that true across crashes. A tree
is synced (every file and folder ``fsync``-ed) before it is renamed into place; a link is
replaced by renaming a new one over it; a folder is renamed out of the way before it is
deleted; anything else found among the checkouts is a leftover and removed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path

from reconciler.source.revision import is_full_sha


def fsync_path(path: str | Path) -> None:
    """Flush a file or a folder (its entries) to disk."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_tree(top: Path) -> None:
    """Flush every file and folder under ``top`` (links are not followed)."""
    for folder, _dirs, files in os.walk(top):
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                fsync_path(path)
        fsync_path(folder)


def remove_tree(path: Path) -> None:
    """Rename ``path`` out of the way, then delete it: a crash half-way leaves a leftover
    with a hidden name, never a partial tree under the name it had."""
    doomed = path.with_name(f".old-{path.name}-{secrets.token_hex(4)}")
    with contextlib.suppress(FileNotFoundError):
        os.rename(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)


def point_link(link: Path, target: str) -> None:
    """Make the symbolic link ``link`` name ``target``, atomically (rename over the old one)."""
    tmp = link.with_name(f".{link.name}.tmp-{secrets.token_hex(4)}")
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_path(link.parent)


def newest_checkouts(checkouts: Path, current: str | None, keep: int) -> set[str]:
    """Delete all but the ``keep`` newest complete checkouts in ``checkouts`` (``current``
    always kept) and every leftover; the shas kept."""
    complete = []
    for entry in checkouts.iterdir():
        if entry.is_dir() and not entry.is_symlink() and is_full_sha(entry.name):
            complete.append(entry)
        elif entry.is_dir() and not entry.is_symlink():
            remove_tree(entry)  # a checkout interrupted, or deleted half-way
        else:
            entry.unlink(missing_ok=True)
    complete.sort(key=lambda p: (p.name == current, p.stat().st_mtime), reverse=True)
    for old in complete[keep:]:
        remove_tree(old)
    return {p.name for p in complete[:keep]}
