"""`reconcile import`'s pure part: status texts -> a draft -> certificate layout -> spec text.

From status texts in the documented layout (docs/status-format.md, the facts' samples and
tests/fixtures/status): what is adopted (names, roles, master, interface, certificate
names), what refuses the import (one line per problem, naming the node), where the files
go (one cluster-wide block, per-node blocks, name clashes, keys left on the node), and the
rendered spec: its comments, and that the real loader accepts it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from certgen import NOW, make_pki, write_file
from ruamel.yaml import YAML

from reconciler.observe.snapshot_model import NodeObservation
from reconciler.observe.status_parser import parse_status
from reconciler.plan.adoption import Draft, NodeReading, adopt, members_to_read
from reconciler.plan.adoption_files import (
    CertLayout,
    files_to_read,
    keys_to_find,
    layout_certificates,
)
from reconciler.plan.adoption_names import derived_name
from reconciler.plan.adoption_render import ImportHeader, SshBlock, render_spec, scalar
from reconciler.spec.loader import load_spec
from reconciler.spec.model import NodeRole

FIXTURES = Path(__file__).parent / "fixtures" / "status"
A = ("10.48.36.61", "10.48.36.118", "10.48.36.182")
CERT_LINES = {
    "Server Key": "dbclusterserver.key",
    "Server Certificate": "dbclusterserver.cer",
    "Client Key": "dbclusterclient.key",
    "Client Certificate": "dbclusterclient.cer",
    "CA Certificate": "vngtpRootca.cer",
}


def status(
    me: int | None,
    *,
    master: int | None = 0,
    addresses: tuple[str, ...] = A,
    drop: tuple[str, ...] = (),
    interface: str = "a",
    certs: dict[str, str] | None = None,
    last: str | None = None,
    states: dict[int, str] | None = None,
) -> str:
    """One node's `database cluster status` as the seed prints it (``me`` None: a client)."""
    lines = ["Status                : Enabled", "Nodes:"]
    for i, address in enumerate(addresses):
        state = "Connected Master" if i == master else "Connected Slave ( In Sync )"
        state = (states or {}).get(i, state)
        lines.append(f"  {address + (' (me)' if i == me else ''):<20} : {state}")
    in_use = addresses[master] if master is not None else addresses[me or 0]
    lines += [f"Node in use           : {in_use}", "", f"Interface              : {interface}"]
    lines += ["", "Certificates"]
    lines += [f"{label:<23} : {value}" for label, value in (certs or CERT_LINES).items()]
    if last is None:
        joined = master is not None and me != master
        last = f"'database cluster join {in_use}'" if joined else "'database cluster initialize'"
        last += " (Success)"
    lines.append(f"Last command           : {last}")
    kept = [line for line in lines if not any(line.startswith(d) for d in drop)]
    return "\n".join(kept) + "\n"


def reading(
    text: str, host: str, *, through: str | None = None, hostname: str | None = None
) -> NodeReading:
    obs = NodeObservation(raw_status=text, status=parse_status(text))
    return NodeReading(host, 22, through, obs, hostname)


def healthy() -> list[NodeReading]:
    return [
        reading(status(0), A[0], hostname="cms1"),
        reading(status(1), A[1], through=A[0], hostname="cms2"),
        reading(status(2), A[2], through=A[0], hostname="cms3"),
    ]


def draft_of(readings: list[NodeReading], **kw: object) -> Draft:
    adoption = adopt(readings, cluster="emea", **kw)  # type: ignore[arg-type]
    assert adoption.draft is not None, adoption.problems
    return adoption.draft


def problems_of(readings: list[NodeReading], **kw: object) -> tuple[str, ...]:
    adoption = adopt(readings, cluster="emea", **kw)  # type: ignore[arg-type]
    assert adoption.draft is None and adoption.problems
    return adoption.problems


# ------------------------------------------------------------------ discovery, names, roles
def test_members_are_read_on_the_port_of_the_host_that_listed_them() -> None:
    first = NodeReading(
        A[1], 2222, None, NodeObservation(raw_status="", status=parse_status(status(1)))
    )
    assert members_to_read([first]) == [(A[0], 2222, A[1]), (A[2], 2222, A[1])]
    later = [first, reading(status(0), A[0], through=A[1]), reading(status(2), A[2], through=A[1])]
    assert members_to_read(later) == []


