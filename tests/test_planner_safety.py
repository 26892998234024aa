"""One test (or more) per safety rule of the planner (docs/planner.md, "Safety rules")."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from scenario_helpers import (
    CLIENT_CERTS,
    DB_CERTS,
    Case,
    cases,
    local_files,
    run,
    spec_dict,
)

from reconciler.observe.snapshot_model import NodeObservation
from reconciler.observe.status_model import CommandResult
from reconciler.observe.status_parser import parse_status
from reconciler.plan.cluster_view import build_view
from reconciler.plan.facts import changed_facts
from reconciler.plan.model import Action, Plan
from reconciler.plan.planner import plan
from reconciler.plan.simulation import SCHEMA_ERROR, SimNode, World, apply_step, observe, settle
from reconciler.spec.model import ClusterSpec

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CLUSTER_CHANGING = {
    Action.INITIALIZE,
    Action.JOIN,
    Action.CONNECT,
    Action.REMOVE,
    Action.UPGRADE_SCHEMA,
}


def spec_of(n_db: int = 3, master: str = "n1", clients: int = 0, **policy: Any) -> ClusterSpec:
    nodes: list[dict[str, Any]] = [
        {"name": f"n{i}", "address": f"10.0.0.{i}"} for i in range(1, n_db + 1)
    ]
    nodes += [
        {"name": f"c{i}", "address": f"10.0.1.{i}", "role": "client"} for i in range(1, clients + 1)
    ]
    return ClusterSpec.model_validate(spec_dict(nodes, master, policy))


def node(key: str, **kw: Any) -> SimNode:
    if key.startswith("10."):
        address = key
    else:
        address = f"10.0.1.{key[1:]}" if key.startswith("c") else f"10.0.0.{key[1:]}"
    database = not key.startswith("c")
    base = SimNode(
        key=key,
        address=address,
        database=database,
        interface="a",
        certs=DB_CERTS if database else CLIENT_CERTS,
    )
    return replace(base, **kw)


def fresh(key: str, **kw: Any) -> SimNode:
    return node(key, interface=None, certs=(None,) * 5, **kw)


def world(nodes: list[SimNode], members: list[str], master: str | None) -> World:
    by_key = {n.key: n for n in nodes}
    membership = tuple(by_key[k].address for k in members)
    m = by_key[master].address if master else None
    marked = tuple(replace(n, clustered=n.clustered or n.key in members) for n in nodes)
    return settle(World(nodes=marked, membership=membership, master=m))


def healthy(n: int = 3, master: str = "n1") -> World:
    keys = [f"n{i}" for i in range(1, n + 1)]
    return world([node(k) for k in keys], keys, master)


def actions(p: Plan) -> list[Action]:
    return [s.action for s in p.steps]


def reasons(p: Plan) -> str:
    return " | ".join(b.reason for b in p.blocked)


# ----- initialize -----
def test_no_initialize_when_a_node_belongs_to_a_cluster() -> None:
    w = world([node("n1"), fresh("n2"), fresh("n3")], ["n1"], "n1")
    p = plan(spec_of(master="n2"), observe(w))
    assert Action.INITIALIZE not in actions(p)
    assert [s.command for s in p.steps if s.action is Action.JOIN] == [
        "database cluster join 10.0.0.1",
        "database cluster join 10.0.0.1",
    ]


def test_no_initialize_when_only_a_client_sees_a_cluster() -> None:
    # No spec database node is clustered, but the client is connected to some cluster.
    extra = node("10.0.9.1")
    client = node("c1", clustered=True)
    w = world([fresh("n1"), fresh("n2"), fresh("n3"), client, extra], ["10.0.9.1"], "10.0.9.1")
    p = plan(spec_of(clients=1), observe(w))
    assert Action.INITIALIZE not in actions(p)


def test_no_initialize_when_clustered_nodes_have_no_master() -> None:
    w = world([node("n1"), node("n2", up=False), node("n3", up=False)], ["n1", "n2", "n3"], "n1")
    assert w.master is None
    p = plan(spec_of(), observe(w))
    assert p.steps == ()


def test_initialize_needs_a_majority_of_reachable_unclustered_database_nodes() -> None:
    for n_db, down, allowed in [(3, 1, True), (3, 2, False), (5, 2, True), (5, 3, False)]:
        nodes = [fresh(f"n{i}", up=i > down) for i in range(1, n_db + 1)]
        p = plan(spec_of(n_db, master=f"n{n_db}"), observe(world(nodes, [], None)))
        assert (Action.INITIALIZE in actions(p)) is allowed, (n_db, down)
        if not allowed:
            assert "initialize refused" in reasons(p)
            assert not set(actions(p)) & CLUSTER_CHANGING


def test_initialize_waits_for_an_unreachable_intended_master() -> None:
    nodes = [fresh("n1", up=False), fresh("n2"), fresh("n3")]
    p = plan(spec_of(), observe(world(nodes, [], None)))
    assert Action.INITIALIZE not in actions(p)
    assert any(b.node == "n1" for b in p.blocked)


@SETTINGS
@given(cases())
def test_initialize_never_planned_when_anything_is_clustered(case: Case) -> None:
    observed = observe(case.world)
    view = build_view(case.spec, observed)
    p = plan(case.spec, observed, case.local_files)
    if view.any_clustered or view.masters or view.membership:
        assert Action.INITIALIZE not in actions(p)


# ----- lost majority, split brain -----
def test_lost_majority_plans_nothing_and_explains() -> None:
    w = world(
        [node("n1"), node("n2", up=False), node("n3", up=False), fresh("n4"), fresh("n5")],
        ["n1", "n2", "n3"],
        "n1",
    )
    p = plan(spec_of(5), observe(w), local_files())
    assert p.steps == ()
    text = reasons(p)
    assert "more than half" in text and "Never initialize" in text


def test_two_masters_plan_nothing() -> None:
    a = healthy()
    observed_a = observe(a)
    b = world([node("n2"), node("n3")], ["n2", "n3"], "n2")
    observed_b = observe(b)
    # n1 still believes it is master of {n1} while n2 leads n2+n3: merge the two views.
    mixed = observed_a.model_copy(
        update={"nodes": {"n1": observed_a.nodes["n1"], **observed_b.nodes}}
    )
    p = plan(spec_of(), mixed)
    assert p.steps == ()
    assert "split brain" in reasons(p)


# ----- certificates and interface of clustered nodes -----
def test_clustered_replica_changes_only_by_rejoin_rotation() -> None:
    w = healthy()
    w = w.with_node(replace(w.node("n2"), interface="b", certs=("x.key", *DB_CERTS[1:])))
    p = plan(spec_of(), observe(w))
    assert [(s.node, s.action, s.procedure) for s in p.steps] == [
        ("n1", Action.BACKUP, "backup"),  # every member, before the first destructive step
        ("n2", Action.BACKUP, "backup"),
        ("n3", Action.BACKUP, "backup"),
        ("n2", Action.REMOVE, "rejoin"),
        ("n2", Action.LOCALNODE, "rejoin"),
        ("n2", Action.CERTS, "rejoin"),
        ("n2", Action.JOIN, "rejoin"),
    ]


def test_a_rotation_remove_whose_reason_was_dealt_with_is_not_run() -> None:
    # The remove rests on the facts that made it necessary, not only on role and sync:
    # once another apply has rotated n2, the saved step no longer matches and is re-planned.
    w = healthy()
    w = w.with_node(replace(w.node("n2"), certs=("x.key", *DB_CERTS[1:])))
    spec = spec_of()
    remove = next(s for s in plan(spec, observe(w)).steps if s.action is Action.REMOVE)
    assert ("n2", "certs") in {(f.node, f.key) for f in remove.depends_on}
    rotated = healthy()  # the same cluster after the other apply's rotation of n2
    changed = changed_facts(spec, observe(rotated), remove.depends_on)
    assert [(f.node, f.key) for f, _ in changed] == [("n2", "certs")]
    assert plan(spec, observe(rotated)).steps == ()


@SETTINGS
@given(cases())
def test_localnode_and_certs_only_on_nodes_not_clustered(case: Case) -> None:
    w = case.world
    for s in case.plan().steps:
        if s.action in (Action.LOCALNODE, Action.CERTS):
            assert not w.node(s.node).clustered, s
        w = apply_step(w, s)


def test_master_certificate_change_is_blocked_with_explanation() -> None:
    w = healthy()
    w = w.with_node(replace(w.node("n1"), certs=("x.key", *DB_CERTS[1:])))
    p = plan(spec_of(), observe(w))
    assert p.steps == ()
    assert "(TAC 216549)" in reasons(p) and "policy.allow_cluster_rebuild: true" in reasons(p)


def test_master_certificate_change_rebuilds_the_cluster_on_the_master_when_allowed() -> None:
    w = healthy()
    w = w.with_node(replace(w.node("n1"), certs=("x.key", *DB_CERTS[1:])))
    spec = spec_of(allow_cluster_rebuild=True)
    p = plan(spec, observe(w))
    assert [(s.node, s.action) for s in p.steps] == [
        ("n1", Action.BACKUP),
        ("n2", Action.BACKUP),
        ("n3", Action.BACKUP),
        ("n2", Action.REMOVE),  # replicas first
        ("n3", Action.REMOVE),
        ("n1", Action.REMOVE),  # the master last: it keeps the data (A3)
        ("n1", Action.CERTS),
        ("n1", Action.INITIALIZE),
        ("n2", Action.JOIN),
        ("n3", Action.JOIN),
    ]
    assert {s.procedure for s in p.steps} == {"backup", "rebuild"}
    done = run(w, p.steps)
    assert done.master == w.node("n1").address
    assert plan(spec, observe(done)).steps == ()


# ----- nodes that cannot be acted on -----
def test_unreachable_node_is_held_back_and_named() -> None:
    w = world([node("n1"), node("n2"), fresh("n3", up=False)], ["n1", "n2"], "n1")
    p = plan(spec_of(), observe(w))
    assert all(s.node != "n3" for s in p.steps)
    assert any(b.node == "n3" for b in p.blocked)
    assert any("n3 is unreachable" in x for x in p.warnings)


def test_command_in_progress_holds_back_cluster_changes() -> None:
    w = world(
        [node("n1"), fresh("n2", running="database cluster join 10.0.0.1"), fresh("n3")],
        ["n1"],
        "n1",
    )
    p = plan(spec_of(), observe(w))
    assert all(s.node != "n2" for s in p.steps)
    assert not set(actions(p)) & CLUSTER_CHANGING
    assert {Action.LOCALNODE, Action.CERTS} <= set(actions(p))  # preparation of n3 still runs
    assert any(b.node == "n2" and "in progress" in b.reason for b in p.blocked)


# ----- the majority during removes -----
def test_rotation_refused_when_the_remove_would_lose_the_majority() -> None:
    w = world(
        [node("n1"), node("n2", interface="b"), node("n3", up=False)], ["n1", "n2", "n3"], "n1"
    )
    p = plan(spec_of(), observe(w))
    assert Action.REMOVE not in actions(p)
    assert "without a majority" in reasons(p)


@SETTINGS
@given(cases())
def test_every_remove_keeps_the_majority(case: Case) -> None:
    w = case.world
    for s in case.plan().steps:
        after = apply_step(w, s)
        if s.action is Action.REMOVE and w.master is not None and after.membership:
            assert after.has_majority and after.master is not None
        w = after


# ----- master move -----
def test_master_move_requires_target_in_sync() -> None:
    w = healthy(master="n2")
    w = w.with_node(replace(w.node("n1"), in_sync=False))
    p = plan(spec_of(), observe(w))
    assert p.steps == ()
    assert "( In Sync )" in reasons(p)


def test_master_move_requires_policy() -> None:
    p = plan(spec_of(allow_master_move=False), observe(healthy(master="n2")))
    assert p.steps == ()
    assert any("allow_master_move" in x for x in p.warnings)
    assert any("the master is n2" in d for d in p.drift)


def test_master_move_removes_replicas_then_master_then_rejoins() -> None:
    p = plan(spec_of(5, master="n4"), observe(healthy(5, master="n2")))
    removes = [s.node for s in p.steps if s.action is Action.REMOVE]
    assert removes == ["n1", "n3", "n5", "n2"]  # never the target, the master last
    joins = [s.command for s in p.steps if s.action is Action.JOIN]
    assert joins == ["database cluster join 10.0.0.4"] * 4


def test_master_move_blocked_when_a_member_is_unreachable() -> None:
    w = healthy(5, master="n2")
    w = settle(w.with_node(replace(w.node("n5"), up=False)))
    p = plan(spec_of(5, master="n4"), observe(w))
    assert Action.REMOVE not in actions(p)
    assert "every other member" in reasons(p)


# ----- extra members -----
def _with_extras(master: str = "n1") -> World:
    keys = ["n1", "n2", "n3", "10.0.9.1", "10.0.9.2"]
    return world([node(k) for k in keys], keys, master)


def test_extra_members_need_allow_remove() -> None:
    p = plan(spec_of(), observe(_with_extras()))
    assert p.steps == ()
    assert "allow_remove" in reasons(p)
    assert sum("does not list" in d for d in p.drift) == 2


def test_extra_members_removed_replicas_first_by_address() -> None:
    p = plan(spec_of(allow_remove=True), observe(_with_extras()))
    removes = [s for s in p.steps if s.action is not Action.BACKUP]
    assert [(s.node, s.procedure, s.destructive, s.confirm) for s in removes] == [
        ("10.0.9.1", "remove-extra", True, True),
        ("10.0.9.2", "remove-extra", True, True),
    ]


def test_extra_master_never_removed_by_remove_extra() -> None:
    p = plan(spec_of(allow_remove=True, allow_master_move=False), observe(_with_extras("10.0.9.1")))
    removed = [s.node for s in p.steps if s.action is Action.REMOVE]
    assert "10.0.9.1" not in removed
    assert "10.0.9.2" in removed
    assert "master move" in reasons(p)


# ----- size -----
def test_never_more_database_nodes_than_the_policy() -> None:
    w = world([node("n1"), node("n2"), node("n3"), fresh("n4")], ["n1", "n2", "n3"], "n1")
    p = plan(spec_of(4, max_database_nodes=3, allow_unsafe_topology=True), observe(w))
    assert Action.JOIN not in actions(p)
    assert "max_database_nodes=3" in reasons(p)


@SETTINGS
@given(cases())
def test_membership_never_grows_past_the_limit(case: Case) -> None:
    limit = case.spec.policy.max_database_nodes
    w = case.world
    for s in case.plan().steps:
        w = apply_step(w, s)
        if s.action is Action.JOIN:
            assert len(w.membership) <= limit


# ----- errors -----
def test_schema_error_is_repaired_on_that_node() -> None:
    w = healthy()
    w = w.with_node(
        replace(
            w.node("n3"),
            error=SCHEMA_ERROR,
            last_command="database cluster upgrade_schema",
            last_result=CommandResult.FAILED,
        )
    )
    p = plan(spec_of(), observe(w))
    assert [(s.node, s.command) for s in p.steps] == [
        ("n3", "database cluster clear error"),
        ("n3", "database cluster upgrade_schema"),
    ]


def test_other_errors_are_cleared_with_a_warning() -> None:
    w = world(
        [node("n1"), node("n2"), node("n3", error="Couldn't join the cluster")],
        ["n1", "n2"],
        "n1",
    )
    p = plan(spec_of(), observe(w))
    assert [s.command for s in p.steps] == [
        "database cluster clear error",
        "database cluster join 10.0.0.1",
    ]
    assert any("n3 is in error" in x for x in p.warnings)


# ----- connectivity problems -----
def test_replica_not_in_sync_gets_advice_and_no_steps() -> None:
    w = healthy()
    w = w.with_node(replace(w.node("n3"), in_sync=False, interface="b"))
    p = plan(spec_of(), observe(w))
    assert all(s.node != "n3" for s in p.steps)
    assert any("5432" in x and "pcap" in x for x in p.warnings)
    assert any("n3 is not in sync" in d for d in p.drift)


def test_every_difference_is_listed_as_drift() -> None:
    w = world(
        [node("n1"), node("n2", interface="b"), fresh("n3"), node("10.0.9.1")],
        ["n1", "n2", "10.0.9.1"],
        "n1",
    )
    p = plan(spec_of(), observe(w), local_files())
    text = " | ".join(p.drift)
    for needle in (
        "n2: interface is b",
        "n3 is not in the cluster",
        "n3: interface is none",
        "n3: certificates are none",
        "10.0.9.1 is a cluster member the spec does not list",
    ):
        assert needle in text


def test_unreadable_status_is_held_back_and_blocks_initialize() -> None:
    observed = observe(world([fresh("n1"), fresh("n2"), fresh("n3")], [], None))
    garbled = parse_status("Interface : a\nsomething the parser does not know\n")
    nodes = dict(observed.nodes)
    nodes["n2"] = NodeObservation(raw_status="...", status=garbled)
    nodes["n3"] = NodeObservation(unreachable="timeout")
    p = plan(spec_of(), observed.model_copy(update={"nodes": nodes}))
    assert all(s.node not in ("n2", "n3") for s in p.steps)
    assert Action.INITIALIZE not in actions(p)  # 1 of 3 readable: no majority
    assert any(b.node == "n2" for b in p.blocked)
