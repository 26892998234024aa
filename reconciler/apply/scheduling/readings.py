"""The reading cache: each node's last observation that still stands for a re-read.

:class:`ReadingCache` counts what this run sent to each node (MMP commands, uploads, and
cluster-step commands run-wide) and keeps, per node, the last reading taken after its
last command completed, with the counts at that moment; a reading is a re-read while
the counts have not moved (:meth:`ReadingCache.valid`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from reconciler.apply.live_view import LiveView, files_named
from reconciler.observe.snapshot_model import NodeObservation, Observed
from reconciler.plan.model import Action, Step

# A reading stands in for the re-read of a node other than the step's own (a join's
# master) only this long: in practice it is from the poll round that saw the previous
# step finish, or from that step's outcome check.
OTHER_NODE_READING_SECONDS = 1.0


@dataclass(frozen=True)
class Reading:
    """A node's observation read after this run's last command to it completed: by a
    step's outcome check, by the run's own observation just before the first step, or
    alongside the polls of an asynchronous step the next steps wait for (a look-ahead)."""

    observation: NodeObservation
    sent: int  # the node's MMP-commands-sent count when it was read
    cluster_sent: int  # the run's cluster-step commands-sent count when it was read
    uploads: int  # the node's uploads count when its file checksums were read
    files: frozenset[str]  # the files whose checksums it read
    taken: float  # time.monotonic() when it was read


class ReadingCache:
    def __init__(self) -> None:
        self._sent: dict[str, int] = {}  # node -> MMP commands this run sent it
        self._uploads: dict[str, int] = {}  # node -> uploads this run sent it
        self._cluster_sent = 0  # cluster-step commands this run sent (any node)
        self._readings: dict[str, Reading] = {}

    def count_sent(self, step: Step, *, cluster_step: bool) -> None:
        """Count ``step``'s command or upload, before sending it: a command that fails or
        times out may still have acted."""
        if step.action is Action.UPLOAD:
            self._uploads[step.node] = self._uploads.get(step.node, 0) + 1
        else:
            self._sent[step.node] = self._sent.get(step.node, 0) + 1
        if cluster_step:
            self._cluster_sent += 1

    def counts(self, node: str) -> tuple[int, int, int]:
        return (self._sent.get(node, 0), self._uploads.get(node, 0), self._cluster_sent)

    def seed(self, observed: Observed, steps: list[Step]) -> None:
        """The run's own observation, read just before the first step with nothing sent
        since, is each node's re-read for its first step. It listed the whole SFTP root,
        so it answers for every file the steps name (a missing file is absent)."""
        named = files_named(fact for step in steps for fact in step.depends_on)
        for node, obs in observed.nodes.items():
            if not obs.reachable or obs.status is None:
                continue
            listed = set(obs.files) | named.get(node, set()) if obs.files is not None else set()
            self._readings[node] = Reading(
                observation=obs,
                sent=0,
                cluster_sent=0,
                uploads=0,
                files=frozenset(listed),
                taken=time.monotonic(),
            )

    def keep(self, step: Step, obs: NodeObservation, files: frozenset[str]) -> None:
        """Keep what ``step`` read of its node after the node's last command completed
        (its outcome check; its precondition check when nothing was to re-use), for the
        outcome check of an upload and for the node's next step."""
        if obs.reachable:
            self._readings[step.node] = Reading(
                observation=obs,
                sent=self._sent.get(step.node, 0),
                cluster_sent=self._cluster_sent,
                uploads=self._uploads.get(step.node, 0),
                files=files,
                taken=time.monotonic(),
            )

    def keep_lookahead(
        self, names: list[str], fresh: Observed, counts: dict[str, tuple[int, int, int]]
    ) -> None:
        """Keep the readings of ``names`` a poll round read alongside an asynchronous
        step's own node, those whose counts did not move while they were read."""
        now = time.monotonic()
        for name in names:
            obs = fresh.get(name)
            if not obs.reachable or counts[name] != self.counts(name):
                continue
            sent, uploads, cluster_sent = counts[name]
            self._readings[name] = Reading(
                observation=obs,
                sent=sent,
                cluster_sent=cluster_sent,
                uploads=uploads,
                files=frozenset(),
                taken=now,
            )

    def valid(self, node: str) -> Reading | None:
        """The node's last outcome-check reading while its status is still a re-read: no
        MMP command of this run reached the node, and no cluster step ran, since. (An
        upload changes no status field, only its own file.)"""
        reading = self._readings.get(node)
        if (
            reading is None
            or reading.sent != self._sent.get(node, 0)
            or reading.cluster_sent != self._cluster_sent
        ):
            return None
        return reading

    def recent(self, node: str) -> bool:
        """A reading of ``node`` that still stands for a re-read by another node's step."""
        reading = self.valid(node)
        return (
            reading is not None and time.monotonic() - reading.taken <= OTHER_NODE_READING_SECONDS
        )

    def files_read(self, reading: Reading, node: str) -> frozenset[str]:
        """The files whose checksums in ``reading`` are still a re-read (no upload since)."""
        return reading.files if reading.uploads == self._uploads.get(node, 0) else frozenset()

    async def still_to_read(
        self, view: LiveView, step: Step, names: list[str], wanted: dict[str, frozenset[str]]
    ) -> list[str]:
        """Of ``names``, the nodes a step's first check must read: not its own node when
        :meth:`reuse` takes its reading; for other nodes (a join's target, a fact's node)
        not those with a reading less than OTHER_NODE_READING_SECONDS old, i.e. from the
        poll round or the outcome check that just ended the previous step."""
        if await self.reuse(view, step.node, wanted.get(step.node, frozenset())):
            names.remove(step.node)
        return [n for n in names if n == step.node or wanted.get(n) or not self.recent(n)]

    async def reuse(self, view: LiveView, node: str, files: frozenset[str]) -> bool:
        """Take the node's last outcome-check reading as its re-read (see :meth:`valid`);
        the checksums of files it did not read (or that were uploaded since) are read
        now, just those files. False: read the node again."""
        reading = self.valid(node)
        if reading is None:
            return False
        obs = reading.observation
        missing = files - self.files_read(reading, node)
        if missing:
            counts = (self._sent.get(node, 0), self._uploads.get(node, 0))
            obs = view.with_digests(node, obs, await view.digests(node, missing))
            if not obs.reachable or counts != (
                self._sent.get(node, 0),
                self._uploads.get(node, 0),
            ):
                return False
        view.merge(Observed(nodes={node: obs}))
        return True

    async def read_upload(
        self, view: LiveView, node: str, name: str
    ) -> tuple[NodeObservation, frozenset[str]]:
        """After uploading ``name``: the node's observation with that file's checksum
        read now, and the files whose checksums in it are a re-read."""
        reading = self.valid(node)
        if reading is None:
            fresh = await view.reobserve([node], files={node: frozenset({name})})
            return fresh.get(node), frozenset({name})
        # the upload (this step's, the node's only one since the reading when the
        # counts say so) changed only this file: the others read then still hold
        before = reading.files if reading.uploads == self._uploads.get(node, 0) - 1 else None
        obs = view.with_digests(
            node, reading.observation, await view.digests(node, frozenset({name}))
        )
        if obs.reachable:
            view.merge(Observed(nodes={node: obs}))
        return obs, (before or frozenset()) | {name}
