"""What a change does to a spec, in words (pure): reconciler.plan.spec_changes."""

from __future__ import annotations

from typing import Any

from reconciler.plan.spec_changes import NO_CHANGE, describe_spec_changes
from reconciler.spec.model import ClusterSpec

CERTS = {
    "ca": "ca.pem",
    "server": {"cert": "s.pem", "key": "s.key"},
    "client": {"cert": "c.pem", "key": "c.key"},
}
FILES = {"ca.pem": "1", "s.pem": "2", "s.key": "3", "c.pem": "4", "c.key": "5"}


def spec(**changes: Any) -> ClusterSpec:
    data: dict[str, Any] = {
        "version": 1,
        "cluster": "emea",
        "master": "lon",
        "nodes": [
            {"name": "lon", "address": "10.0.0.1"},
            {"name": "ams", "address": "10.0.0.2"},
            {"name": "fra", "address": "10.0.0.3"},
        ],
        "certificates": CERTS,
        "ssh": {"known_hosts": "known_hosts"},
    }
    data.update(changes)
    return ClusterSpec.model_validate(data)


def test_an_unchanged_spec_says_so() -> None:
    assert describe_spec_changes(spec(), spec(), FILES, FILES) == (NO_CHANGE,)


def test_a_new_spec() -> None:
    assert describe_spec_changes(None, spec(), {}, FILES) == (
        "new spec: cluster emea, 3 node(s) (lon, ams, fra), master lon",
    )


def test_nodes_master_and_interface() -> None:
    nodes = [
        {"name": "lon", "address": "10.0.0.9"},
        {"name": "ams", "address": "10.0.0.2", "role": "client"},
        {"name": "ber", "address": "10.0.0.4"},
    ]
    lines = describe_spec_changes(
        spec(), spec(nodes=nodes, master="ber", interface="b"), FILES, FILES
    )
    assert lines[0] == "node added: ber (10.0.0.4, database)"
    assert set(lines[1:]) == {
        "node removed: fra (10.0.0.3, database)",
        "node lon: address 10.0.0.1 -> 10.0.0.9",
        "node ams: role database -> client",
        "master changed: lon -> ber",
        "clustering interface changed: a -> b",
    }


def test_certificates_a_new_path_new_content_and_a_nodes_own_set() -> None:
    renewed = {**FILES, "c.pem": "changed"}
    moved = {**CERTS, "ca": "ca-2026.pem"}
    lines = describe_spec_changes(
        spec(), spec(certificates=moved), FILES, {**renewed, "ca-2026.pem": "9"}
    )
    assert lines == (
        "certificates: the cluster's CA is now ca-2026.pem (was ca.pem)",
        "certificates: the cluster's client certificate c.pem has new content",
    )
    own = [
        {"name": "lon", "address": "10.0.0.1", "certificates": CERTS},
        {"name": "ams", "address": "10.0.0.2"},
        {"name": "fra", "address": "10.0.0.3"},
    ]
    assert describe_spec_changes(spec(), spec(nodes=own), FILES, FILES) == (
        "certificates: lon now has a certificate set of its own",
    )
    assert describe_spec_changes(spec(nodes=own), spec(), FILES, FILES) == (
        "certificates: lon now uses the cluster's certificates",
    )
    on_node = {**CERTS, "server": {"cert": "s.pem", "key_on_node": "s.key"}}
    assert describe_spec_changes(spec(), spec(certificates=on_node), FILES, FILES) == (
        "certificates: the cluster's server key removed (was s.key)",
        "certificates: the cluster's server key on the node added: s.key",
    )


def test_ssh_policy_and_a_renamed_cluster() -> None:
    window = [{"days": ["sat"], "start": "02:00", "end": "05:00"}]
    new = spec(
        cluster="emea-2",
        ssh={"known_hosts": "known_hosts", "port": 2222},
        policy={"paused": True, "maintenance_windows": window},
    )
    assert describe_spec_changes(spec(), new, FILES, FILES) == (
        "cluster renamed: emea -> emea-2",
        "SSH settings: port 22 -> 2222",
        "policy: paused false -> true, maintenance_windows changed",
    )
