"""The run's current view of the cluster, and re-reading nodes into it.

:class:`LiveView` holds the observation the run started from, merged with every re-read
since: a node's status and, concurrently, the checksums of just the files a step names
(never the whole SFTP root). It also says which nodes a step's check re-reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from reconciler.common.errors import TransportError
from reconciler.observe.observer import merge_observations, observe_nodes
from reconciler.observe.snapshot_model import NodeObservation, Observed
from reconciler.plan.cluster_view import build_view
from reconciler.plan.facts import FILE_PREFIX
from reconciler.plan.model import Action, Fact, Step
from reconciler.spec.model import ClusterSpec
from reconciler.transport.interface import Transport, target_for


def files_named(facts: Iterable[Fact]) -> dict[str, frozenset[str]]:
    """Node -> the files whose `file:<name>` facts appear in ``facts``."""
    named: dict[str, set[str]] = {}
    for fact in facts:
        if fact.key.startswith(FILE_PREFIX):
            named.setdefault(fact.node, set()).add(fact.key[len(FILE_PREFIX) :])
    return {node: frozenset(names) for node, names in named.items()}


class LiveView:
    def __init__(self, spec: ClusterSpec, transport: Transport, observed: Observed) -> None:
        self.spec = spec
        self.transport = transport
        self.observed = observed

    def nodes_to_reread(self, step: Step) -> list[str]:
        """The nodes to re-observe before ``step``: its node, the nodes its facts name, a
        join's/connect's target and — only when a fact is a `sync` (defined by the master's
        own status) — the current master."""
        names: list[str] = [step.node]
        for fact in step.depends_on:
            if fact.node not in names:
                names.append(fact.node)
        joins = step.action in (Action.JOIN, Action.CONNECT) and bool(step.command)
        if not joins and not any(f.key == "sync" for f in step.depends_on):
            return names
        view = build_view(self.spec, self.observed)
        master = view.master_node
        if master is not None and master.key not in names:
            names.append(master.key)
        if joins and step.command:
            target = view.by_address(step.command.split()[-1])
            if target is not None and target.key not in names:
                names.append(target.key)
        return names

    async def reobserve(
        self, names: list[str], *, files: dict[str, frozenset[str]] | None = None
    ) -> Observed:
        """Re-read the status of ``names`` and, concurrently, the checksums of the files
        ``files`` names per node (only those files, not the whole SFTP root). Returns
        what was read; ``self.observed`` is updated with it."""
        wanted = {n: f for n, f in (files or {}).items() if f and n in names}
        run, digests = await asyncio.gather(
            observe_nodes(self.spec, self.transport, names, with_files=False),
            asyncio.gather(*(self.digests(n, f) for n, f in wanted.items())),
        )
        nodes = dict(run.observed.nodes)
        for name, got in zip(wanted, digests, strict=True):
            obs = nodes.get(name)
            if obs is not None and obs.reachable:
                nodes[name] = self.with_digests(name, obs, got)
        fresh = Observed(observed_at=run.observed.observed_at, nodes=nodes)
        self.merge(fresh)
        return fresh

    def merge(self, fresh: Observed) -> None:
        self.observed = merge_observations(self.observed, fresh)

    def with_digests(
        self, name: str, obs: NodeObservation, got: dict[str, str | None] | TransportError
    ) -> NodeObservation:
        """``obs`` with the checksums just read (after an SFTP error: the node unreachable,
        as a failed listing made it)."""
        if isinstance(got, TransportError):
            return NodeObservation(unreachable=got.detail)
        known = dict(obs.files if obs.files is not None else self.observed.get(name).files or {})
        for file, digest in got.items():
            if digest is None:
                known.pop(file, None)
            else:
                known[file] = digest
        return obs.model_copy(update={"files": known})

    async def digests(
        self, name: str, files: frozenset[str]
    ) -> dict[str, str | None] | TransportError:
        try:
            session = await self.transport.session(target_for(self.spec, name))
            return await session.file_digests(sorted(files))
        except TransportError as exc:
            return exc