def test_a_healthy_cluster_is_adopted_master_first() -> None:
    readings = healthy()
    draft = draft_of([readings[1], readings[2], readings[0]])  # given in any order
    assert draft.master == "cms1"
    assert [n.name for n in draft.nodes] == ["cms1", "cms2", "cms3"]
    assert [n.address for n in draft.nodes] == list(A)
    assert {n.role for n in draft.nodes} == {NodeRole.DATABASE}
    assert draft.interface == "a"
    assert draft.nodes[0].seen_as == "master"
    assert draft.nodes[1].seen_as == "replica (in-sync)"
    assert draft.nodes[1].certs.server_key == "dbclusterserver.key"
    assert draft.notes == ()


def test_names_from_hostname_else_address_and_name_overrides() -> None:
    r = healthy()
    r[2] = reading(status(2), A[2], through=A[0])  # no hostname answered
    draft = draft_of(r, names={A[1]: "ams"})
    assert [(n.name, n.name_from) for n in draft.nodes] == [
        ("cms1", "hostname"),
        ("ams", "--name"),
        ("cms-10-48-36-182", "address"),
    ]
    assert derived_name("fd00::1") == "cms-fd00-1"
    assert problems_of(healthy(), names={"10.9.9.9": "x"}) == (
        "--name 10.9.9.9=x: no imported node has the address 10.9.9.9",
    )


def test_a_hostname_two_nodes_share_falls_back_to_the_address() -> None:
    r = healthy()
    r[1] = reading(status(1), A[1], through=A[0], hostname="cms1")
    draft = draft_of(r)
    assert [n.name for n in draft.nodes] == ["cms-10-48-36-61", "cms-10-48-36-118", "cms3"]
    assert any("calls itself cms1" in note for note in draft.notes)


def test_a_client_is_imported_as_client_with_its_evidence() -> None:
    client = (FIXTURES / "client_connect.txt").read_text()
    draft = draft_of([*healthy(), reading(client, "10.48.36.200", hostname="cb1")])
    cb = draft.node("cb1")
    assert cb.role is NodeRole.CLIENT and cb.address == "10.48.36.200"
    assert cb.certs.server_key is None and cb.certs.client_key == "postgres.key"
    assert draft.nodes[-1] is cb


def test_no_me_without_client_evidence_refuses_that_node() -> None:
    unclear = status(None, last="'database cluster join 10.48.36.61' (Success)")
    (problem,) = problems_of([*healthy(), reading(unclear, "10.48.36.200")])
    assert problem.startswith("10.48.36.200 (--host): its status marks no member `(me)`")
    assert "cannot be told" in problem


# ------------------------------------------------------------------ refusals
def test_a_member_that_cannot_be_read_is_named_with_the_reason() -> None:
    r = healthy()
    r[2] = NodeReading(A[2], 22, A[0], NodeObservation(unreachable="connect refused"), None)
    assert problems_of(r) == (
        "10.48.36.182 (listed by 10.48.36.61): cannot be read: connect refused",
    )


@pytest.mark.parametrize(
    ("drop", "expected"),
    [
        ("Last command", "the status has no `Last command` line"),
        ("Node in use", "the status has no `Node in use` line"),
        ("Interface", "interface unknown: the status has no `Interface` line"),
        ("Client Key", "certificates unknown: the status has no `Client Key` line"),
    ],
)
def test_a_missing_line_refuses_naming_the_node_and_the_line(drop: str, expected: str) -> None:
    r = healthy()
    r[1] = reading(status(1, drop=(drop,)), A[1], through=A[0], hostname="cms2")
    problems = problems_of(r)
    assert any(p.endswith(expected) and A[1] in p for p in problems), problems
    assert all(A[1] in p for p in problems)


def test_an_unclustered_host_is_refused_with_the_advice() -> None:
    fresh = (FIXTURES / "configured_not_clustered.txt").read_text()
    (problem,) = problems_of([*healthy(), reading(fresh, "10.48.36.200")])
    assert problem.startswith("10.48.36.200 (--host) is not clustered")
    assert "add this node to the spec by hand" in problem


def test_a_command_in_progress_refuses() -> None:
    r = healthy()
    busy = status(2, last="'database cluster join 10.48.36.61' (In progress)")
    r[2] = reading(busy, A[2], through=A[0])
    (problem,) = problems_of(r)
    assert "a command is in progress" in problem and A[2] in problem


