"""Which step waits for which: the pure dependency rules of the schedule.

Steps are *cluster steps* (they change membership, master or schema) or *preparation*;
:func:`step_predecessors` says which earlier steps each one waits for,
:func:`deferred_preparation` which preparation gives way to the critical path.
"""

from __future__ import annotations

from reconciler.observe.snapshot_model import Observed
from reconciler.plan.cluster_view import build_view
from reconciler.plan.model import Action, Step
from reconciler.spec.model import ClusterSpec

PREP_ACTIONS = frozenset({Action.UPLOAD, Action.LOCALNODE, Action.CERTS})
CLUSTER_ACTIONS = frozenset(
    {Action.INITIALIZE, Action.JOIN, Action.CONNECT, Action.REMOVE, Action.UPGRADE_SCHEMA}
)


def is_cluster_step(step: Step, clustered: frozenset[str]) -> bool:
    """A step that changes the cluster (membership, master, schema); `clear error` on a
    node that is not clustered is preparation."""
    if step.action is Action.CLEAR_ERROR:
        return step.node in clustered
    return step.action in CLUSTER_ACTIONS


def clustered_nodes(spec: ClusterSpec, observed: Observed, steps: list[Step]) -> frozenset[str]:
    """The step nodes that are clustered (or not shown to be unclustered) when the run starts."""
    view = build_view(spec, observed)
    out = set()
    for step in steps:
        nv = view.node(step.node) or view.by_address(step.node)
        if nv is None or not nv.reachable or not nv.unclustered:
            out.add(step.node)
    return frozenset(out)


def join_targets(spec: ClusterSpec, observed: Observed, steps: list[Step]) -> dict[str, str]:
    """Step id -> the node a join/connect names (its master), when it is known."""
    view = build_view(spec, observed)
    out: dict[str, str] = {}
    for step in steps:
        if step.action in (Action.JOIN, Action.CONNECT) and step.command:
            address = step.command.split()[-1]
            nv = view.by_address(address)
            out[step.id] = nv.key if nv is not None else address
    return out


def step_predecessors(
    steps: list[Step],
    *,
    clustered: frozenset[str],
    targets: dict[str, str],
    join_concurrency: int = 1,
) -> list[frozenset[int]]:
    """For each step (by index), the earlier steps that must be done before it starts.

    Pure. Step ``i`` waits for an earlier step ``j`` when

    * both run on the same node (plan order per node);
    * ``j`` is a cluster step (initialize, join, connect, remove, upgrade_schema, `clear
      error` on a clustered node): nothing passes a cluster change — except that joins
      following one another among the cluster steps do not wait for each other when
      ``join_concurrency`` > 1 (the schedule's semaphore limits them);
    * ``i`` is a cluster step and ``j`` runs on a node that is clustered (or unobservable)
      at the start — its files and settings are in use by the cluster — or on the node
      ``i`` joins/connects to;
    * ``i`` is a cluster step and ``j``'s facts name ``i``'s node or target (``j`` must
      check them before ``i`` may change them);
    * ``i`` is preparation and its facts name ``j``'s node.

    A cluster step does not wait for the preparation of the other nodes its facts name
    (`initialize` names every node's `state` and `master`): the planner leaves out of
    ``depends_on`` every fact an earlier step changes, so that preparation cannot change
    them, and the step re-checks them right before it runs anyway.

    Everything else — preparation of nodes not clustered — overlaps: the master's
    `initialize` runs while the other nodes upload (see :func:`deferred_preparation`),
    and a join starts as soon as the cluster steps before it and its own node's
    preparation are done.
    """
    out: list[frozenset[int]] = []
    cluster = [is_cluster_step(s, clustered) for s in steps]
    for i, step in enumerate(steps):
        involved = {step.node}
        target = targets.get(step.id)
        if target is not None:
            involved.add(target)
        named = {f.node for f in step.depends_on}
        joins_run = step.action is Action.JOIN and join_concurrency > 1
        preds: set[int] = set()
        for j in range(i - 1, -1, -1):
            other = steps[j]
            if cluster[j] and joins_run:
                if other.action is Action.JOIN:
                    continue  # an earlier join of the same run of joins
                joins_run = False
            if (
                other.node == step.node
                or cluster[j]
                or (other.node in named and not cluster[i])
                or (
                    cluster[i]
                    and (
                        other.node in clustered
                        or other.node in involved
                        or any(f.node in involved for f in other.depends_on)
                    )
                )
            ):
                preds.add(j)
        out.append(frozenset(preds))
    return out


def deferred_preparation(
    steps: list[Step], preds: list[frozenset[int]], clustered: frozenset[str]
) -> dict[int, int]:
    """Preparation that gives way to the critical path: step index -> the index of the
    cluster step whose *start* it waits for.

    Pure. A preparation step that neither the next cluster step after it nor the one
    after that needs (not even through other steps) starts only once the next cluster
    step has started. On fresh nodes the master's and the first joining node's
    preparation run at once, and `initialize` starts without the other nodes'
    preparation competing for the same process and cores; those prepare while
    `initialize` and the first join run, long before their own joins. (Deferring the
    first joining node too would put its preparation on the critical path whenever it
    takes longer than `initialize`, as it does at a 200 ms MMP latency.) No cycle is
    possible: the cluster step does not wait for the step deferred to it (by
    construction), and every other wait points to an earlier step or an
    earlier-starting cluster step.
    """
    ancestors: list[set[int]] = []
    for i in range(len(steps)):
        found: set[int] = set(preds[i])
        for j in preds[i]:
            found |= ancestors[j]
        ancestors.append(found)
    cluster = [is_cluster_step(s, clustered) for s in steps]
    out: dict[int, int] = {}
    for i in range(len(steps)):
        if cluster[i]:
            continue
        later = [c for c in range(i + 1, len(steps)) if cluster[c]][:2]
        if later and not any(i in ancestors[c] for c in later):
            out[i] = later[0]
    return out
