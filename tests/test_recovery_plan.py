"""The recovery planner (`reconcile recover`): when it plans, what, and when it refuses.

The world is the measured failure of issue 11: a master move from cms-lon-1 to cms-ams-1,
the target killed as the old master ran `remove`. cms-ams-1 came back a replica of a
membership that still lists cms-lon-1 (it sees no master), cms-lon-1 and cms-fra-1 left
by `remove`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from reconciler.observe.snapshot_model import NodeObservation, Observed
from reconciler.observe.status_parser import parse_status
from reconciler.plan.model import Action
from reconciler.plan.planner import plan
from reconciler.plan.recovery import DbPosition, plan_recovery
from reconciler.spec.model import ClusterSpec

LON, AMS, FRA = "10.48.36.61", "10.48.36.118", "10.48.36.182"
AT = datetime(2026, 12, 2, 3, 15, tzinfo=UTC)

SPEC = ClusterSpec.model_validate(
    {
        "version": 1,
        "cluster": "lab-cluster",
        "master": "cms-ams-1",
        "nodes": [
            {"name": "cms-lon-1", "address": LON},
            {"name": "cms-ams-1", "address": AMS},
            {"name": "cms-fra-1", "address": FRA},
        ],
        "certificates": {
            "ca": "certs/ca.cer",
            "server": {"cert": "certs/server.cer", "key": "certs/server.key"},
            "client": {"cert": "certs/client.cer", "key": "certs/client.key"},
        },
        "ssh": {"known_hosts": "known_hosts", "password_env": "CMS_PASSWORD"},
    }
)

CERTS = """
Interface                : a

Certificates
  Server Key             : server.key
  Server Certificate     : server.cer
  Client Key             : client.key
  Client Certificate     : client.cer
  CA Certificate         : ca.cer
"""

LEFT = (
    "Status                   : Disabled\nNodes:\nNode in use              : none\n"
    + CERTS
    + "\nLast command             : 'database cluster remove' (Success)\n"
)

STRANDED = (
    "Status                   : Enabled\n"
    "Nodes:\n"
    f"    {LON}          : Disconnected\n"
    f"    {AMS} (me)    : Connected Slave\n"
    f"Node in use              : {AMS}\n" + CERTS + "\n"
    f"Last command             : 'database cluster join {LON}' (Success)\n"
)


def _obs(text: str) -> NodeObservation:
    return NodeObservation(raw_status=text, status=parse_status(text), files={})


def world(**overrides: NodeObservation) -> Observed:
    nodes = {"cms-lon-1": _obs(LEFT), "cms-ams-1": _obs(STRANDED), "cms-fra-1": _obs(LEFT)}
    nodes.update({k.replace("_", "-"): v for k, v in overrides.items()})
    return Observed(observed_at=AT, nodes=nodes)


POSITIONS = {
    "cms-ams-1": DbPosition("0/3000148"),
    "cms-lon-1": DbPosition(None, "not clustered: its database does not listen"),
    "cms-fra-1": DbPosition(None, "not clustered: its database does not listen"),
}


def test_the_normal_planner_names_the_way_out() -> None:
    p = plan(SPEC, world())
    assert not p.steps
    text = " ".join(b.reason for b in p.blocked)
    assert "reconcile recover" in text and "--initialize-on" in text
    assert "cms-lon-1" in text  # the member that has left


def test_recovery_on_the_former_master_backs_up_disbands_and_rebuilds() -> None:
    r = plan_recovery(SPEC, world(), "cms-lon-1", POSITIONS)
    steps = [(s.node, s.action, s.procedure) for s in r.plan.steps]
    assert steps == [
        ("cms-lon-1", Action.BACKUP, "backup"),
        ("cms-ams-1", Action.BACKUP, "backup"),
        ("cms-ams-1", Action.REMOVE, "recovery"),
        ("cms-lon-1", Action.INITIALIZE, "recovery"),
        ("cms-ams-1", Action.JOIN, "recovery"),
        ("cms-fra-1", Action.JOIN, "recovery"),
    ]
    assert all(s.backup == "lab-cluster-20261202T031500Z" for s in r.plan.steps[:2])
    assert {s.command for s in r.plan.steps if s.action is Action.JOIN} == {
        f"database cluster join {LON}"
    }
    warnings = " ".join(r.plan.warnings)
    assert "cms-lon-1's position cannot be read" in warnings
    assert "the most advanced readable is cms-ams-1 at 0/3000148" in warnings
    rows = {e.node: e for e in r.evidence}
    assert rows["cms-ams-1"].role == "replica" and rows["cms-ams-1"].position.lsn == "0/3000148"
    assert rows["cms-lon-1"].role == "not clustered"


def test_recovery_refuses_a_clustered_replica() -> None:
    r = plan_recovery(SPEC, world(), "cms-ams-1", POSITIONS)
    assert r.refused
    reason = r.plan.blocked[0].reason
    assert (
        "clustered replica" in reason and "back to the database it had before it joined" in reason
    )


def test_recovery_refuses_when_there_is_a_master() -> None:
    healthy = (
        "Status                   : Enabled\nNodes:\n"
        f"    {LON} (me)     : Connected Master\n"
        f"    {AMS}         : Connected Slave ( In Sync )\n"
        f"Node in use              : {LON}\n" + CERTS + "\n"
        "Last command             : 'database cluster initialize' (Success)\n"
    )
    replica = (
        "Status                   : Enabled\nNodes:\n"
        f"    {LON}          : Connected Master\n"
        f"    {AMS} (me)    : Connected Slave ( In Sync )\n"
        f"Node in use              : {LON}\n" + CERTS + "\n"
        f"Last command             : 'database cluster join {LON}' (Success)\n"
    )
    r = plan_recovery(
        SPEC, world(cms_lon_1=_obs(healthy), cms_ams_1=_obs(replica)), "cms-fra-1", {}
    )
    assert r.refused and "there is nothing to recover" in r.plan.blocked[0].reason


def test_recovery_refuses_an_unreachable_node_and_names_lost_ones() -> None:
    gone = NodeObservation(unreachable="connection refused")
    r = plan_recovery(SPEC, world(cms_lon_1=gone), "cms-lon-1", POSITIONS)
    assert r.refused and "cannot be reached" in r.plan.blocked[0].reason
    r = plan_recovery(SPEC, world(cms_fra_1=gone), "cms-lon-1", POSITIONS)
    assert not r.refused
    assert "cms-fra-1" not in {s.node for s in r.plan.steps}
    assert any("left out, they cannot be reached: cms-fra-1" in w for w in r.plan.warnings)


def test_recovery_refuses_a_view_with_a_gap() -> None:
    cut = STRANDED.split("Interface")[0]  # the capture stops after `Node in use`
    r = plan_recovery(SPEC, world(cms_ams_1=_obs(cut)), "cms-lon-1", POSITIONS)
    assert r.refused and "cannot be read whole" in r.plan.blocked[0].reason


def test_a_node_behind_another_is_warned_about() -> None:
    positions = {"cms-ams-1": DbPosition("0/3000148"), "cms-lon-1": DbPosition("0/3000060")}
    r = plan_recovery(SPEC, world(), "cms-lon-1", positions)
    assert any("cms-lon-1 is not the most advanced" in w for w in r.plan.warnings)
    assert DbPosition("1/0").value == 1 << 32 and DbPosition("junk").value is None
