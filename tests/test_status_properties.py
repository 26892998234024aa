"""Property tests: parse_status is total, and render/parse round-trip."""

from __future__ import annotations

import re
from typing import Literal

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reconciler.common.addresses import normalize_address
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
from reconciler.observe.status_parser import parse_member_state, parse_status, split_label
from reconciler.observe.status_render import render_status

Wording = Literal["master", "primary"]
WORDINGS: tuple[Wording, ...] = ("master", "primary")
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------ totality

FRAGMENTS = [
    "Status", "ERROR", "Nodes", "Nodes:", "Node in use", "Interface", "Certificates",
    "Server Key", "Server Certificate", "Client Key", "Client Certificate", "CA Certificate",
    "Last command", " : ", ":", "  ", "\t", "#011", "(me)", " (me)", "( In Sync )", "(", ")",
    "Connected", "Disconnected", "Master", "Slave", "Primary", "Replica", "Enabled", "Error",
    "Disabled", "none", "NONE", "'", "'database cluster join 10.0.0.1'", "(Success)",
    "(Failed)", "(In progress)", "10.48.36.61", "fe80::1", "[fe80::1]", "::", "cms1.example.com",
    "cms1> database cluster status", "a", "\r", "\u00a0", "\x00", "\udc80", "é",
]  # fmt: skip

line_strategy = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), max_size=8
).map("".join)
structured_text = st.tuples(
    st.lists(line_strategy, max_size=25), st.sampled_from(["\n", "\r\n", "\r"])
).map(lambda parts: parts[1].join(parts[0]))


@SETTINGS
@given(st.text())
def test_parse_never_raises_on_any_text(text: str) -> None:
    assert isinstance(parse_status(text), ClusterStatus)


@SETTINGS
@given(structured_text)
def test_parse_never_raises_on_label_shaped_text(text: str) -> None:
    status = parse_status(text)
    non_blank = [line for line in text.replace("#011", "\t").splitlines() if line.strip()]
    assert len(status.unparsed) <= len(non_blank)


@SETTINGS
@given(structured_text, st.sampled_from(WORDINGS), st.sampled_from([0, 25, 28]))
# found by hypothesis: a line it could not place before a bare `Nodes`; a second echo line
@example("StatusStatus : Status\nNodes", "master", 0)
@example("cms1> database cluster status\ncms1> database cluster status", "master", 0)
def test_render_then_parse_normalises_once(text: str, wording: Wording, column: int) -> None:
    first = parse_status(text)
    second = parse_status(render_status(first, wording=wording, column=column))
    # An incomplete text never comes back whole (its reasons may read differently: the
    # lines the parser could not place are printed last); a whole one may come back
    # incomplete when the layout printed puts the `Nodes:` block last.
    # The renderer says so (it cannot print such a status back faithfully: a line it could
    # not place may read as a member when the `Nodes:` block is printed last); it must not
    # come back whole, and no line it could not place may be lost.
    if first.incomplete:
        assert second.incomplete or second.unparsed
        rendered = render_status(first, wording=wording, column=column)
        assert all(line in rendered for line in first.unparsed)
        return
    same = {"members": first.members, "wording": first.wording, "incomplete": first.incomplete}
    # only member state texts may change (to the requested wording); their meaning may not
    assert second.model_copy(update=same) == first
    assert [(m.address, m.is_me, m.connected, m.role, m.sync) for m in second.members] == [
        (m.address, m.is_me, m.connected, m.role, m.sync) for m in first.members
    ]
    third = parse_status(render_status(second, wording=wording, column=column))
    assert third == second


# ------------------------------------------------------------------ round trip

NO_NEWLINE = st.characters(blacklist_characters="\n\r")


def clean(text: str) -> bool:
    return "#011" not in text and text == text.strip()