def test_statuses_that_disagree_about_the_master_refuse() -> None:
    r = healthy()
    r[2] = reading(status(2, master=1), A[2], through=A[0], hostname="cms3")
    problems = problems_of(r)
    assert any("connected masters" in p or "but" in p for p in problems), problems


def test_no_master_accepted_by_a_majority_refuses() -> None:
    def alone(i: int) -> dict[int, str]:  # FAQ 238: itself a bare replica, the others gone
        return {j: "Connected Slave" if j == i else "Disconnected" for j in range(3)}

    r = [
        reading(status(i, master=None, states=alone(i)), A[i], through=None if i else A[0])
        for i in range(3)
    ]
    (problem,) = problems_of(r)
    assert problem.startswith("no node shows a connected master")


def test_a_master_without_a_majority_is_not_accepted() -> None:
    down = {1: "Disconnected", 2: "Disconnected"}
    r = healthy()
    r[0] = reading(status(0, states=down), A[0], hostname="cms1")
    problems = problems_of(r)
    assert any("more than half" in p for p in problems), problems


def test_members_lists_that_differ_refuse() -> None:
    four = (*A, "10.48.36.250")
    r = healthy()
    r[1] = reading(status(1, addresses=four), A[1], through=A[0], hostname="cms2")
    # the fourth member is read too (found through cms2), and shows itself a member
    extra = reading(status(3, addresses=four), four[3], through=A[1], hostname="cms4")
    problems = problems_of([*r, extra])
    assert any("disagree about the membership" in p for p in problems), problems


def test_different_interfaces_refuse() -> None:
    r = healthy()
    r[2] = reading(status(2, interface="b"), A[2], through=A[0], hostname="cms3")
    problems = problems_of(r)
    assert any("different interfaces" in p for p in problems), problems


# ------------------------------------------------------------------ files
def digests(draft: Draft, differing: tuple[str, ...] = ()) -> dict[str, dict[str, str]]:
    wanted = files_to_read(draft, fetch_keys=True)
    return {
        node: {name: (f"{node}-{name}" if name in differing else name) for name in names}
        for node, names in wanted.items()
    }


def test_shared_files_give_one_cluster_wide_block() -> None:
    draft = draft_of(healthy())
    layout = layout_certificates(draft, digests(draft), fetch_keys=True)
    assert isinstance(layout, CertLayout) and layout.shared
    assert layout.cluster.ca == "certs/vngtpRootca.cer"
    assert layout.cluster.server is not None
    assert layout.cluster.server.key == "keys/dbclusterserver.key"
    assert sorted(c.path for c in layout.copies) == [
        "certs/dbclusterclient.cer",
        "certs/dbclusterserver.cer",
        "certs/vngtpRootca.cer",
        "keys/dbclusterclient.key",
        "keys/dbclusterserver.key",
    ]


def test_clashing_names_go_to_per_node_folders_and_blocks() -> None:
    draft = draft_of(healthy())
    differing = ("dbclusterserver.cer", "dbclusterserver.key")
    layout = layout_certificates(draft, digests(draft, differing), fetch_keys=True)
    assert isinstance(layout, CertLayout) and not layout.shared
    cms2 = layout.for_node("cms2")
    assert cms2 is not None and cms2.server is not None
    assert cms2.server.cert == "certs/cms2/dbclusterserver.cer"
    assert cms2.server.key == "keys/cms2/dbclusterserver.key"
    assert cms2.client.cert == "certs/dbclusterclient.cer"  # the same everywhere
    assert layout.cluster.server is None and layout.cluster.ca == "certs/vngtpRootca.cer"
    assert {c.node for c in layout.copies if "dbclusterserver" in c.path} == {
        "cms1",
        "cms2",
        "cms3",
    }


def test_without_fetch_keys_the_keys_stay_on_the_nodes() -> None:
    draft = draft_of(healthy())
    wanted = files_to_read(draft, fetch_keys=False)
    assert all(not name.endswith(".key") for names in wanted.values() for name in names)
    assert keys_to_find(draft)["cms1"] == ("dbclusterclient.key", "dbclusterserver.key")
    layout = layout_certificates(draft, digests(draft), fetch_keys=False)
    assert isinstance(layout, CertLayout) and layout.cluster.server is not None
    assert layout.cluster.server.key is None
    assert layout.cluster.server.key_on_node == "dbclusterserver.key"
    assert not any(c.is_key for c in layout.copies)


