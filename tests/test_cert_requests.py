"""Which `pki csr` requests a spec asks for (pure): keys on the nodes only, CNs, skips."""

from __future__ import annotations

from typing import Any

from reconciler.spec.cert_requests import cert_requests
from reconciler.spec.model import ClusterSpec


def _spec(certificates: dict[str, Any], nodes: list[dict[str, Any]] | None = None) -> ClusterSpec:
    return ClusterSpec.model_validate(
        {
            "version": 1,
            "cluster": "c",
            "master": "n1",
            "nodes": nodes
            or [
                {"name": "n1", "address": "10.0.0.1"},
                {"name": "n2", "address": "cms2.example.com"},
                {"name": "cb", "address": "10.0.0.9", "role": "client"},
            ],
            "certificates": certificates,
            "ssh": {"known_hosts": "kh", "password_env": "P"},
        }
    )


ON_NODE = {
    "ca": "certs/ca.cer",
    "server": {"cert": "certs/server.cer", "key_on_node": "dbserver.key"},
    "client": {"cert": "certs/client.cer", "key_on_node": "dbclient.key"},
}


def test_every_key_on_a_node_is_requested_with_its_cn() -> None:
    requests, skipped = cert_requests(_spec(ON_NODE))
    got = [(r.node, r.kind, r.command, r.cert) for r in requests]
    assert got == [
        ("n1", "server", "pki csr dbserver CN:10.0.0.1", "certs/server.cer"),
        ("n1", "client", "pki csr dbclient CN:postgres", "certs/client.cer"),
        ("n2", "server", "pki csr dbserver CN:cms2.example.com", "certs/server.cer"),
        ("n2", "client", "pki csr dbclient CN:postgres", "certs/client.cer"),
        ("cb", "client", "pki csr dbclient CN:postgres", "certs/client.cer"),
    ]
    assert skipped == []
    assert requests[0].key_name == "dbserver.key" and requests[0].csr_name == "dbserver.csr"


def test_server_cn_shared_or_per_node() -> None:
    shared = dict(ON_NODE, server_cn="db.example.com")
    requests, _ = cert_requests(_spec(shared))
    assert {r.cn for r in requests if r.kind == "server"} == {"db.example.com"}
    per_node = [
        {
            "name": "n1",
            "address": "10.0.0.1",
            "certificates": dict(ON_NODE, server_cn="cms1.example.com"),
        },
        {"name": "n2", "address": "10.0.0.2"},
    ]
    requests, _ = cert_requests(_spec(ON_NODE, per_node))
    assert [r.cn for r in requests if r.kind == "server"] == ["cms1.example.com", "10.0.0.2"]


def test_local_keys_and_odd_names_are_skipped_with_the_reason() -> None:
    certs = {
        "ca": "certs/ca.cer",
        "server": {"cert": "certs/server.cer", "key": "keys/server.key"},
        "client": {"cert": "certs/client.cer", "key_on_node": "client.pem"},
    }
    requests, skipped = cert_requests(_spec(certs))
    assert requests == []
    whys = {(s.node, s.kind): s.why for s in skipped}
    assert "its key is a local file (keys/server.key)" in whys[("n1", "server")]
    assert "does not end in .key" in whys[("n1", "client")]
