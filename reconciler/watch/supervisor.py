"""`reconcile watch` over many spec files: one :class:`ClusterLoop` per file, concurrently,
following the watched directories as files appear and disappear, or (``watch --git``) the
spec files of the revision in force (:meth:`WatchSupervisor.on_new_revision`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import structlog

from reconciler.watch.loop import SUPERVISOR, ClusterLoop, WatchConfig
from reconciler.watch.metrics import HealthState, WatchMetrics
from reconciler.watch.runner_interface import ClusterRunner
from reconciler.watch.spec_source import SpecSource, WorkingTree
from reconciler.watch.triggers import symlink_parents

log = structlog.get_logger("reconciler.watch")

RunnerFactory = Callable[[Path], ClusterRunner]


class WatchSupervisor:
    """Runs one :class:`ClusterLoop` per spec file, concurrently; follows the directories.

    A spec file already watched stays watched while it exists, even when it stops
    looking like a spec (its loop reports it invalid and keeps the last valid
    one). A file that disappears stops its loop (the cluster is left as it is).
    Two files naming the same cluster: the first one keeps it, the other is
    reported invalid.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        runner_factory: RunnerFactory,
        config: WatchConfig,
        *,
        metrics: WatchMetrics | None = None,
        health: HealthState | None = None,
        loop_factory: Callable[..., ClusterLoop] = ClusterLoop,
        source: SpecSource | None = None,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.runner_factory = runner_factory
        self.config = config
        self.metrics = metrics
        self.health = health
        self.stop_event = asyncio.Event()
        self.loops: dict[Path, ClusterLoop] = {}
        self._tasks: dict[Path, asyncio.Task[None]] = {}
        self._loop_factory = loop_factory
        self.source: SpecSource = source if source is not None else WorkingTree()
        self._owners: dict[str, Path] = {}
        self._retired: list[asyncio.Task[None]] = []

    # --- cluster ownership ----------------------------------------------------------
    def claim(self, cluster: str, path: Path) -> Path | None:
        """None when ``path`` may own ``cluster``; else the file that already owns it."""
        owner = self._owners.get(cluster)
        if owner is not None and owner != path and owner in self.loops:
            return owner
        for name, p in list(self._owners.items()):
            if p == path and name != cluster:
                del self._owners[name]  # the file was renamed to another cluster
        self._owners[cluster] = path
        return None

    # --- file set -------------------------------------------------------------------
    def refresh(self) -> None:
        """Start loops for new spec files, stop loops whose file is gone."""
        wanted = set(self.source.discover(self.paths))
        for path in sorted(wanted - self.loops.keys()):
            self._start(path)
        for path in sorted(self.loops.keys() - wanted):
            if self.source.locate(path).path.exists():
                continue  # still there but not spec-like now: its loop reports it
            self._drop(path)

    def _start(self, path: Path) -> None:
        loop = self._loop_factory(
            path,
            self.runner_factory(path),
            self.config,
            metrics=self.metrics,
            health=self.health,
            claim=self.claim,
            source=self.source,
        )
        self.loops[path] = loop
        self._tasks[path] = asyncio.create_task(self._run_loop(loop), name=f"watch {path}")
        log.info("watching spec", file=str(path))

    def _drop(self, path: Path) -> None:
        loop = self.loops.pop(path)
        log.warning(
            "spec file removed: cluster no longer watched (nothing is changed on it)",
            cluster=loop.name,
            file=str(path),
        )
        # A running apply finishes its current step and releases the lock; the
        # task is awaited at shutdown, never cancelled mid-step.
        loop.stop()
        self._retired.append(self._tasks.pop(path))
        if self.health is not None:
            self.health.forget(loop.health_key)
        if self.metrics is not None:
            self.metrics.forget_cluster(loop.name)
        for name, owner in list(self._owners.items()):
            if owner == path:
                del self._owners[name]

    async def _run_loop(self, loop: ClusterLoop) -> None:
        try:
            await loop.run()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must not take the other clusters down
            log.exception("cluster loop crashed; restarting it", cluster=loop.name)
            await loop.pause(self.config.interval)
            if not loop.stop_event.is_set() and self.loops.get(loop.path) is loop:
                self._tasks[loop.path] = asyncio.create_task(
                    self._run_loop(loop), name=f"watch {loop.path}"
                )

    # --- triggers -------------------------------------------------------------------
    def on_changes(self, changed: Iterable[Path]) -> list[ClusterLoop]:
        """A batch of file changes: follow the file set and wake the loops it concerns."""
        changed = list(changed)
        self.refresh()
        woken = [loop for loop in self.loops.values() if loop.files_changed()]
        for loop in woken:
            log.info("change detected: waking", cluster=loop.name, files=len(changed))
            loop.wake()
        return woken

    def on_new_revision(
        self, revision: str, concerned: Callable[[ClusterLoop], bool]
    ) -> list[ClusterLoop]:
        """A new revision of the git source is in force: follow its spec files and wake the
        loops it ``concerned`` or whose files' content changed (new loops start anyway)."""
        before = set(self.loops)
        self.refresh()
        woken = [
            loop
            for path, loop in self.loops.items()
            if path in before and (concerned(loop) or loop.files_changed())
        ]
        for loop in woken:
            log.info("change detected: waking", cluster=loop.name, revision=revision)
            loop.wake()
        return woken

    def watch_roots(self) -> set[Path]:
        """Directories (watched non-recursively) whose changes matter.

        The given directories (or the given files' directories), the directories of
        every file a valid spec names, and the directories holding a symlink on the
        way to any of them (a ConfigMap's ``..data`` or git-sync's ``current`` swap);
        never what a git source manages (its new revisions wake the loops themselves).
        """
        wanted: set[Path] = set()
        for p in self.paths:
            wanted.add(p if p.is_dir() else p.parent)
        for loop in self.loops.values():
            wanted.add(loop.path.parent)
            if loop.current is not None:
                wanted.update(f.parent for f in loop.current.files)
        roots: set[Path] = set()
        for d in wanted:
            roots |= symlink_parents(d)
            roots.add(d.resolve() if d.exists() else d)
        return {r for r in roots if r.exists() and not self.source.follows(r)}

    # --- lifecycle ------------------------------------------------------------------
    def stop(self) -> None:
        """Graceful stop: running applies finish their current step, loops end."""
        self.stop_event.set()
        for loop in self.loops.values():
            loop.stop()
        with contextlib.suppress(OSError):
            log.info("stopping: finishing the current step of running applies")

    async def run(self, *, rediscover_every: float | None = None) -> None:
        """Until :meth:`stop`: follow the file set, beat the supervisor's health."""
        every = rediscover_every if rediscover_every is not None else self.config.interval
        self.refresh()
        if not self.loops:
            log.warning("no spec files found yet; watching", paths=[str(p) for p in self.paths])
        while not self.stop_event.is_set():
            if self.health is not None:
                self.health.beat(SUPERVISOR)
            try:
                await asyncio.wait_for(self.stop_event.wait(), timeout=every)
            except TimeoutError:
                self.refresh()
        await self._drain()

    async def _drain(self) -> None:
        tasks = [*self._tasks.values(), *self._retired]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        log.info("stopped", clusters=len(tasks))
