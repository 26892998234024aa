"""Observe a cluster: `database cluster status` (and the SFTP root) on every node, concurrently.

Each node gets its run's single session from the transport; a node that cannot
be observed is recorded as unreachable with the reason (never raised), so the
planner can hold it back and proceed with the rest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from reconciler.common.addresses import normalize_address
from reconciler.common.errors import (
    CommandTimeoutError,
    IncompleteOutputError,
    TransportError,
    UnreachableError,
)
from reconciler.observe.snapshot_model import NodeObservation, Observed
from reconciler.observe.status_parser import parse_status
from reconciler.spec.loader import LoadedSpec
from reconciler.spec.model import ClusterSpec
from reconciler.transport.interface import (
    STATUS_COMMAND,
    NodeTarget,
    Transport,
    node_targets,
    target_for,
)

log = structlog.get_logger(__name__)
# A `database cluster status` text is a few hundred bytes; anything over this is no status
# (a real one of 10 MB took 23 s and 656 MB to parse): the observation fails instead.
STATUS_LIMIT = 64 * 1024


@dataclass(frozen=True)
class ObservationRun:
    """An observation plus the typed error of each node that could not be observed."""

    observed: Observed
    errors: dict[str, TransportError] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def permanent_errors(self) -> dict[str, TransportError]:
        """Authentication and host-key failures: a human must act, retrying will not help."""
        return {n: e for n, e in self.errors.items() if not e.retryable}


async def observe_node(
    transport: Transport, target: NodeTarget, *, with_files: bool
) -> NodeObservation:
    """One node's observation; raises TransportError (callers record it)."""
    for attempt in (1, 2):
        try:
            session = await transport.session(target)
            if with_files:  # the status command and the SFTP listing share the connection
                output, files = await asyncio.gather(
                    session.run(STATUS_COMMAND), session.list_files()
                )
            else:
                output, files = await session.run(STATUS_COMMAND), None
        except (UnreachableError, IncompleteOutputError):
            # A connection lost mid-run (or a command cut short) is reopened once; a refused
            # connect is not retried.
            transport.forget(target)
            if attempt == 2:
                raise
            continue
        if len(output.stdout) > STATUS_LIMIT:
            raise IncompleteOutputError(
                target.name,
                f"the status output is {len(output.stdout)} characters, over the "
                f"{STATUS_LIMIT // 1024} KiB limit: it is not read",
            )
        return NodeObservation(
            raw_status=output.stdout, status=parse_status(output.stdout), files=files
        )
    raise AssertionError("unreachable")  # pragma: no cover


async def observe_nodes(
    spec: ClusterSpec,
    transport: Transport,
    names: Iterable[str] | None = None,
    *,
    with_files: bool,
    log_failures: bool = True,
) -> ObservationRun:
    """Observe ``names`` (spec node names or extra member addresses) concurrently.

    Without ``names``: every spec node, then every cluster member the spec does not
    list (keyed by its address), so the planner can remove it. A node that could not be
    observed is logged as a warning, unless the caller reports ``errors`` itself
    (``log_failures=False``: the commands print one line per node).
    """
    warn = log.warning if log_failures else log.debug
    full = names is None
    wanted = [target_for(spec, n) for n in (names if names is not None else node_targets(spec))]
    started = time.monotonic()

    async def one(target: NodeTarget) -> tuple[str, NodeObservation, TransportError | None]:
        try:
            return target.name, await observe_node(transport, target, with_files=with_files), None
        except (IncompleteOutputError, CommandTimeoutError) as exc:
            # It answered (the connection was made) but gave no usable status.
            warn("status not readable", node=target.name, reason=exc.detail)
            return target.name, NodeObservation(unreadable=exc.detail), exc
        except TransportError as exc:
            warn("node not observed", node=target.name, reason=exc.detail)
            return target.name, NodeObservation(unreachable=exc.detail), exc

    results = list(await asyncio.gather(*(one(t) for t in wanted)))
    if full:
        partial = Observed(nodes={name: obs for name, obs, _ in results})
        extras = [target_for(spec, a) for a in extra_members(spec, partial)]
        results += await asyncio.gather(*(one(t) for t in extras))
    observed = Observed(
        observed_at=datetime.now(UTC).replace(microsecond=0),
        nodes={name: obs for name, obs, _ in results},
    )
    errors = {name: err for name, _, err in results if err is not None}
    seconds = time.monotonic() - started
    log.debug("observed", nodes=len(wanted), unreachable=len(errors), seconds=round(seconds, 3))
    return ObservationRun(observed=observed, errors=errors, seconds=seconds)


async def observe_cluster(
    loaded: LoadedSpec, transport: Transport, *, with_files: bool
) -> Observed:
    """Every spec node, concurrently; unreachable nodes are recorded, not raised."""
    run = await observe_nodes(loaded.spec, transport, with_files=with_files)
    return run.observed


def extra_members(spec: ClusterSpec, observed: Observed) -> list[str]:
    """Member addresses some node reports that are no spec node (in first-seen order)."""
    known = {normalize_address(n.address) for n in spec.nodes}
    found: list[str] = []
    for obs in observed.nodes.values():
        if obs.status is None:
            continue
        for member in obs.status.members:
            key = normalize_address(member.address)
            if key not in known:
                known.add(key)
                found.append(member.address)
    return found


def merge_observations(base: Observed, fresh: Observed) -> Observed:
    """``base`` with the nodes of ``fresh`` replaced (used to re-observe a step's nodes)."""
    nodes = dict(base.nodes)
    nodes.update(fresh.nodes)
    return Observed(observed_at=fresh.observed_at or base.observed_at, nodes=nodes)
