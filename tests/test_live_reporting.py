"""Pure parts of the live commands: verdict, status report, stale-plan table, redaction."""

from __future__ import annotations

import argparse
import io
import json

import pytest
import structlog

from reconciler.apply.database_view import DbView, ReplicaStream
from reconciler.cli.apply import _confirm
from reconciler.cli.stale_plan import render_stale
from reconciler.cli.status_report import CertExpiry, build_report, render_json, render_text
from reconciler.common.logging_setup import configure_logging, redact_secrets, register_secret
from reconciler.plan.model import Fact, Plan
from reconciler.plan.planner import plan
from reconciler.plan.simulation import SimNode, World, observe, settle
from reconciler.plan.verdict import Verdict, cluster_verdict
from reconciler.spec.model import ClusterSpec

DB_CERTS = ("server.key", "server.cer", "client.key", "client.cer", "ca.cer")


def _spec() -> ClusterSpec:
    return ClusterSpec.model_validate(
        {
            "version": 1,
            "cluster": "rep",
            "master": "n1",
            "nodes": [{"name": f"n{i}", "address": f"10.9.0.{i}"} for i in (1, 2, 3)],
            "certificates": {
                "ca": "ca.cer",
                "server": {"cert": "server.cer", "key": "server.key"},
                "client": {"cert": "client.cer", "key": "client.key"},
            },
            "ssh": {"known_hosts": "known_hosts"},
        }
    )


def _world(up3: bool = True) -> World:
    nodes = tuple(
        SimNode(
            key=f"n{i}",
            address=f"10.9.0.{i}",
            interface="a",
            certs=DB_CERTS,
            clustered=True,
            up=up3 or i != 3,
        )
        for i in (1, 2, 3)
    )
    return settle(World(nodes=nodes, membership=tuple(n.address for n in nodes), master="10.9.0.1"))


def test_verdicts() -> None:
    spec = _spec()
    healthy = observe(_world())
    assert cluster_verdict(spec, healthy, plan(spec, healthy)).verdict is Verdict.CONVERGED
    down = observe(_world(up3=False))
    degraded = cluster_verdict(spec, down, plan(spec, down))
    assert degraded.verdict is Verdict.DEGRADED
    assert any("n3 unreachable" in r for r in degraded.reasons)
    mismatch = cluster_verdict(spec, healthy, plan(spec, healthy), ["database says otherwise"])
    assert mismatch.verdict is Verdict.DRIFTED and mismatch.reasons == ("database says otherwise",)
    fresh = observe(
        World(nodes=tuple(SimNode(key=f"n{i}", address=f"10.9.0.{i}") for i in (1, 2, 3)))
    )
    assert cluster_verdict(spec, fresh, plan(spec, fresh)).verdict is Verdict.NO_MASTER


def test_status_report_text_and_json() -> None:
    spec = _spec()
    observed = observe(_world())
    verdict = cluster_verdict(spec, observed, plan(spec, observed))
    db = DbView(
        master_address="10.9.0.1",
        reachable=True,
        in_recovery=False,
        replicas=(ReplicaStream("10.9.0.2", "streaming", "async", 0),),
    )
    certs = [CertExpiry("ca.cer", "2030-01-01", 12, True)]
    report = build_report(spec, observed, verdict, certs, db)
    text = render_text(report)
    assert "Verdict: converged" in text
    assert "replica 10.9.0.2: streaming (async), lag 0 bytes" in text
    assert "ca.cer: expires 2030-01-01, 12 days left  <-- renew soon" in text
    assert "n2" in text and "in-sync" in text
    data = json.loads(render_json(report))
    assert data["verdict"] == "converged" and data["master"] == "10.9.0.1"
    assert [n["role"] for n in data["nodes"]] == ["master", "replica", "replica"]
    assert data["database"]["replicas"][0]["lag_bytes"] == 0


def test_stale_table_lists_fact_planned_and_current() -> None:
    table = render_stale(
        [
            (Fact(node="n3", key="reachable", value="yes"), "no"),
            (Fact(node="n1", key="role", value="master"), "replica"),
        ]
    )
    lines = table.splitlines()
    assert lines[0].split() == ["fact", "planned", "current"]
    assert lines[1].split() == ["n3.reachable", "'yes'", "'no'"]
    assert lines[2].split() == ["n1.role", "'master'", "'replica'"]


def test_apply_refuses_without_tty_or_yes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))
    assert not _confirm(Plan(cluster="rep"), argparse.Namespace(yes=False))
    assert "pass --yes" in capsys.readouterr().err
    assert _confirm(Plan(cluster="rep"), argparse.Namespace(yes=True))


def test_secrets_are_redacted_from_log_events() -> None:
    register_secret("hunter2-very-secret")
    event = {
        "event": "login hunter2-very-secret failed",
        "password": "x",
        "nested": ["hunter2-very-secret"],
    }
    out = redact_secrets(None, "info", dict(event))
    assert out == {"event": "login *** failed", "password": "***", "nested": ["***"]}
    stream = io.StringIO()
    configure_logging(verbose=1, json_lines=True, stream=stream)
    structlog.get_logger("t").info("connecting", detail="pw=hunter2-very-secret")
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["detail"] == "pw=***" and "hunter2" not in stream.getvalue()
    configure_logging(verbose=0, json_lines=True, stream=io.StringIO())