# ------------------------------------------------------------------ the spec text
def write_spec(tmp_path: Path, draft: Draft, layout: CertLayout, *, fetch_keys: bool) -> Path:
    pki = make_pki()
    issued = {"vngtpRootca.cer": pki.ca, "ca.cer": pki.ca, "dbclusterserver.cer": pki.server}
    issued |= {"dbclusterclient.cer": pki.client, "postgres.cer": pki.client}
    for copy in layout.copies:
        if copy.is_key:
            key = pki.server if "server" in copy.remote_name else pki.client
            write_file(tmp_path / copy.path, key.key_pem(), 0o600)
        else:
            write_file(tmp_path / copy.path, issued[copy.remote_name].cert_pem())
    write_file(tmp_path / "known_hosts", b"")
    header = ImportHeader((A[0],), dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC), fetch_keys, "s")
    text = render_spec(draft, layout, SshBlock("admin", "CMS_PW", "known_hosts", 22), header)
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("fetch_keys", [True, False])
@pytest.mark.parametrize("differing", [(), ("dbclusterserver.cer", "dbclusterserver.key")])
def test_the_spec_loads_with_the_real_loader(
    tmp_path: Path, fetch_keys: bool, differing: tuple[str, ...]
) -> None:
    draft = draft_of(healthy())
    layout = layout_certificates(draft, digests(draft, differing), fetch_keys=fetch_keys)
    assert isinstance(layout, CertLayout)
    loaded = load_spec(write_spec(tmp_path, draft, layout, fetch_keys=fetch_keys), now=NOW)
    spec = loaded.spec
    assert spec.cluster == "emea" and spec.master == "cms1" and spec.interface == "a"
    assert [n.address for n in spec.nodes] == list(A)
    server = spec.certificates_for("cms2").server
    assert server is not None
    assert (server.key is None) is (not fetch_keys)
    assert (server.key_on_node == "dbclusterserver.key") is (not fetch_keys)


def test_the_spec_says_where_it_came_from_and_explains_the_knobs(tmp_path: Path) -> None:
    client = (FIXTURES / "client_connect.txt").read_text()
    draft = draft_of([*healthy(), reading(client, "10.48.36.200", hostname="cb1")])
    layout = layout_certificates(
        draft, digests(draft), fetch_keys=False
    )  # the client's files differ by name: per node
    assert isinstance(layout, CertLayout) and not layout.shared
    text = write_spec(tmp_path, draft, layout, fetch_keys=False).read_text()
    assert text.startswith(
        "# Imported by `reconcile import` from 10.48.36.61 on 2026-06-01 12:00:00 UTC"
    )
    assert "Review it, then commit it to git" in text
    assert "# The private keys stayed on the nodes (`key_on_node`" in text
    assert "role: client" in text
    for knob in ("allow_remove: false", "allow_master_move: true", "max_database_nodes: 5"):
        assert knob in text
    assert "  # Remove clustered nodes that this file does not list" in text
    assert "allow_unsafe_topology" not in text.replace("# allow_unsafe", "")
    load_spec(tmp_path / "spec.yaml", now=NOW)


def test_an_even_cluster_is_accepted_with_the_risk_written_down(tmp_path: Path) -> None:
    two = A[:2]
    r = [
        reading(status(0, addresses=two), two[0], hostname="cms1"),
        reading(status(1, addresses=two), two[1], through=two[0], hostname="cms2"),
    ]
    draft = draft_of(r)
    layout = layout_certificates(draft, digests(draft), fetch_keys=True)
    assert isinstance(layout, CertLayout)
    path = write_spec(tmp_path, draft, layout, fetch_keys=True)
    assert "allow_unsafe_topology: true" in path.read_text()
    assert load_spec(path, now=NOW).spec.policy.allow_unsafe_topology


@pytest.mark.parametrize(
    "value", ["10.0.0.1", "fd00::1", "::1", "yes", "123", "1.5", "null", "a b", "x#y", "-a", ""]
)
def test_every_value_reads_back_as_itself(value: str) -> None:
    data = YAML(typ="rt").load(f"k: {scalar(value)}\n")
    assert data["k"] == value and isinstance(data["k"], str)
