"""What `reconcile import` reads from the nodes, over one run's SSH transport.

:func:`read_cluster` reads the given hosts and then, round by round, every member their
statuses list that is not read yet (:func:`reconciler.plan.adoption.members_to_read`),
each node's `database cluster status` (:func:`reconciler.observe.observer.observe_node`)
and its `hostname`; a node that cannot be read is recorded with the reason, never raised.
:func:`read_files` then downloads the files the draft names (bounded, over SFTP) and,
when the keys stay on the nodes, checks that they are there. Nothing is written here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from reconciler.common.errors import (
    CommandFailedError,
    CommandTimeoutError,
    IncompleteOutputError,
    TransportError,
)
from reconciler.observe.observer import observe_node
from reconciler.observe.snapshot_model import NodeObservation
from reconciler.plan.adoption import Draft, DraftNode, NodeReading, members_to_read
from reconciler.transport.interface import NodeTarget, Transport

MAX_NODES = 64  # more members than any CMS cluster has: the discovery stops, the import refuses


def target(host: str, port: int) -> NodeTarget:
    """The run's target for an SSH endpoint (one session per endpoint)."""
    return NodeTarget(name=f"{host}:{port}", address=host, host=host, port=port)


async def read_node(
    transport: Transport, host: str, port: int, found_through: str | None
) -> NodeReading:
    where = target(host, port)
    try:
        observation = await observe_node(transport, where, with_files=False)
    except (IncompleteOutputError, CommandTimeoutError) as exc:
        observation = NodeObservation(unreadable=exc.detail)  # it answered, unusably
    except TransportError as exc:
        observation = NodeObservation(unreachable=exc.detail)
    hostname: str | None = None
    if observation.reachable:
        try:
            session = await transport.session(where)
            lines = (await session.run("hostname")).stdout.strip().splitlines()
            hostname = lines[0].strip() if len(lines) == 1 else None
        except TransportError:
            hostname = None  # no name from it: the name is made from the address
    return NodeReading(host, port, found_through, observation, hostname)


async def read_cluster(
    transport: Transport, hosts: Sequence[tuple[str, int]]
) -> tuple[list[NodeReading], str | None]:
    """Every given host, then every member found (round by round); and why it stopped early."""
    readings = list(await asyncio.gather(*(read_node(transport, h, p, None) for h, p in hosts)))
    while todo := members_to_read(readings):
        if len(readings) + len(todo) > MAX_NODES:
            return readings, f"the statuses list more than {MAX_NODES} nodes: not a CMS cluster"
        readings += await asyncio.gather(*(read_node(transport, *one) for one in todo))
    return readings, None


async def read_files(
    transport: Transport,
    draft: Draft,
    wanted: Mapping[str, Sequence[str]],
    keys_to_find: Mapping[str, Sequence[str]],
) -> tuple[dict[str, dict[str, bytes]], list[str]]:
    """Node name -> remote name -> bytes of the ``wanted`` files; and the problems."""

    async def one(node: DraftNode) -> tuple[dict[str, bytes], list[str]]:
        who = f"{node.name} ({node.address})"
        got: dict[str, bytes] = {}
        problems: list[str] = []
        try:
            session = await transport.session(target(node.host, node.port))
        except TransportError as exc:
            return got, [f"{who}: cannot be read: {exc.detail}"]
        for name in wanted.get(node.name, ()):
            try:
                got[name] = await session.download(name)
            except CommandFailedError as exc:
                problems.append(f"{who}: cannot read {name}: {exc.output.strip()}")
            except TransportError as exc:
                problems.append(f"{who}: cannot read {name}: {exc.detail}")
        keys = list(keys_to_find.get(node.name, ()))
        if keys:
            try:
                present = await session.file_digests(keys)
            except TransportError as exc:
                return got, [*problems, f"{who}: cannot list its keys: {exc.detail}"]
            problems += [
                f"{who}: its status names the key {key}, which is not in its SFTP root"
                for key, digest in present.items()
                if digest is None
            ]
        return got, problems

    results = await asyncio.gather(*(one(n) for n in draft.nodes))
    files = {n.name: got for n, (got, _) in zip(draft.nodes, results, strict=True)}
    return files, [p for _, problems in results for p in problems]
