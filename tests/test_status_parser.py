"""parse_status / render_status on the published samples, our variants and edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.observe.status_evidence import clustering, in_progress
from reconciler.observe.status_model import (
    EVERY_LINE,
    Certificates,
    ClusterState,
    ClusterStatus,
    CommandResult,
    LastCommand,
    Line,
    Member,
    MemberRole,
    SyncState,
)
from reconciler.observe.status_parser import parse_member_line, parse_status
from reconciler.observe.status_render import render_status

FIXTURES = Path(__file__).parent / "fixtures" / "status"
FIXTURE_NAMES = sorted(p.stem for p in FIXTURES.glob("*.txt"))


def fixture_text(name: str) -> str:
    # read bytes: keep CR characters exactly as stored
    return (FIXTURES / f"{name}.txt").read_bytes().decode("utf-8")


def expected(name: str) -> ClusterStatus:
    data = json.loads((FIXTURES / f"{name}.expected.json").read_text(encoding="utf-8"))
    return ClusterStatus.model_validate(data)


def test_every_fixture_has_an_expected_result() -> None:
    assert len(FIXTURE_NAMES) >= 18
    for name in FIXTURE_NAMES:
        assert (FIXTURES / f"{name}.expected.json").is_file(), name


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_parses_to_expected_model(name: str) -> None:
    assert parse_status(fixture_text(name)) == expected(name)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
@pytest.mark.parametrize("column", [25, 28, 0, 60])
def test_fixture_survives_render_and_parse(name: str, column: int) -> None:
    parsed = parse_status(fixture_text(name))
    if parsed.incomplete:
        # Not printable faithfully (docs/status-format.md): it must never come back whole.
        assert parse_status(render_status(parsed, column=column)).incomplete or parsed.unparsed
        return
    wording = parsed.wording if parsed.wording == "primary" else "master"
    assert parse_status(render_status(parsed, wording=wording, column=column)) == parsed


# Independent of the JSON files: the facts each fixture must show ("-" = None).
SUMMARY_TABLE = """
name                        | state    | me               | master           | n | wording | last        | clustered | busy | unparsed
doc_healthy_replica         | enabled  | 10.48.36.182     | 10.48.36.61      | 3 | master  | success     | yes       | no   | 0
doc_schema_error            | error    | 10.48.54.119     | 10.48.54.75      | 3 | primary | failed      | yes       | no   | 0
master_view                 | enabled  | 10.48.36.61      | 10.48.36.61      | 3 | master  | success     | yes       | no   | 0
primary_wording_master_view | enabled  | 10.48.54.75      | 10.48.54.75      | 3 | primary | success     | yes       | no   | 0
minority_node               | enabled  | 10.0.0.13        | -                | 3 | primary | success     | yes       | no   | 0
majority_new_master         | enabled  | 10.0.0.11        | 10.0.0.11        | 3 | primary | success     | yes       | no   | 0
syncing_replica             | enabled  | 10.48.36.182     | 10.48.36.61      | 3 | master  | success     | yes       | no   | 0
fresh_disabled              | disabled | -                | -                | 0 | -       | other       | no        | no   | 0
configured_not_clustered    | disabled | -                | -                | 0 | -       | success     | no        | no   | 0
command_in_progress         | disabled | -                | -                | 0 | -       | in-progress | no        | yes  | 0
client_connect              | enabled  | -                | 10.48.36.61      | 3 | master  | success     | yes       | no   | 0
ipv6                        | enabled  | [fe80::3]        | 2001:db8::61     | 6 | primary | success     | yes       | no   | 0
hostnames                   | enabled  | cms2.example.com | cms1.example.com | 4 | master  | success     | yes       | no   | 0
no_status_line              | unknown  | 10.48.36.118     | 10.48.36.61      | 3 | master  | success     | yes       | no   | 0
echoed_prompt               | enabled  | 10.48.36.61      | 10.48.36.61      | 3 | master  | success     | yes       | no   | 0
odd_padding_tabs            | enabled  | 10.1.1.2         | 10.1.1.1         | 3 | master  | success     | yes       | no   | 0
crlf                        | enabled  | 10.48.36.118     | 10.48.36.61      | 2 | master  | success     | yes       | no   | 0
garbage_values              | unknown  | 10.0.0.3         | -                | 4 | -       | other       | yes       | -    | 4
faq238_healthy_partial      | unknown  | 10.0.0.12        | 10.0.0.11        | 3 | primary | -           | yes       | -    | 0
faq238_minority_node        | enabled  | 10.0.0.13        | -                | 3 | primary | success     | yes       | no   | 0
"""  # noqa: E501
SUMMARY = [
    [None if cell == "-" else cell for cell in (c.strip() for c in line.split("|"))]
    for line in SUMMARY_TABLE.strip().splitlines()[1:]
]


def test_summary_table_covers_every_fixture() -> None:
    assert sorted(str(row[0]) for row in SUMMARY) == FIXTURE_NAMES


@pytest.mark.parametrize("row", SUMMARY, ids=[str(row[0]) for row in SUMMARY])
def test_fixture_summary(row: list[str | None]) -> None:
    name, state, me, master, count, wording, result, clustered, busy, unparsed = row
    status = parse_status(fixture_text(str(name)))
    assert status.state == state
    assert (status.me.address if status.me else None) == me
    assert (status.master.address if status.master else None) == master
    assert len(status.members) == int(str(count))
    assert status.wording == wording
    if result is None:
        assert status.last_command is None
    else:
        assert status.last_command is not None
        assert status.last_command.result == result
    assert clustering(status) == clustered
    assert in_progress(status) is {"yes": True, "no": False, None: None}[busy]
    assert len(status.unparsed) == int(str(unparsed))


def test_doc_schema_error_details() -> None:
    status = parse_status(fixture_text("doc_schema_error"))
    assert status.error == "Couldn't upgrade the schema"
    assert status.state_raw == "Error"
    assert status.certificates == Certificates(
        server_key="dbclusterServer.key",
        server_cert="dbserver.cer",
        client_key="dbclusterClient.key",
        client_cert="dbclient.cer",
        ca_cert="Root.cer",
    )
    assert status.last_command == LastCommand(
        command="database cluster upgrade_schema",
        result=CommandResult.FAILED,
        raw="'database cluster upgrade_schema' (Failed)",
    )


def test_fresh_node_is_all_none() -> None:
    status = parse_status(fixture_text("fresh_disabled"))
    assert status.members == ()
    assert status.node_in_use is None
    assert status.interface is None
    assert status.certificates == Certificates()
    assert status.last_command == LastCommand(command=None, result=CommandResult.OTHER, raw="none")


def test_client_node_has_no_server_certificates_and_no_me() -> None:
    status = parse_status(fixture_text("client_connect"))
    assert status.me is None
    assert status.certificates.server_key is None
    assert status.certificates.server_cert is None
    assert status.certificates.client_key == "postgres.key"


def test_garbage_values_are_kept_raw() -> None:
    status = parse_status(fixture_text("garbage_values"))
    assert status.state is ClusterState.UNKNOWN
    assert status.state_raw == "Degraded"
    assert [m.raw for m in status.members] == [
        "Connected Master ( In Sync )",
        "Connecting...",
        "Connected Follower",
        "???",
    ]
    assert [m.connected for m in status.members] == [True, False, True, False]
    assert {m.role for m in status.members} == {MemberRole.UNKNOWN}
    assert status.interface == "zz"
    assert status.certificates.server_key is None
    assert status.certificates.server_cert is None
    assert status.last_command is not None
    assert status.last_command.command == "database cluster frobnicate"
    assert status.last_command.result is CommandResult.OTHER
    assert status.unparsed == (
        "  this line is not a member",
        "  Expiry                 : 2027-01-01",
        "Status                   : Enabled",
        "%% unexpected banner text %%",
    )


def test_crlf_fixture_really_has_crlf_and_equals_lf_version() -> None:
    text = fixture_text("crlf")
    assert "\r\n" in text
    assert parse_status(text) == parse_status(text.replace("\r\n", "\n"))


@pytest.mark.parametrize("name", ["doc_healthy_replica", "doc_schema_error", "ipv6"])
def test_line_endings_and_escaped_tabs_do_not_matter(name: str) -> None:
    text = fixture_text(name)
    status = parse_status(text)
    assert parse_status(text.replace("\n", "\r\n")) == status
    assert parse_status(text.replace("\n", "\r")) == status
    assert parse_status(text.replace("    ", "\t")) == status
    assert parse_status(text.replace("  ", "#011")) == status


def test_echo_line_is_skipped_only_as_first_line() -> None:
    body = fixture_text("master_view")
    plain = parse_status(body)
    for echo in (
        "cms1> database cluster status",
        "database cluster status",
        "x>database  cluster STATUS",
    ):
        assert parse_status(f"\n{echo}\n{body}") == plain
    later = parse_status(body + "cms1> database cluster status\n")
    assert later.unparsed == ("cms1> database cluster status",)


# ---------------------------------------------------------------- member lines

MEMBER_LINES = [
    # line, address, is_me, connected, role, sync, raw
    (
        "  10.0.0.1 : Connected Master",
        "10.0.0.1",
        False,
        True,
        "master",
        "unknown",
        "Connected Master",
    ),
    (
        "  10.0.0.1 (me) : Connected Primary",
        "10.0.0.1",
        True,
        True,
        "master",
        "unknown",
        "Connected Primary",
    ),
    (
        "  h (me)   :   Connected Slave ( In Sync )",
        "h",
        True,
        True,
        "replica",
        "in-sync",
        "Connected Slave ( In Sync )",
    ),
    ("h:Connected x", None, None, None, None, None, None),
    (
        "  h: Connected Replica (In Sync)",
        "h",
        False,
        True,
        "replica",
        "in-sync",
        "Connected Replica (In Sync)",
    ),
    ("  h (ME): connected replica", "h", True, True, "replica", "syncing", "connected replica"),
    ("  h(me) : Disconnected", "h", True, False, "unknown", "unknown", "Disconnected"),
    ("  fe80::1 : DISCONNECTED", "fe80::1", False, False, "unknown", "unknown", "DISCONNECTED"),
    (
        "  fe80::1: Connected Master",
        "fe80::1",
        False,
        True,
        "master",
        "unknown",
        "Connected Master",
    ),
    ("  fe80:: : Connected Master", "fe80::", False, True, "master", "unknown", "Connected Master"),
    ("  fe80::: Connected Master", None, None, None, None, None, None),  # ambiguous
    (
        "  [2001:db8::1]: Connected Slave",
        "[2001:db8::1]",
        False,
        True,
        "replica",
        "syncing",
        "Connected Slave",
    ),
    (
        "  ::1 : Connected Slave ( in sync ) ",
        "::1",
        False,
        True,
        "replica",
        "in-sync",
        "Connected Slave ( in sync )",
    ),
    ("  a : b : c", "a", False, False, "unknown", "unknown", "b : c"),
    ("  h : Connected Standby", "h", False, True, "unknown", "unknown", "Connected Standby"),
    ("  h : Connectedness", "h", False, False, "unknown", "unknown", "Connectedness"),
    ("  h :", None, None, None, None, None, None),
    ("  h", None, None, None, None, None, None),
    ("  two words : Connected Master", None, None, None, None, None, None),
]


@pytest.mark.parametrize("row", MEMBER_LINES, ids=[row[0] for row in MEMBER_LINES])
def test_member_line(row: tuple[object, ...]) -> None:
    line, address, is_me, connected, role, sync, raw = row
    member = parse_member_line(str(line))
    if address is None:
        assert member is None
        return
    assert member == Member(
        address=str(address),
        is_me=bool(is_me),
        connected=bool(connected),
        role=MemberRole(role),
        sync=SyncState(sync),
        raw=str(raw),
    )


def test_members_may_be_unindented_right_after_nodes_header() -> None:
    status = parse_status("Nodes:\n10.0.0.1 : Connected Master\n10.0.0.2 (me) : Connected Slave\n")
    assert [m.address for m in status.members] == ["10.0.0.1", "10.0.0.2"]
    assert status.unparsed == ()


def test_unindented_known_label_ends_the_member_block() -> None:
    status = parse_status("Nodes:\n  a : Connected Master\nInterface : b\n  c : Disconnected\n")
    assert [m.address for m in status.members] == ["a"]
    assert status.interface == "b"
    assert status.unparsed == ("  c : Disconnected",)


def test_multi_word_label_ends_the_member_block_even_when_indented() -> None:
    status = parse_status("Nodes:\n  a : Connected Master\n  Node in use : a\n")
    assert [m.address for m in status.members] == ["a"]
    assert status.node_in_use == "a"


def test_blank_line_after_members_ends_the_block() -> None:
    status = parse_status("Nodes:\n\n  a : Connected Master\n\n  b : Disconnected\n")
    assert [m.address for m in status.members] == ["a"]
    assert status.unparsed == ("  b : Disconnected",)


def test_member_line_outside_the_block_is_unparsed() -> None:
    status = parse_status("Status : Enabled\n  10.0.0.1 : Connected Master\n")
    assert status.members == ()
    assert status.unparsed == ("  10.0.0.1 : Connected Master",)


# ---------------------------------------------------------------- label lines


@pytest.mark.parametrize(
    ("value", "state"),
    [
        ("Enabled", ClusterState.ENABLED),
        ("ENABLED", ClusterState.ENABLED),
        ("error", ClusterState.ERROR),
        ("Disabled", ClusterState.DISABLED),
        ("Degraded", ClusterState.UNKNOWN),
        ("none", ClusterState.UNKNOWN),
        ("", ClusterState.UNKNOWN),
    ],
)
def test_status_values(value: str, state: ClusterState) -> None:
    status = parse_status(f"Status : {value}\n")
    assert status.state is state
    assert status.state_raw == value


def test_missing_status_line_is_unknown_with_no_raw() -> None:
    status = parse_status("Interface : a\n")
    assert status.state is ClusterState.UNKNOWN
    assert status.state_raw is None


@pytest.mark.parametrize(
    ("value", "command", "result"),
    [
        ("'database cluster initialize' (Success)", "database cluster initialize", "success"),
        ("'database cluster remove' (Failed)", "database cluster remove", "failed"),
        ("'database cluster join a' (In progress)", "database cluster join a", "in-progress"),
        ("'database cluster join a'(  in   PROGRESS )", "database cluster join a", "in-progress"),
        ("'x' (Exploded)", "x", "other"),
        ("'x'", "x", "other"),
        ("'it's' (Success)", "it's", "success"),
        ("none", None, "other"),
        ("NONE", None, "other"),
        ("", None, "other"),
        ("garbage (Success)", None, "other"),
    ],
)
def test_last_command_values(value: str, command: str | None, result: str) -> None:
    status = parse_status(f"Last command : {value}\n")
    assert status.last_command == LastCommand(
        command=command, result=CommandResult(result), raw=value
    )


def test_missing_last_command_is_none() -> None:
    assert parse_status("Status : Enabled\n").last_command is None


def test_labels_match_case_and_whitespace_insensitively() -> None:
    status = parse_status(
        "  node\t IN  use:cms1\nINTERFACE    :   a\n ca  certificate : ca.cer\nerror: boom: x\n"
    )
    assert status.node_in_use == "cms1"
    assert status.interface == "a"
    assert status.certificates.ca_cert == "ca.cer"
    assert status.error == "boom: x"
    assert status.unparsed == ()


@pytest.mark.parametrize("value", ["none", "None", "NONE", ""])
def test_none_and_empty_values_are_none(value: str) -> None:
    status = parse_status(f"Node in use : {value}\nERROR : {value}\nServer Key : {value}\n")
    assert status.node_in_use is None
    assert status.error is None
    assert status.certificates.server_key is None
    assert status.unparsed == ()


def test_ipv6_values_keep_their_colons() -> None:
    status = parse_status(
        "Node in use : fe80::1\nLast command : 'database cluster join ::1' (Success)"
    )
    assert status.node_in_use == "fe80::1"
    assert status.last_command is not None
    assert status.last_command.command == "database cluster join ::1"


def test_certificate_labels_without_header() -> None:
    status = parse_status("Server Key : s.key\nClient Certificate : c.cer\n")
    assert status.certificates == Certificates(server_key="s.key", client_cert="c.cer")


def test_a_field_that_holds_a_value_keeps_the_first_and_later_lines_are_unparsed() -> None:
    status = parse_status("Interface : a\nInterface : b\nERROR : none\nERROR : boom\n")
    assert status.interface == "a"
    assert status.error == "boom"
    assert status.unparsed == ("Interface : b",)


@pytest.mark.parametrize("text", ["", "\n\n", "   \t  ", "\r\n", "#011"])
def test_empty_input(text: str) -> None:
    status = parse_status(text)
    assert status == ClusterStatus(
        state=ClusterState.UNKNOWN,
        state_raw=None,
        error=None,
        members=(),
        node_in_use=None,
        interface=None,
        certificates=Certificates(),
        last_command=None,
        wording=None,
    )


def test_headers_with_values_are_unparsed() -> None:
    status = parse_status("Nodes: a b\nCertificates : x\n")
    assert status.unparsed == ("Nodes: a b", "Certificates : x")


# ---------------------------------------------------------------- rendering


def test_render_fresh_node_matches_the_documented_layout() -> None:
    doc = fixture_text("fresh_disabled")
    assert render_status(parse_status(doc), column=28) == doc


def test_render_schema_error_layout() -> None:
    status = parse_status(fixture_text("doc_schema_error"))
    text = render_status(status, wording="primary", column=28)
    lines = text.splitlines()
    assert lines[0] == "ERROR                    : Couldn't upgrade the schema"
    assert lines[1] == "Status                   : Error"
    assert lines[2] == "Nodes:"
    assert lines[3] == "  10.48.54.75            : Connected Primary"
    assert lines[5] == "  10.48.54.119 (me)      : Connected Replica ( In Sync )"
    assert lines[-1] == "Last command             : 'database cluster upgrade_schema' (Failed)"


def test_render_switches_wording_of_known_states() -> None:
    status = parse_status(fixture_text("doc_healthy_replica"))
    text = render_status(status, wording="primary")
    assert "Connected Primary" in text
    assert "Connected Replica ( In Sync )" in text
    assert "Master" not in text
    assert "Slave" not in text
    assert parse_status(text).wording == "primary"


def lab_status() -> ClusterStatus:
    """A status as the lab builds it: interpreted fields, empty raw texts."""

    def member(address: str, connected: bool, role: str, sync: str, me: bool = False) -> Member:
        return Member(
            address=address,
            is_me=me,
            connected=connected,
            role=MemberRole(role),
            sync=SyncState(sync),
            raw="",
        )

    return ClusterStatus(
        state=ClusterState.ENABLED,
        state_raw=None,
        error=None,
        members=(
            member("10.0.0.1", True, "master", "unknown", me=True),
            member("10.0.0.2", True, "replica", "in-sync"),
            member("10.0.0.3", True, "replica", "syncing"),
            member("10.0.0.4", False, "unknown", "unknown"),
        ),
        node_in_use="10.0.0.1",
        interface="a",
        certificates=Certificates(server_key="s.key"),
        last_command=LastCommand(
            command="database cluster initialize", result=CommandResult.IN_PROGRESS, raw=""
        ),
        wording=None,
        shown=EVERY_LINE - {Line.ERROR},
    )


@pytest.mark.parametrize(
    ("wording", "master", "replica"),
    [("master", "Master", "Slave"), ("primary", "Primary", "Replica")],
)
def test_render_canonical_text_for_statuses_built_without_raw(
    wording: str, master: str, replica: str
) -> None:
    text = render_status(lab_status(), wording="primary" if wording == "primary" else "master")
    assert text.splitlines()[:6] == [
        "Status                : Enabled",
        "Nodes:",
        f"  10.0.0.1 (me)       : Connected {master}",
        f"  10.0.0.2            : Connected {replica} ( In Sync )",
        f"  10.0.0.3            : Connected {replica}",
        "  10.0.0.4            : Disconnected",
    ]
    assert "Last command          : 'database cluster initialize' (In progress)" in text
    assert "  Server Certificate  : none" in text
    parsed = parse_status(text)
    want = lab_status()
    assert [(m.address, m.is_me, m.connected, m.role, m.sync) for m in parsed.members] == [
        (m.address, m.is_me, m.connected, m.role, m.sync) for m in want.members
    ]
    assert parsed.state is ClusterState.ENABLED
    assert parsed.last_command is not None
    assert parsed.last_command.result is CommandResult.IN_PROGRESS
    assert parsed.certificates == want.certificates


def test_render_leaves_out_missing_status_and_error_and_last_command() -> None:
    status = parse_status("Interface : b\n")
    text = render_status(status)
    assert "Status" not in text
    assert "ERROR" not in text
    assert "Last command" not in text
    assert parse_status(text) == status


def test_render_long_labels_keep_one_space_before_the_colon() -> None:
    status = parse_status("Nodes:\n  a-very-long-host-name.example.com (me) : Connected Master\n")
    text = render_status(status, column=10)
    assert "  a-very-long-host-name.example.com (me) : Connected Master" in text.splitlines()
    assert parse_status(text) == status


@pytest.mark.parametrize("role", [MemberRole.MASTER, MemberRole.REPLICA, MemberRole.UNKNOWN])
@pytest.mark.parametrize("raw", ["", "Disconnected", "Connected Master"])
def test_render_an_unconnected_member_as_disconnected(role: MemberRole, raw: str) -> None:
    member = Member(
        address="10.0.0.9", is_me=False, connected=False, role=role, sync=SyncState.UNKNOWN, raw=raw
    )
    status = lab_status().model_copy(update={"members": (member,)})
    assert "  10.0.0.9            : Disconnected" in render_status(status).splitlines()


DOCS = Path(__file__).resolve().parent.parent / "docs" / "status-format.md"
FACTS = Path(__file__).resolve().parents[2] / "shared" / "cms-mmp-facts.md"


def code_blocks(markdown: str) -> list[str]:
    return [block.split("\n", 1)[1] for block in markdown.split("```")[1::2] if "\n" in block]


def test_disabled_fixture_is_the_documented_layout() -> None:
    blocks = code_blocks(DOCS.read_text(encoding="utf-8"))
    assert fixture_text("fresh_disabled") in blocks


@pytest.mark.skipif(not FACTS.is_file(), reason="the shared facts file is outside the repository")
def test_doc_fixtures_are_the_published_samples_verbatim() -> None:
    blocks = code_blocks(FACTS.read_text(encoding="utf-8"))
    assert fixture_text("doc_healthy_replica") in blocks
    assert fixture_text("doc_schema_error") in blocks
    assert all(parse_status(block).unparsed == () for block in blocks)