value_text = st.text(NO_NEWLINE, min_size=1, max_size=30).filter(
    lambda s: clean(s) and s != "" and s.lower() != "none"
)
optional_value = st.none() | value_text
address = st.one_of(
    st.sampled_from(
        ["10.48.36.61", "fe80::1", "2001:db8::1", "::", "fe80::", "[fe80::2]", "cms1", "db.example"]
    ),
    st.text(NO_NEWLINE, min_size=1, max_size=20).filter(
        lambda s: clean(s) and not any(c.isspace() for c in s) and not s.endswith(")")
    ),
)


@st.composite
def spelled(draw: st.DrawFn, words: list[str]) -> str:
    """Words in random case joined by random whitespace (as an odd MMP build might print)."""
    out = []
    for word in words:
        case = draw(st.sampled_from([str, str.lower, str.upper, str.title]))
        out.append(case(word))
    seps = [draw(st.sampled_from([" ", "  ", "\t"])) for _ in words[1:]]
    text = out[0]
    for sep, word in zip(seps, out[1:], strict=True):
        text += sep + word
    return text


@st.composite
def members(draw: st.DrawFn, wording: Wording) -> Member:
    master, replica = ("Master", "Slave") if wording == "master" else ("Primary", "Replica")
    kind = draw(st.sampled_from(["master", "in-sync", "syncing", "disconnected", "other"]))
    addr = draw(address)
    me = draw(st.booleans())
    if kind == "master":
        raw = draw(spelled(["Connected", master]))
        return Member(
            address=addr,
            is_me=me,
            connected=True,
            role=MemberRole.MASTER,
            sync=SyncState.UNKNOWN,
            raw=raw,
        )
    if kind == "in-sync":
        suffix = draw(st.sampled_from(["( In Sync )", "(In Sync)", "(in sync)", "(  IN  SYNC  )"]))
        raw = (
            draw(spelled(["Connected", replica])) + draw(st.sampled_from(["", " ", "  "])) + suffix
        )
        return Member(
            address=addr,
            is_me=me,
            connected=True,
            role=MemberRole.REPLICA,
            sync=SyncState.IN_SYNC,
            raw=raw,
        )
    if kind == "syncing":
        raw = draw(spelled(["Connected", replica]))
        return Member(
            address=addr,
            is_me=me,
            connected=True,
            role=MemberRole.REPLICA,
            sync=SyncState.SYNCING,
            raw=raw,
        )
    if kind == "disconnected":
        raw = draw(spelled(["Disconnected"]))
        return Member(
            address=addr,
            is_me=me,
            connected=False,
            role=MemberRole.UNKNOWN,
            sync=SyncState.UNKNOWN,
            raw=raw,
        )
    raw = draw(
        st.one_of(
            value_text,
            st.sampled_from(["Connecting", "Connected Standby", "Connected Master (In Sync)"]),
        )
    )
    meaning = parse_member_state(raw)
    if meaning.role is not MemberRole.UNKNOWN or raw.lower() == "disconnected":
        raw = "Unrecognised " + raw  # keep this branch about unknown texts
    return Member(
        address=addr,
        is_me=me,
        connected=re.match(r"connected\b", raw, re.IGNORECASE) is not None,
        role=MemberRole.UNKNOWN,
        sync=SyncState.UNKNOWN,
        raw=raw,
    )


@st.composite
def states(draw: st.DrawFn) -> tuple[ClusterState, str | None]:
    known = {"enabled": ClusterState.ENABLED, "error": ClusterState.ERROR}
    known["disabled"] = ClusterState.DISABLED
    if draw(st.booleans()):
        word = draw(st.sampled_from(sorted(known)))
        return known[word], draw(spelled([word]))
    raw = draw(st.none() | st.just("") | value_text)
    if raw is not None and raw.lower() in known:
        raw = "not " + raw
    return ClusterState.UNKNOWN, raw


RESULT_WORDS = {
    CommandResult.SUCCESS: ["Success"],
    CommandResult.FAILED: ["Failed"],
    CommandResult.IN_PROGRESS: ["In", "progress"],
}


