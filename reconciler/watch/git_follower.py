"""``watch --git``: follow one branch of a repository, :class:`GitFollower`.

It fetches the branch on its own interval (``--git-interval``) and at once when the webhook
asks (:meth:`GitFollower.trigger`; requests during a fetch become one more fetch, not one
each). A new head is

1. checked, with ``--verify-signatures``: only a commit whose SSH signature git verifies
   against the allowed-signers file is acted on; an unsigned or wrongly signed head is
   reported once (sha, author, signature state) and nothing of it is checked out: the last
   verified revision stays in force;
2. checked out completely (:meth:`reconciler.source.git_source.GitSource.checkout`) and
   only then put in force (:class:`~reconciler.watch.git_checkouts.GitCheckouts`), so a
   half-written checkout is never planned from;
3. handed to ``on_revision`` with the files it changed since the revision before
   (:class:`NewRevision`): the supervisor picks up new and removed spec files and wakes
   the clusters whose spec or a file it names changed (:func:`wake_concerned`).

A fetch that fails is logged and tried again on the next interval or webhook; the revision
in force stays. At start the checkout the last run left is put in force again (verified
again with ``--verify-signatures``), so a remote that is down does not stop the watch.
Every git command runs in a worker thread, one at a time, driven from the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from reconciler.source.git_command import GitError
from reconciler.source.git_source import GitSource
from reconciler.source.revision import Revision, SignatureState
from reconciler.watch.git_checkouts import GitCheckouts
from reconciler.watch.loop import ClusterLoop
from reconciler.watch.supervisor import WatchSupervisor

log = structlog.get_logger("reconciler.watch")

FIRST_RETRY = 5.0  # before any revision is in force, a failed fetch is retried this soon


@dataclass(frozen=True)
class NewRevision:
    """A revision just put in force, and what it changed."""

    revision: Revision
    previous: Revision | None
    changed: frozenset[str] | None  # relative to the spec folder; None: everything


class GitFollower:
    """Fetch, verify, check out, hand over: one branch of one remote."""

    def __init__(
        self,
        source: GitSource,
        checkouts: GitCheckouts,
        on_revision: Callable[[NewRevision], object],
        *,
        interval: float,
        allowed_signers: Path | None = None,
    ) -> None:
        self.source = source
        self.checkouts = checkouts
        self.on_revision = on_revision
        self.interval = interval
        self.allowed_signers = allowed_signers
        self.current: Revision | None = None
        self.fetches = 0
        self._wake = asyncio.Event()
        self._why = "interval"
        self._refused: set[str] = set()  # heads reported as not acceptable (once each)

    def trigger(self, why: str = "webhook") -> None:
        """Fetch now (or right after the running fetch). Call in the event loop's thread."""
        self._why = why
        self._wake.set()

    # --- the loop -----------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: fetch now, then every interval or when triggered."""
        if self.current is None:
            await self.resume()
        why = "start"
        while not stop.is_set():
            self._wake.clear()
            await self.sync(why)
            wait = self.interval if self.current is not None else min(self.interval, FIRST_RETRY)
            why = await self._wait(stop, wait)

    async def _wait(self, stop: asyncio.Event, seconds: float) -> str:
        waits = [asyncio.ensure_future(e.wait()) for e in (self._wake, stop)]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when="FIRST_COMPLETED")
        finally:
            for w in waits:
                w.cancel()
        return self._why if self._wake.is_set() else "interval"

    # --- one fetch ------------------------------------------------------------------
    def _kept(self) -> str:
        return self.current.describe() if self.current is not None else "nothing in force yet"

    async def resume(self) -> None:
        """Put the checkout the last run left in force again, when it is still acceptable."""
        sha = self.source.current_sha()
        if sha is None:
            return
        try:
            revision = await asyncio.to_thread(self._inspect, sha)
        except GitError as exc:
            log.warning("git checkout of the last run not used", sha=sha, error=str(exc))
            return
        if not self._acceptable(revision, "the checkout of the last run"):
            return
        await self._put_in_force(revision, None, "resumed")

    async def sync(self, why: str) -> None:
        """Fetch once; put a new acceptable head in force."""
        started = time.monotonic()
        self.fetches += 1
        try:
            head = await asyncio.to_thread(self.source.fetch)
        except GitError as exc:
            log.warning(
                "git fetch failed",
                url=self.source.safe_url,
                error=str(exc),
                retryable=exc.retryable,
                kept=self._kept(),
                why=why,
            )
            return
        if (self.current is not None and head == self.current.sha) or head in self._refused:
            log.debug("git fetch: no new revision", head=head[:7], why=why)
            return
        try:
            revision = await asyncio.to_thread(self._inspect, head)
        except GitError as exc:
            log.error("git revision unreadable", sha=head, error=str(exc), kept=self._kept())
            return
        if not self._acceptable(revision, f"branch {self.source.branch}"):
            self._refused.add(head)
            return
        await self._put_in_force(revision, started, why)

    def _inspect(self, sha: str) -> Revision:
        if self.allowed_signers is None:
            return self.source.revision(sha)
        return self.source.verify(sha, self.allowed_signers)

    def _acceptable(self, revision: Revision, what: str) -> bool:
        if self.allowed_signers is None or revision.signature is SignatureState.VERIFIED:
            return True
        log.error(
            "revision refused: signature not verified",
            revision=revision.describe(),
            sha=revision.sha,
            author=revision.author,
            signature=str(revision.signature),
            problem=revision.signature_problem,
            of=what,
            kept=self._kept(),
        )
        return False

    async def _put_in_force(self, revision: Revision, started: float | None, why: str) -> None:
        previous = self.current
        changed: frozenset[str] | None = None
        if previous is not None:
            with contextlib.suppress(GitError):
                changed = await asyncio.to_thread(
                    self.source.changed_paths, previous.sha, revision.sha
                )
        try:
            folder = await asyncio.to_thread(self.source.checkout, revision.sha)
        except (GitError, OSError) as exc:
            log.error(
                "revision not checked out",
                revision=revision.describe(),
                sha=revision.sha,
                author=revision.author,
                error=str(exc),
                kept=self._kept(),
            )
            if isinstance(exc, GitError) and not exc.retryable:
                self._refused.add(revision.sha)
            return
        self.checkouts.set_in_force(revision, folder)
        self.current = revision
        log.info(
            "revision checked out",
            revision=revision.describe(),
            sha=revision.sha,
            author=revision.author,
            signature=str(revision.signature),
            signer=revision.signer,
            previous=previous.short if previous else None,
            changed=sorted(changed) if changed is not None else "all",
            why=why,
            took_s=round(time.monotonic() - started, 3) if started is not None else None,
        )
        self.on_revision(NewRevision(revision, previous, changed))


def wake_concerned(
    supervisor: WatchSupervisor, checkouts: GitCheckouts, new: NewRevision
) -> list[ClusterLoop]:
    """Follow the spec files of the new revision and wake the clusters it concerns: those
    whose spec file or a file it names is among the changed files, or whose content
    differs (a file outside the spec folder)."""

    def concerned(loop: ClusterLoop) -> bool:
        if new.changed is None:
            return True
        files = loop.current.files if loop.current is not None else ()
        return bool(checkouts.names(loop.path, files) & new.changed)

    return supervisor.on_new_revision(new.revision.short, concerned)
