"""Reloading one watched spec file every cycle: :class:`SpecReloader`.

It holds the last valid :class:`~reconciler.watch.runner_interface.Revision`, the
one the loop enforces. An invalid spec (or one naming a cluster that another file
already names) is reported with every diagnostic, once per content, and the last
valid revision stays in force: nothing is ever planned or applied from an invalid
spec. It also answers whether the spec file or a file it names changed since the
last reload read them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from reconciler.common.diagnostics import Diagnostic
from reconciler.common.errors import SpecError
from reconciler.watch.runner_interface import ClusterRunner, Revision, short_digest

log = structlog.get_logger("reconciler.watch")


class SpecReloader:
    """The spec file of one loop and the last valid revision loaded from it."""

    def __init__(
        self,
        path: Path,
        runner: ClusterRunner,
        *,
        claim: Callable[[str, Path], Path | None] | None = None,
    ) -> None:
        self.path = path
        self.runner = runner
        self._claim = claim  # (cluster, file) -> the other file already watching it, or None
        self.current: Revision | None = None  # the last valid revision: the one enforced
        self._fingerprint: str | None = None
        self._reported_invalid: str | None = None  # fingerprint whose diagnostics were logged

    @property
    def name(self) -> str:
        """The cluster's name once a valid spec was loaded, else the file's stem."""
        return self.current.cluster if self.current else self.path.stem

    def files_changed(self) -> bool:
        """Has the spec file or a file it names changed since the last reload read them?"""
        try:
            return self.runner.fingerprint(self.path, self.current) != self._fingerprint
        except OSError:
            return True

    def reload(self) -> bool:
        """Load the spec file; keep the last valid revision when it is invalid.

        Returns whether the file is valid now (``current`` is then what it holds)."""
        try:
            self._fingerprint = self.runner.fingerprint(self.path, self.current)
        except OSError:
            self._fingerprint = None
        try:
            revision = self.runner.load(self.path)
        except SpecError as exc:
            if self._reported_invalid != self._fingerprint or self._fingerprint is None:
                self._reported_invalid = self._fingerprint
                self.log_diagnostics("spec invalid", exc)
            return False
        if self._claim is not None:
            owner = self._claim(revision.cluster, self.path)
            if owner is not None:
                if self._reported_invalid != self._fingerprint:
                    self._reported_invalid = self._fingerprint
                    log.error(
                        "spec invalid: cluster already watched from another file",
                        cluster=revision.cluster,
                        file=str(self.path),
                        other=str(owner),
                        kept="last valid spec stays in force"
                        if self.current
                        else "nothing enforced",
                    )
                return False
        self._reported_invalid = None
        # What was loaded is what the next change check compares against.
        self._fingerprint = revision.digest
        for warning in revision.loaded.warnings:
            if self.current is None or self.current.digest != revision.digest:
                log.warning("spec warning", cluster=revision.cluster, diagnostic=warning.render())
        if self.current is None or self.current.digest != revision.digest:
            log.info(
                "spec loaded",
                cluster=revision.cluster,
                file=str(self.path),
                revision=short_digest(revision.digest),
                previous=short_digest(self.current.digest if self.current else None),
            )
        self.current = revision
        return True

    def log_diagnostics(self, event: str, exc: SpecError) -> None:
        """Log ``event`` and then every diagnostic of ``exc``, saying what stays in force."""
        kept = "last valid spec stays in force" if self.current else "nothing enforced yet"
        diagnostics: Sequence[object] = exc.diagnostics or (str(exc),)
        log.error(event, cluster=self.name, file=str(self.path), errors=len(diagnostics), kept=kept)
        for d in diagnostics:
            text = d.render() if isinstance(d, Diagnostic) else str(d)
            log.error("diagnostic", cluster=self.name, diagnostic=text)
