"""What a watch loop needs from the outside world: the :class:`ClusterRunner` protocol.

All of a :class:`reconciler.watch.loop.ClusterLoop`'s I/O (spec files, observation,
planning, verdict, apply, certificate files) goes through a runner, so the loop's
decisions are unit-tested with an injected fake; the live one is
:class:`reconciler.watch.runner.LiveClusterRunner`. Also here: the values a runner hands
back, a :class:`SpecVersion` (a valid spec as loaded, with its digest and, from a git
source, the commit it was read from) and an :class:`ApplyOutcome`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from reconciler.observe.snapshot_model import Observed
from reconciler.plan.model import Plan, Step
from reconciler.source.revision import Revision
from reconciler.spec.loader import LoadedSpec

WORKING_TREE_LABEL = "working tree"  # the summary line's revision of a spec file on disk


@dataclass(frozen=True)
class SpecVersion:
    """A valid spec as loaded, with the digest that identifies this version.

    ``digest`` covers the spec file and every file it names (a renewed certificate
    committed without a spec change is a new version too). ``commit`` is the git commit
    it was read from (``watch --git``); None for a file on disk.
    """

    loaded: LoadedSpec
    digest: str
    files: tuple[Path, ...] = ()  # local files the spec names (their directories are watched)
    commit: Revision | None = None

    @property
    def cluster(self) -> str:
        return self.loaded.spec.cluster

    @property
    def revision_label(self) -> str:
        """The revision as the summary line shows it: the short sha, or ``working tree``."""
        return self.commit.short if self.commit is not None else WORKING_TREE_LABEL


def short_digest(digest: str | None) -> str | None:
    """A version's digest as the logs show it (its first 12 hex digits)."""
    return digest[:12] if digest else None


@dataclass(frozen=True)
class ApplyOutcome:
    applied: int  # steps that ran and reached their expected result
    failed: int  # steps that failed (0 or 1: the executor stops at the first failure)
    error: str | None = None  # why the apply stopped early, if it did
    lock_held: bool = False  # another apply holds the cluster lock: nothing was run
    drift: bool = False  # a step's facts changed before it ran: re-plan, not a failure
    stopped: bool = False  # the stop flag was seen between steps


class ClusterRunner(Protocol):
    """The loop's I/O: spec files, observation, planning, verdict, apply."""

    def load(self, path: Path) -> SpecVersion:
        """Load and validate; raises SpecError with every diagnostic."""
        ...

    def fingerprint(self, path: Path, last: SpecVersion | None) -> str:
        """Cheap digest of the spec file and the files ``last`` names (no validation).

        Contract: equals ``last.digest`` while neither changed since ``last`` was loaded."""
        ...

    async def observe(self, version: SpecVersion) -> Observed: ...

    def plan(self, version: SpecVersion, observed: Observed) -> Plan: ...

    def verdict(self, version: SpecVersion, observed: Observed, plan: Plan) -> str:
        """converged / drifted / degraded / no_master."""
        ...

    async def apply(
        self,
        version: SpecVersion,
        observed: Observed,
        plan: Plan,
        steps: tuple[Step, ...],
        stop: asyncio.Event,
    ) -> ApplyOutcome:
        """Run ``steps`` (a prefix of ``plan.steps``) under the cluster lock.

        Checks ``stop`` between steps and returns with ``stopped`` when set."""
        ...

    def certificate_days(self, version: SpecVersion, now: datetime) -> dict[str, float]:
        """Days until each certificate file the spec names expires."""
        ...

    def note_revision(self, version: SpecVersion, how: str) -> None:
        """The cluster is at ``version.commit`` (``how``: applied or converged): say so in
        the state directory for `reconcile status`. Never raises."""
        ...

    async def close(self) -> None:
        """The loop ends: release connections kept between cycles."""
        ...