@st.composite
def last_commands(draw: st.DrawFn) -> LastCommand | None:
    kind = draw(st.sampled_from(["missing", "none", "known", "other-result", "no-result"]))
    if kind == "missing":
        return None
    if kind == "none":
        raw = draw(st.sampled_from(["none", "None", "NONE", ""]))
        return LastCommand(command=None, result=CommandResult.OTHER, raw=raw)
    command = draw(st.text(NO_NEWLINE, max_size=40).filter(lambda s: "#011" not in s))
    if kind == "no-result":
        return LastCommand(command=command, result=CommandResult.OTHER, raw=f"'{command}'")
    if kind == "known":
        result = draw(st.sampled_from(sorted(RESULT_WORDS)))
        word = draw(spelled(RESULT_WORDS[result]))
    else:
        result = CommandResult.OTHER
        word = draw(
            st.text(NO_NEWLINE, max_size=12).filter(
                lambda s: clean(s) and "(" not in s and ")" not in s
            )
        )
        if " ".join(word.split()).lower() in ("success", "failed", "in progress"):
            word = "not " + word
    space = draw(st.sampled_from(["", " ", "  "]))
    return LastCommand(command=command, result=result, raw=f"'{command}'{space}({word})")


unparsed_line = st.text(NO_NEWLINE, min_size=1, max_size=30).filter(
    lambda s: "#011" not in s and s == s.rstrip() and s.strip() != "" and split_label(s) is None
)


def consistent(status: ClusterStatus) -> ClusterStatus:
    """The status as the parser would read it back: shown lines, "no master" replicas."""
    shown = set(EVERY_LINE)
    if status.error is None:
        shown.discard(Line.ERROR)
    if status.state_raw is None and status.state is ClusterState.UNKNOWN:
        shown.discard(Line.STATUS)
    if status.last_command is None:
        shown.discard(Line.LAST_COMMAND)
    members = status.members
    if not any(m.connected and m.role is MemberRole.MASTER for m in members):
        members = tuple(
            m.model_copy(update={"sync": SyncState.NO_MASTER}) if m.sync is SyncState.SYNCING else m
            for m in members
        )
    return status.model_copy(update={"shown": frozenset(shown), "members": members})


def _unique(members: list[Member]) -> list[Member]:
    seen: set[str] = set()
    out = []
    for m in members:
        if normalize_address(m.address) not in seen:
            seen.add(normalize_address(m.address))
            out.append(m)
    return out


@st.composite
def statuses(draw: st.DrawFn, wording: Wording) -> ClusterStatus:
    state, state_raw = draw(states())
    status = ClusterStatus(
        state=state,
        state_raw=state_raw,
        error=draw(optional_value),
        members=tuple(_unique(draw(st.lists(members(wording), max_size=6)))),
        node_in_use=draw(optional_value),
        interface=draw(optional_value),
        certificates=Certificates(
            server_key=draw(optional_value),
            server_cert=draw(optional_value),
            client_key=draw(optional_value),
            client_cert=draw(optional_value),
            ca_cert=draw(optional_value),
        ),
        last_command=draw(last_commands()),
        wording=None,
        unparsed=tuple(draw(st.lists(unparsed_line, max_size=3))),
    )
    return consistent(status)


def check_round_trip(status: ClusterStatus, wording: Wording, column: int) -> None:
    parsed = parse_status(render_status(status, wording=wording, column=column))
    assert parsed == status.model_copy(update={"wording": parsed.wording})
    names_a_role = any(m.role is not MemberRole.UNKNOWN for m in status.members)
    assert parsed.wording == (wording if names_a_role else None)


@SETTINGS
@given(statuses("master"), st.sampled_from([25, 28, 0, 40]))
def test_round_trip_master_wording(status: ClusterStatus, column: int) -> None:
    check_round_trip(status, "master", column)


@SETTINGS
@given(statuses("primary"), st.sampled_from([25, 28, 0, 40]))
def test_round_trip_primary_wording(status: ClusterStatus, column: int) -> None:
    check_round_trip(status, "primary", column)
