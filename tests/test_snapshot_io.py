"""Snapshot files: load (with located diagnostics), dump, round trip."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.common.diagnostics import Diagnostic
from reconciler.common.errors import SpecError
from reconciler.observe.snapshot_io import dump_snapshot, load_snapshot
from reconciler.observe.snapshot_model import NodeObservation, Observed
from reconciler.observe.status_model import ClusterState
from reconciler.observe.status_parser import parse_status

FIXTURES = Path(__file__).parent / "fixtures" / "status"
SHA_A = "3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b"
SHA_B = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def indent(text: str, by: str = "      ") -> str:
    return "".join(by + line if line.strip() else line for line in text.splitlines(True))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "observed.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> tuple[Diagnostic, ...]:
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_snapshot(path)
    diagnostics = info.value.diagnostics
    assert diagnostics, "a SpecError from load_snapshot must carry diagnostics"
    assert all(isinstance(d, Diagnostic) for d in diagnostics)
    for d in diagnostics:
        assert isinstance(d, Diagnostic)
        assert d.file == str(path)
        assert d.render() in str(info.value)
    return tuple(d for d in diagnostics if isinstance(d, Diagnostic))


def good_text() -> str:
    healthy = (FIXTURES / "doc_healthy_replica.txt").read_text(encoding="utf-8")
    return (
        'observed_at: "2026-11-26T03:00:00+00:00"\n'
        "nodes:\n"
        "  cms1:\n"
        "    status: |\n" + indent(healthy) + "    files:\n"
        f"      dbclusterserver.key: {SHA_A}\n"
        f"      vngtpRootca.cer: {SHA_B.upper()}\n"
        "  cms2:\n"
        "    unreachable: connection refused\n"
        "  cms3:\n"
        "    status: ''\n"
        "    files: {}\n"
    )


def test_load_good_file(tmp_path: Path) -> None:
    observed = load_snapshot(write(tmp_path, good_text()))
    assert observed.observed_at == dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.UTC)
    assert list(observed.nodes) == ["cms1", "cms2", "cms3"]

    cms1 = observed.nodes["cms1"]
    raw = (FIXTURES / "doc_healthy_replica.txt").read_text(encoding="utf-8")
    assert cms1.raw_status == raw
    assert cms1.status == parse_status(raw)
    assert cms1.status is not None
    assert cms1.status.state is ClusterState.ENABLED
    assert cms1.files == {"dbclusterserver.key": SHA_A, "vngtpRootca.cer": SHA_B}  # lower-cased
    assert cms1.reachable

    cms2 = observed.nodes["cms2"]
    assert cms2 == NodeObservation(unreachable="connection refused")
    assert not cms2.reachable

    cms3 = observed.nodes["cms3"]
    assert cms3.raw_status == ""
    assert cms3.status == parse_status("")
    assert cms3.files == {}


def test_observed_at_is_optional_and_accepts_a_yaml_timestamp(tmp_path: Path) -> None:
    assert load_snapshot(write(tmp_path, "nodes: {}\n")) == Observed()
    assert load_snapshot(write(tmp_path, "observed_at:\nnodes: {}\n")) == Observed()
    observed = load_snapshot(write(tmp_path, "observed_at: 2026-11-26T03:00:00Z\nnodes: {}\n"))
    assert observed.observed_at == dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.UTC)


# (case, yaml text, expected (line, column, field, message fragment) of each diagnostic)
BAD_INPUTS = [
    ("top level is a list", "- a\n- b\n", [(1, 1, "", "must be a mapping")]),
    ("empty file", "", [(1, 1, "", "must be a mapping")]),
    (
        "unknown top-level key",
        "nodes: {}\nobserved: x\n",
        [(2, 1, "observed", "unknown key")],
    ),
    ("missing nodes", "observed_at: '2026-11-26T03:00:00'\n", [(1, 1, "", "missing key `nodes`")]),
    ("nodes is a list", "nodes:\n  - cms1\n", [(2, 3, "nodes", "must be a mapping")]),
    ("node is a string", "nodes:\n  cms1: up\n", [(2, 9, "nodes.cms1", "must be a mapping")]),
    (
        "unknown node key",
        "nodes:\n  cms1:\n    unreachable: x\n    satus: y\n",
        [(4, 5, "nodes.cms1.satus", "unknown key")],
    ),
    (
        "both status and unreachable",
        "nodes:\n  cms1:\n    status: x\n    unreachable: y\n",
        [(2, 3, "nodes.cms1", "(has `status`, `unreachable`)")],
    ),
    (
        "neither status nor unreachable",
        "nodes:\n  a:\n    unreachable: y\n  cms1:\n    files: {}\n",
        [(4, 3, "nodes.cms1", "(has none)")],
    ),
    (
        "status is not a string",
        "nodes:\n  cms1:\n    status: 42\n",
        [(3, 13, "nodes.cms1.status", "must be a string")],
    ),
    (
        "unreachable is not a string",
        "nodes:\n  cms1:\n    unreachable: [a]\n",
        [(3, 18, "nodes.cms1.unreachable", "must be a string")],
    ),
    (
        "bad sha256",
        f"nodes:\n  cms1:\n    status: x\n    files:\n      a.key: {SHA_A}\n      b.key: 1234abc\n",
        [(6, 14, "nodes.cms1.files.b.key", "sha256")],
    ),
    (
        "sha256 with a non-hex character",
        f"nodes:\n  cms1:\n    status: x\n    files:\n      a.key: {SHA_A[:-1]}g\n",
        [(5, 14, "nodes.cms1.files.a.key", "sha256")],
    ),
    (
        "files is a list",
        "nodes:\n  cms1:\n    status: x\n    files: [a.key]\n",
        [(4, 12, "nodes.cms1.files", "must be a mapping")],
    ),
    (
        "bad timestamp",
        "observed_at: yesterday\nnodes: {}\n",
        [(1, 14, "observed_at", "ISO 8601")],
    ),
    (
        "a quoted date is not a timestamp either",
        "observed_at: '2026-11-26'\nnodes: {}\n",
        [(1, 14, "observed_at", "ISO 8601")],
    ),
    (
        "a date is not a timestamp",
        "observed_at: 2026-11-26\nnodes: {}\n",
        [(1, 14, "observed_at", "ISO 8601")],
    ),
    ("yaml syntax error", "nodes:\n  cms1: [\n", [(3, 1, "", "YAML syntax error")]),
    (
        "duplicate node",
        "nodes:\n  cms1:\n    unreachable: a\n  cms1:\n    unreachable: b\n",
        [(4, 3, "", "duplicate key")],
    ),
    (
        "several problems, in file order",
        "observed_at: soon\nnodes:\n  cms1:\n    status: x\n    unreachable: y\n"
        "  cms2:\n    files:\n      k: nope\n",
        [
            (1, 14, "observed_at", "ISO 8601"),
            (3, 3, "nodes.cms1", "(has `status`, `unreachable`)"),
            (6, 3, "nodes.cms2", "(has none)"),
            (8, 10, "nodes.cms2.files.k", "sha256"),
        ],
    ),
]


@pytest.mark.parametrize(("case", "text", "want"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_reported_with_its_position(
    tmp_path: Path, case: str, text: str, want: list[tuple[int, int, str, str]]
) -> None:
    diagnostics = load_error(tmp_path, text)
    got = [(d.line, d.column, d.field) for d in diagnostics]
    assert got == [(line, column, field) for line, column, field, _ in want], case
    for d, (_, _, _, fragment) in zip(diagnostics, want, strict=True):
        assert fragment in d.message
        assert d.is_error


def test_messages_do_not_quote_values(tmp_path: Path) -> None:
    secret = "hunter2-not-a-digest"
    text = f"observed_at: {secret}\nnodes:\n  cms1:\n    status: x\n    files:\n      k: {secret}\n"
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_snapshot(path)
    assert secret not in str(info.value)


def test_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError):
        load_snapshot(tmp_path / "absent.yaml")


# ---------------------------------------------------------------- dump


def test_dump_writes_literal_blocks_in_a_stable_order(tmp_path: Path) -> None:
    observed = load_snapshot(write(tmp_path, good_text()))
    text = dump_snapshot(observed)
    assert text.startswith("observed_at: '2026-11-26T03:00:00+00:00'\nnodes:\n  cms1:\n")
    assert "    status: |\n      Status                : Enabled\n" in text
    assert text.index("cms1:") < text.index("cms2:") < text.index("cms3:")
    assert text.index("dbclusterserver.key:") < text.index("vngtpRootca.cer:")
    assert dump_snapshot(load_snapshot(write(tmp_path, text))) == text


def test_dump_load_round_trip_of_the_good_file(tmp_path: Path) -> None:
    observed = load_snapshot(write(tmp_path, good_text()))
    assert load_snapshot(write(tmp_path, dump_snapshot(observed))) == observed


def test_dump_keeps_text_a_literal_block_cannot_hold(tmp_path: Path) -> None:
    raw = "Status : Enabled\r\nNodes:\r\n\tx : Disconnected  \r\n"
    observed = Observed(nodes={"n": NodeObservation(raw_status=raw, status=parse_status(raw))})
    text = dump_snapshot(observed)
    assert load_snapshot(write(tmp_path, text)) == observed


def test_dump_renders_a_status_without_raw_text(tmp_path: Path) -> None:
    status = parse_status((FIXTURES / "doc_schema_error.txt").read_text(encoding="utf-8"))
    observed = Observed(nodes={"n": NodeObservation(status=status)})
    back = load_snapshot(write(tmp_path, dump_snapshot(observed))).nodes["n"]
    assert back.status == status


@pytest.mark.parametrize(
    "node",
    [NodeObservation(), NodeObservation(raw_status="x", unreachable="y")],
    ids=["neither", "both"],
)
def test_dump_refuses_a_node_with_neither_or_both(node: NodeObservation) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        dump_snapshot(Observed(nodes={"n": node}))


def status_texts() -> st.SearchStrategy[str]:
    samples = [p.read_bytes().decode("utf-8") for p in sorted(FIXTURES.glob("*.txt"))]
    return st.one_of(
        st.sampled_from(samples),
        st.text(st.characters(blacklist_categories=["Cs"]), max_size=200),
        st.lists(
            st.sampled_from(["Status : Enabled", "  a : Connected Master", "\t", " ", "", "#011"]),
            max_size=8,
        ).map("\n".join),
    )


names = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=12)
sha = st.text("0123456789abcdef", min_size=64, max_size=64)


@st.composite
def observations(draw: st.DrawFn) -> NodeObservation:
    files = draw(st.none() | st.dictionaries(names, sha, max_size=3))
    if draw(st.booleans()):
        raw = draw(status_texts())
        return NodeObservation(raw_status=raw, status=parse_status(raw), files=files)
    reason = draw(st.text(st.characters(blacklist_categories=["Cs"]), max_size=40))
    return NodeObservation(unreachable=reason, files=files)


timestamps = st.none() | st.datetimes(
    timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-5))])
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    observed_at=timestamps,
    nodes=st.dictionaries(names, observations(), max_size=4),
)
def test_dump_load_round_trip(
    tmp_path: Path, observed_at: dt.datetime | None, nodes: dict[str, NodeObservation]
) -> None:
    observed = Observed(observed_at=observed_at, nodes=nodes)
    text = dump_snapshot(observed)
    assert load_snapshot(write(tmp_path, text)) == observed


def test_an_unreadable_node_round_trips_and_is_not_reachable(tmp_path: Path) -> None:
    observed = Observed(
        nodes={"cms1": NodeObservation(unreadable="'database cluster status' ended early")}
    )
    path = tmp_path / "obs.yaml"
    path.write_text(dump_snapshot(observed), encoding="utf-8")
    back = load_snapshot(path)
    assert back.nodes["cms1"].unreadable == "'database cluster status' ended early"
    assert not back.nodes["cms1"].reachable
    assert back.nodes["cms1"].why_not == "'database cluster status' ended early"


def test_an_incomplete_status_is_never_written_without_its_raw_text() -> None:
    status = parse_status("Status : Enabled\nNodes:\n  10.0.0.1 (me) : Connected Master\n")
    assert status.incomplete
    with pytest.raises(ValueError, match="incomplete status needs its raw text"):
        dump_snapshot(Observed(nodes={"cms1": NodeObservation(status=status)}))
