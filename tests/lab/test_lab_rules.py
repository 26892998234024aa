"""Pure rules of the lab: the watcher's election decision (A1/A2), the status layout, and the
planner's simulation agreeing with the lab on A3."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import cmslab
from cmslab.election import MASTER, REPLICA, Position, decide
from cmslab.status_text import (
    DISCONNECTED,
    REPLICA_IN_SYNC,
    Member,
    StatusView,
    cert_columns,
    render,
)

MEMBERS = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


def pos(
    address: str, role: str | None = REPLICA, lsn: int = 100, tl: int = 1, **kw: object
) -> Position:
    return Position(
        address=address,
        clustered=True,
        role=role,
        sysid="42",
        timeline=tl,
        lsn=lsn,
        rejoin=bool(kw.get("rejoin", False)),
    )


def test_replica_follows_a_visible_master() -> None:
    d = decide(pos("10.0.0.2"), [pos("10.0.0.1", MASTER), pos("10.0.0.3")], MEMBERS)
    assert (d.action, d.target) == ("follow", "10.0.0.1")


def test_lowest_address_wins_a_tie() -> None:
    me, other = pos("10.0.0.2"), pos("10.0.0.3")
    assert decide(me, [other], MEMBERS).action == "promote"
    assert decide(other, [me], MEMBERS).action == "none"


def test_most_advanced_position_wins() -> None:
    behind, ahead = pos("10.0.0.2", lsn=100), pos("10.0.0.3", lsn=200)
    assert decide(behind, [ahead], MEMBERS).action == "none"
    assert decide(ahead, [behind], MEMBERS).action == "promote"
    # a newer timeline beats a higher LSN on an older one
    old_tl, new_tl = pos("10.0.0.2", lsn=900, tl=1), pos("10.0.0.3", lsn=100, tl=2)
    assert decide(new_tl, [old_tl], MEMBERS).action == "promote"


def test_no_majority_no_master() -> None:
    assert decide(pos("10.0.0.3"), [], MEMBERS).action == "none"
    d = decide(pos("10.0.0.1", MASTER), [], MEMBERS)
    assert d.action == "step_down"
    assert decide(pos("10.0.0.1", MASTER), [pos("10.0.0.2")], MEMBERS).action == "none"


def test_other_cluster_or_unclustered_peers_do_not_count() -> None:
    stranger = Position("10.0.0.2", True, REPLICA, "other-sysid", 1, 100)
    fresh = Position("10.0.0.3", False, None, "", 0, 0)
    assert decide(pos("10.0.0.1", MASTER), [stranger, fresh], MEMBERS).action == "step_down"


def test_revived_former_master_recopies_and_ranks_last() -> None:
    revived = pos("10.0.0.1", rejoin=True, lsn=999)
    assert decide(revived, [pos("10.0.0.3", MASTER)], MEMBERS).action == "recopy"
    assert decide(revived, [pos("10.0.0.3", lsn=1)], MEMBERS).action == "none"
    assert decide(pos("10.0.0.3", lsn=1), [revived], MEMBERS).action == "promote"


def test_single_member_promotes_itself() -> None:
    assert decide(pos("10.0.0.2"), [], ["10.0.0.2"]).action == "promote"


def test_render_matches_the_documented_layout() -> None:
    view = StatusView(
        status="Error",
        error="Couldn't upgrade the schema",
        members=(
            Member("10.48.54.75", "master"),
            Member("10.48.54.76", REPLICA_IN_SYNC),
            Member("10.48.54.119", DISCONNECTED, me=True),
        ),
        node_in_use="10.48.54.75",
        interface="a",
        certs=cert_columns(["k", "c", "ck", "cc", "ca"]),
        last_command="database cluster upgrade_schema",
        last_result="Failed",
    )
    assert render(view, "primary").splitlines() == [
        "ERROR                    : Couldn't upgrade the schema",
        "Status                   : Error",
        "Nodes:",
        "    10.48.54.75          : Connected Primary",
        "    10.48.54.76          : Connected Replica ( In Sync )",
        "    10.48.54.119 (me)    : Disconnected",
        "Node in use              : 10.48.54.75",
        "",
        "Interface                : a",
        "",
        "Certificates",
        "  Server Key             : k",
        "  Server Certificate     : c",
        "  Client Key             : ck",
        "  Client Certificate     : cc",
        "  CA Certificate         : ca",
        "",
        "Last command             : 'database cluster upgrade_schema' (Failed)",
    ]


def test_client_certs_fill_the_last_three_lines() -> None:
    assert cert_columns(["ck", "cc", "ca"]) == (None, None, "ck", "cc", "ca")
    out = render(StatusView(status="Disabled", certs=cert_columns(["ck", "cc", "ca"])), "master")
    assert "  Server Key             : none" in out
    assert "Last command             : none" in out


def test_cmslab_never_imports_the_reconciler() -> None:
    for path in Path(cmslab.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not [n for n in names if n.split(".")[0] == "reconciler"], path.name


def test_planner_simulation_models_a3_as_the_lab_does() -> None:
    """reconciler.plan.simulation agrees with the lab (A3): a replica's `remove` goes back to
    its pre-join database, the former master keeps the cluster's data and `initialize` on it
    makes that data the new cluster."""
    from reconciler.plan.model import Action, Step
    from reconciler.plan.simulation import SimNode, World, apply_step, settle

    certs = ("s.key", "s.cer", "c.key", "c.cer", "ca.cer")
    nodes = tuple(
        SimNode(key=f"n{i}", address=a, interface="a", certs=certs, clustered=True, wal=10)
        for i, a in enumerate(MEMBERS, 1)
    )
    world = settle(World(nodes=nodes, membership=tuple(MEMBERS), master=MEMBERS[0]))

    def step(node: str, action: Action, command: str) -> Step:
        return Step(id="s01", node=node, action=action, command=command, reason="test")

    remove = "database cluster remove"
    for key in ("n3", "n2"):
        world = apply_step(world, step(key, Action.REMOVE, remove))
        assert world.node(key).wal == 0  # the fresh database it had before join
    world = replace(
        world, nodes=tuple(replace(n, wal=12) if n.key == "n1" else n for n in world.nodes)
    )
    world = apply_step(world, step("n1", Action.REMOVE, remove))
    assert (world.membership, world.node("n1").wal) == ((), 12)  # kept
    world = apply_step(world, step("n1", Action.INITIALIZE, "database cluster initialize"))
    assert (world.master, world.node("n1").wal) == (MEMBERS[0], 12)
    world = apply_step(world, step("n2", Action.JOIN, f"database cluster join {MEMBERS[0]}"))
    assert (world.node("n2").wal, world.node("n2").set_aside) == (12, 0)
    world = apply_step(world, step("n2", Action.REMOVE, remove))
    assert world.node("n2").wal == 0
