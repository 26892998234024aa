"""Where a watch loop reads its spec from, and which revision it plans from: :class:`SpecSource`.

A loop keeps one stable path for its spec file; every cycle the source says which file
that path means now (:meth:`SpecSource.locate`, once per cycle, so a cycle never mixes two
revisions) and, before an apply, what the cycle planned from (:meth:`SpecSource.origin`):

* :class:`WorkingTree`, file-based watch: the path is the file itself; the revision is
  ``working tree`` in the summary line, and for the plan and the audit records the local
  description of :func:`reconciler.source.working_tree.local_revision` (the commit of the
  checkout the file is in, "(modified)" when it differs), which runs git, so in a thread;
* :class:`reconciler.watch.git_checkouts.GitCheckouts` (``watch --git``): the path, under
  the git source's ``current`` link, is resolved into the checkout of the revision in
  force, and the revision is that commit.

:class:`SpecOrigin` is what the plan header, the audit log and the journal then name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from reconciler.source.revision import WORKING_TREE, Revision
from reconciler.source.working_tree import local_revision
from reconciler.spec.discovery import discover_specs
from reconciler.watch.runner_interface import SpecVersion


@dataclass(frozen=True)
class Located:
    """The file a loop's spec path means this cycle, and the commit it belongs to."""

    path: Path
    commit: Revision | None = None


@dataclass(frozen=True)
class SpecOrigin:
    """The revision a cycle planned from: a commit of the git source, or the working tree."""

    commit: Revision | None = None
    local: str = WORKING_TREE  # the local description, when there is no commit

    def describe(self) -> str:
        """``3f2a9c1 'add cms-fra-2'`` or ``revision: working tree[ at ...][ (modified)]``."""
        return self.commit.describe() if self.commit is not None else self.local

    @property
    def sha(self) -> str | None:
        return self.commit.sha if self.commit is not None else None

    @property
    def record(self) -> str:
        """What audit and journal records hold: the full sha, or the local description."""
        return self.sha or self.local


class SpecSource(Protocol):
    def locate(self, path: Path) -> Located:
        """The file ``path`` means now (resolved once; cheap, no git)."""
        ...

    async def origin(self, version: SpecVersion) -> SpecOrigin:
        """What ``version`` was read from, as the plan and the audit records name it."""
        ...

    def follows(self, path: Path) -> bool:
        """Is ``path`` inside what this source manages (a file watcher need not watch it)?"""
        ...

    def discover(self, paths: Sequence[Path]) -> list[Path]:
        """The spec files to watch now (the loops' stable paths)."""
        ...


class WorkingTree:
    """Spec files on disk (file-based watch)."""

    def locate(self, path: Path) -> Located:
        return Located(path)

    async def origin(self, version: SpecVersion) -> SpecOrigin:
        if version.commit is not None:
            return SpecOrigin(version.commit)
        text = await asyncio.to_thread(local_revision, version.loaded.path, version.files)
        return SpecOrigin(local=text)

    def follows(self, path: Path) -> bool:
        return False

    def discover(self, paths: Sequence[Path]) -> list[Path]:
        """:func:`~reconciler.spec.discovery.discover_specs`, less named files that are gone."""
        return [p for p in discover_specs(list(paths)) if p.exists()]
