"""Wake the watch loops when spec files (or a checkout) change: watchfiles, debounced.

:func:`watch_for_changes` runs ``watchfiles.awatch`` over the directories the
supervisor names (non-recursively: the spec directories, the directories of the
files the specs name, and the parents of symlinks on the way) and hands every
debounced batch of changed paths to a callback. Batches are grouped for at most
``debounce_ms`` (default 300 ms) and yielded as soon as ``step_ms`` passes
without a further change, so a ``git pull`` touching several files is one batch,
seen within a fraction of a second.

The filter is deliberately coarse (watchfiles' default: no ``.git`` internals,
editor swap and backup files, ``__pycache__``; plus the ``.reconcile`` state
directory): which loop a change concerns is decided by content — each loop
compares the digest of its spec file and of the files the spec names
(``ClusterLoop.files_changed``), so a touched but unchanged file wakes nobody,
and atomic symlink swaps (Kubernetes ConfigMap ``..data``, git-sync worktrees)
are caught whatever the changed entry's name.

The set of directories is re-read after every batch and every few seconds; when
it changes (a new spec names certificates elsewhere, a symlinked checkout was
swapped) the watcher restarts on the new set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import structlog
from watchfiles import DefaultFilter, awatch

from reconciler.apply.state_dir import STATE_DIR_NAME  # apply's state, never a trigger

log = structlog.get_logger("reconciler.watch")

DEFAULT_DEBOUNCE_MS = 300
DEFAULT_STEP_MS = 50
ROOTS_RECHECK_MS = 5000


def symlink_parents(path: Path) -> set[Path]:
    """Directories holding a symlink on the way to ``path`` (their swaps must be seen)."""
    out: set[Path] = set()
    current = Path(path.anchor)
    for part in path.absolute().parts[1:]:
        current = current / part
        if current.is_symlink():
            out.add(current.parent)
    return out


async def watch_for_changes(
    roots: Callable[[], set[Path]],
    on_changes: Callable[[set[Path]], object],
    stop: asyncio.Event,
    *,
    debounce_ms: int = DEFAULT_DEBOUNCE_MS,
    step_ms: int = DEFAULT_STEP_MS,
    force_polling: bool | None = None,
) -> None:
    """Call ``on_changes(paths)`` for every debounced batch until ``stop`` is set."""
    watch_filter = DefaultFilter(ignore_dirs=(*DefaultFilter.ignore_dirs, STATE_DIR_NAME))
    while not stop.is_set():
        current = {r for r in roots() if r.exists()}
        if not current:
            await _wait(stop, ROOTS_RECHECK_MS / 1000)
            continue
        log.debug("watching directories", roots=sorted(map(str, current)))
        try:
            async for changes in awatch(
                *sorted(current),
                watch_filter=watch_filter,
                debounce=debounce_ms,
                step=step_ms,
                stop_event=stop,
                rust_timeout=ROOTS_RECHECK_MS,
                yield_on_timeout=True,
                force_polling=force_polling,
                recursive=False,
            ):
                if changes:
                    on_changes({Path(p) for _, p in changes})
                if {r for r in roots() if r.exists()} != current:
                    log.info("watched directories changed; restarting the file watcher")
                    break
        except FileNotFoundError:
            # A watched directory vanished (checkout swapped): re-read the roots.
            await _wait(stop, step_ms / 1000)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return
