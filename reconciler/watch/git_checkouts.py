"""The git source's checkouts as watch reads them: :class:`GitCheckouts`, a
:class:`~reconciler.watch.spec_source.SpecSource`.

Loops keep stable names for their spec files, under the git source's ``current`` link
(``<state dir>/git/current/<path>/cms-fra.yaml``), but never read through it: every cycle
the name is resolved once into the folder of the revision in force
(``<state dir>/git/checkouts/<sha>/<path>``, the folder
:meth:`reconciler.source.git_source.GitSource.checkout` returned), so a cycle reads one
revision even while the follower checks out the next. The revision in force is set only by
:class:`reconciler.watch.git_follower.GitFollower`, after the checkout is complete (and,
with ``--verify-signatures``, only for a verified commit): a checkout on disk that was not
accepted is never read.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from reconciler.source.revision import Revision
from reconciler.spec.discovery import discover_specs
from reconciler.watch.runner_interface import SpecVersion
from reconciler.watch.spec_source import Located, SpecOrigin


class GitCheckouts:
    """The revision in force of one git source, and the stable names of its files."""

    def __init__(self, root: Path, path: str) -> None:
        self.root = root.absolute()  # the GitSource's root_dir
        self.path = path  # the spec folder inside the repository ("." for its root)
        self.stable = self.root / "current" if path == "." else self.root / "current" / path
        self.revision: Revision | None = None  # the revision in force
        self.folder: Path | None = None  # its spec folder, checkouts/<sha>/<path>

    def set_in_force(self, revision: Revision, folder: Path) -> None:
        """``folder`` (complete on disk) holds the specs of ``revision``, now in force."""
        self.revision, self.folder = revision, folder.absolute()

    # --- SpecSource ---------------------------------------------------------------
    def locate(self, path: Path) -> Located:
        if self.folder is None:
            return Located(path)
        try:
            relative = path.absolute().relative_to(self.stable)
        except ValueError:
            return Located(path)  # not a name of ours (a spec outside the repository)
        return Located(self.folder / relative, self.revision)

    async def origin(self, version: SpecVersion) -> SpecOrigin:
        return SpecOrigin(version.commit)

    def follows(self, path: Path) -> bool:
        return path.absolute().is_relative_to(self.root)

    def discover(self, paths: Sequence[Path]) -> list[Path]:
        """The spec files of the revision in force, by their stable names."""
        if self.folder is None:
            return []
        return [self.stable / p.relative_to(self.folder) for p in discover_specs([self.folder])]

    # --- what a new revision concerns ------------------------------------------------
    def names(self, spec: Path, files: Iterable[Path]) -> set[str]:
        """The spec file and the files it names, relative to the spec folder as
        :meth:`~reconciler.source.git_source.GitSource.changed_paths` lists them (files
        outside the folder are left out: the content check catches those)."""
        out: set[str] = set()
        with contextlib.suppress(ValueError):
            out.add(spec.absolute().relative_to(self.stable).as_posix())
        for f in files:
            try:
                normal = Path(os.path.normpath(f.absolute()))
                inside = PurePosixPath(normal.relative_to(self.root / "checkouts").as_posix())
                rest = PurePosixPath(*inside.parts[1:])  # without the sha
                out.add(str(rest if self.path == "." else rest.relative_to(self.path)))
            except ValueError:
                continue
        return out
