"""Reloading one watched spec file every cycle: :class:`SpecReloader`.

It holds the last valid :class:`~reconciler.watch.runner_interface.SpecVersion`, the
one the loop enforces. An invalid spec (or one naming a cluster that another file
already names) is reported with every diagnostic, once per content, and the last
valid version stays in force: nothing is ever planned or applied from an invalid
spec. Read from a git source, the report names the commit and its author. It also
answers whether the spec file or a file it names changed since the last reload read
them. Which file the loop's path means each cycle is the
:class:`~reconciler.watch.spec_source.SpecSource`'s to say (resolved once per reload).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog

from reconciler.common.diagnostics import Diagnostic
from reconciler.common.errors import SpecError
from reconciler.watch.runner_interface import (
    WORKING_TREE_LABEL,
    ClusterRunner,
    SpecVersion,
    short_digest,
)
from reconciler.watch.spec_source import Located, SpecSource, WorkingTree

log = structlog.get_logger("reconciler.watch")


class SpecReloader:
    """The spec file of one loop and the last valid version loaded from it."""

    def __init__(
        self,
        path: Path,
        runner: ClusterRunner,
        *,
        claim: Callable[[str, Path], Path | None] | None = None,
        source: SpecSource | None = None,
    ) -> None:
        self.path = path
        self.runner = runner
        self.source: SpecSource = source if source is not None else WorkingTree()
        self._claim = claim  # (cluster, file) -> the other file already watching it, or None
        self.current: SpecVersion | None = None  # the last valid version: the one enforced
        self.attempted = Located(path)  # what the last reload read (valid or not)
        self._fingerprint: str | None = None
        self._reported_invalid: str | None = None  # fingerprint whose diagnostics were logged

    @property
    def name(self) -> str:
        """The cluster's name once a valid spec was loaded, else the file's stem."""
        return self.current.cluster if self.current else self.path.stem

    @property
    def revision_label(self) -> str:
        """The summary line's revision: of the version in force, else of what was read."""
        if self.current is not None:
            return self.current.revision_label
        commit = self.attempted.commit
        return commit.short if commit is not None else WORKING_TREE_LABEL

    def _locate(self) -> Located:
        try:
            return self.source.locate(self.path)
        except OSError:
            return Located(self.path)  # reading it fails as for a missing file

    def files_changed(self) -> bool:
        """Has the spec file or a file it names changed since the last reload read them?"""
        try:
            return self.runner.fingerprint(self._locate().path, self.current) != self._fingerprint
        except OSError:
            return True

    def reload(self) -> bool:
        """Load the spec file; keep the last valid version when it is invalid.

        Returns whether the file is valid now (``current`` is then what it holds)."""
        located = self.attempted = self._locate()
        try:
            self._fingerprint = self.runner.fingerprint(located.path, self.current)
        except OSError:
            self._fingerprint = None
        try:
            version = self.runner.load(located.path)
        except SpecError as exc:
            if self._reported_invalid != self._fingerprint or self._fingerprint is None:
                self._reported_invalid = self._fingerprint
                self.log_diagnostics("spec invalid", exc)
            return False
        if located.commit is not None:
            version = replace(version, commit=located.commit)
        if self._claim is not None:
            owner = self._claim(version.cluster, self.path)
            if owner is not None:
                if self._reported_invalid != self._fingerprint:
                    self._reported_invalid = self._fingerprint
                    log.error(
                        "spec invalid: cluster already watched from another file",
                        cluster=version.cluster,
                        file=str(self.path),
                        other=str(owner),
                        kept="last valid spec stays in force"
                        if self.current
                        else "nothing enforced",
                        **self._commit_fields(),
                    )
                return False
        self._reported_invalid = None
        # What was loaded is what the next change check compares against.
        self._fingerprint = version.digest
        new = self.current is None or self.current.digest != version.digest
        for warning in version.loaded.warnings:
            if new:
                log.warning("spec warning", cluster=version.cluster, diagnostic=warning.render())
        if new:
            log.info(
                "spec loaded",
                cluster=version.cluster,
                file=str(self.path),
                digest=short_digest(version.digest),
                previous=short_digest(self.current.digest if self.current else None),
                revision=version.commit.describe() if version.commit else WORKING_TREE_LABEL,
            )
        self.current = version
        return True

    def _commit_fields(self) -> dict[str, Any]:
        """The commit and author of what the last reload read (a git source only)."""
        commit = self.attempted.commit
        if commit is None:
            return {}
        return {"revision": commit.describe(), "sha": commit.sha, "author": commit.author}

    def log_diagnostics(self, event: str, exc: SpecError) -> None:
        """Log ``event`` and then every diagnostic of ``exc``, saying what stays in force."""
        if self.current is None:
            kept = "nothing enforced yet"
        elif self.current.commit is not None:
            kept = f"last valid spec stays in force ({self.current.commit.describe()})"
        else:
            kept = "last valid spec stays in force"
        diagnostics: Sequence[object] = exc.diagnostics or (str(exc),)
        log.error(
            event,
            cluster=self.name,
            file=str(self.path),
            errors=len(diagnostics),
            kept=kept,
            **self._commit_fields(),
        )
        for d in diagnostics:
            text = d.render() if isinstance(d, Diagnostic) else str(d)
            log.error("diagnostic", cluster=self.name, diagnostic=text)
