"""Loading specs: YAML positions, file-level errors, pydantic errors mapped to lines,
the checked-in example specs, and the helpers for the planner."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from certgen import NOW, VALID_SPEC, VALID_SPEC_LINES, write_file, write_pki, write_spec
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from reconciler.common.diagnostics import Diagnostic, Severity
from reconciler.common.errors import SpecError
from reconciler.spec.loader import (
    LoadedSpec,
    load_spec,
    read_local_files,
    resolve_spec_path,
    spec_digest,
)
from reconciler.spec.local_file import LocalFile
from reconciler.spec.yaml_file import load_yaml_document
from reconciler.spec.yaml_source import SourcePos, YamlDocument, field_name

REPO = Path(__file__).resolve().parent.parent
BAD = Path(__file__).parent / "fixtures" / "specs" / "bad"


def diagnostics_of(exc: SpecError) -> list[Diagnostic]:
    return [d for d in exc.diagnostics if isinstance(d, Diagnostic)]


def load_error(path: Path, **kwargs: object) -> list[Diagnostic]:
    with pytest.raises(SpecError) as info:
        load_spec(path, **kwargs)  # type: ignore[arg-type]
    return diagnostics_of(info.value)


# --- diagnostics ----------------------------------------------------------------------


def test_diagnostic_render() -> None:
    d = Diagnostic(
        Severity.ERROR, "specs/x.yaml", 12, 5, "nodes[1].address", "duplicate address 10.0.0.1"
    )
    assert d.render() == "specs/x.yaml:12:5: error: nodes[1].address: duplicate address 10.0.0.1"
    whole = Diagnostic(Severity.WARNING, "specs/x.yaml", None, None, "", "odd")
    assert whole.render() == "specs/x.yaml: warning: odd"


# --- yaml_source -------------------------------------------------------------------------

DOC = """\
version: 1
nodes:
  - name: a
    address: 10.0.0.1
  - {name: b, address: 10.0.0.2}
base: &base {port: 22}
ssh:
  <<: *base
  user: admin
"""


def test_positions_of_keys_and_items() -> None:
    doc = YamlDocument.from_text(DOC, Path("d.yaml"))
    assert doc.position(("version",)) == SourcePos(1, 1)
    assert doc.position(("nodes", 0)) == SourcePos(3, 5)
    assert doc.position(("nodes", 0, "address")) == SourcePos(4, 5)
    assert doc.value_position(("nodes", 0, "address")) == SourcePos(4, 14)
    assert doc.position(("nodes", 1, "address")) == SourcePos(5, 15)
    assert doc.position(("ssh", "user")) == SourcePos(9, 3)


def test_position_falls_back_to_closest_parent() -> None:
    doc = YamlDocument.from_text(DOC, Path("d.yaml"))
    assert doc.position(("nodes", 1, "role")) == SourcePos(5, 5)
    assert doc.position(("nodes", 7)) == SourcePos(2, 1)
    # a key merged in with `<<:` has no position of its own: its mapping's
    assert doc.position(("ssh", "port")) == SourcePos(7, 1)
    assert doc.position(()) == SourcePos(1, 1)


def test_data_is_plain_python() -> None:
    doc = YamlDocument.from_text(DOC + "flag: yes\nn: 1.5\nnothing:\n", Path("d.yaml"))
    assert doc.data["ssh"] == {"user": "admin", "port": 22}
    assert type(doc.data) is dict and type(doc.data["nodes"]) is list
    assert type(doc.data["nodes"][0]["name"]) is str
    assert doc.data["flag"] == "yes"  # YAML 1.2: not a boolean
    assert type(doc.data["n"]) is float and doc.data["nothing"] is None


def test_field_name() -> None:
    assert field_name(("nodes", 1, "address")) == "nodes[1].address"
    assert field_name(()) == ""
    assert field_name(("policy", "maintenance_windows", 0, "days", 2)) == (
        "policy.maintenance_windows[0].days[2]"
    )


def one_file_error(path: Path) -> Diagnostic:
    with pytest.raises(SpecError) as info:
        load_yaml_document(path)
    (d,) = diagnostics_of(info.value)
    assert d.severity is Severity.ERROR and d.field == ""
    assert str(info.value) == d.render()
    return d


def test_syntax_error_has_line_and_column() -> None:
    d = one_file_error(BAD / "syntax_error.yaml")
    assert (d.line, d.column) == (5, 1)
    assert d.message == (
        "YAML syntax error: while parsing a flow mapping (line 4): expected ',' or '}', "
        "but got '<stream end>'"
    )


def test_tab_indentation() -> None:
    d = one_file_error(BAD / "tab_indent.yaml")
    assert (d.line, d.column) == (4, 1)
    assert "found character '\\t' that cannot start any token" in d.message


def test_duplicate_key_never_echoes_values() -> None:
    d = one_file_error(BAD / "duplicate_key.yaml")
    assert (d.line, d.column) == (8, 5)
    assert d.message == 'duplicate key "address" in the mapping that starts on line 6'
    assert "s3cr3t" not in d.render()


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    d = one_file_error(BAD / "top_level_list.yaml")
    assert d.line == 2
    assert d.message.endswith("but the file is a list")
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    assert one_file_error(empty).message.endswith("but the file is empty")
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("hello\n")
    assert one_file_error(scalar).message.endswith("but the file is a string")


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    d = one_file_error(tmp_path / "nope.yaml")
    assert d.message == "cannot read spec file: No such file or directory"
    d = one_file_error(tmp_path)
    assert d.message == "cannot read spec file: Is a directory"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"version: 1\ncluster: caf\xe9\n")
    d = one_file_error(path)
    assert (d.line, d.message) == (2, "spec file is not valid UTF-8")


def test_multiple_documents_are_refused(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "version: 1\n---\nversion: 1\n")
    d = one_file_error(path)
    assert d.line == 2
    assert "expected a single document" in d.message


def test_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 7)]
    d = one_file_error(write_spec(tmp_path, "\n".join(lines) + "\n"))
    assert d.message.startswith("document too large")


# --- pydantic errors mapped to lines -------------------------------------------------------


def test_unknown_field_lists_allowed_fields() -> None:
    diags = load_error(BAD / "unknown_field.yaml", check_files=False)
    unknown = next(d for d in diags if d.field == "ssh.knwon_hosts")
    assert unknown.line == 15
    assert unknown.message == (
        "unknown field 'knwon_hosts'; did you mean 'known_hosts'? (allowed here: user, "
        "password_env, key, agent, known_hosts, port, connect_timeout, command_timeout)"
    )
    missing = next(d for d in diags if d.field == "ssh.known_hosts")
    assert missing.line == 13
    assert missing.message.startswith("missing required field 'known_hosts'")


def test_wrong_types() -> None:
    diags = load_error(BAD / "wrong_types.yaml", check_files=False)
    assert [(d.field, d.line) for d in diags] == [
        ("nodes[0].mmp_port", 6),
        ("nodes[2]", 8),
        ("policy.paused", 16),
    ]
    assert diags[0].message == (
        "must be a valid integer, unable to parse string as an integer, got 'twenty-two'"
    )
    assert diags[1].message == (
        "must be a mapping with fields name, address, role, mmp_host, mmp_port, certificates, "
        "got 'n3'"
    )
    assert diags[2].message == "must be a valid boolean, got a list"


def test_bad_values() -> None:
    diags = load_error(BAD / "bad_values.yaml", check_files=False)
    assert [(d.field, d.line, d.message) for d in diags] == [
        ("version", 2, "must be one of 1, got 2"),
        ("interface", 4, "must be one of 'a', 'b', 'c' or 'd', got 'e'"),
        ("nodes[1].role", 8, "must be one of 'database' or 'client', got 'db'"),
        ("ssh.port", 14, "must be greater than or equal to 1, got 0"),
    ]
    assert diags[2].column == 41  # at the value `db`


def test_missing_fields_point_at_their_parent() -> None:
    diags = load_error(BAD / "missing_fields.yaml", check_files=False)
    assert [(d.field, d.line) for d in diags] == [
        ("master", 2),
        ("nodes[1].address", 6),
        ("ssh.known_hosts", 12),
    ]
    assert diags[1].message == (
        "missing required field 'address': address on the clustering interface "
        "(what `join` targets)"
    )


def test_name_pattern_message(tmp_path: Path) -> None:
    path = write_spec(tmp_path, VALID_SPEC.replace("cluster: test", "cluster: emea prod"))
    (d,) = load_error(path, check_files=False)
    assert (d.field, d.line) == ("cluster", 2)
    assert d.message == (
        "must start with a letter or digit and contain only letters, digits, '_', '.' and "
        "'-', got 'emea prod'"
    )


def test_empty_nodes(tmp_path: Path) -> None:
    text = VALID_SPEC.replace(
        "nodes:\n  - {name: n1, address: 10.0.0.1}\n  - {name: n2, address: 10.0.0.2}\n"
        "  - {name: n3, address: 10.0.0.3}\n",
        "nodes: []\n",
    )
    (d,) = load_error(write_spec(tmp_path, text), check_files=False)
    assert (d.field, d.line) == ("nodes", 6)
    assert d.message.startswith("must have at least 1 item")


# --- whole load: files, warnings, helpers -----------------------------------------------------


@pytest.mark.parametrize("name", ["example.yaml", "lab.yaml"])
def test_checked_in_specs_load_without_errors(name: str) -> None:
    loaded = load_spec(REPO / "specs" / name)
    # git checks keys out 0644: a permission warning is expected there, nothing else
    for w in loaded.warnings:
        assert w.severity is Severity.WARNING
        assert "accessible by group/others" in w.message, w.render()
    first = (REPO / "specs" / name).read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../schemas/cluster-spec.schema.json"


def test_example_spec_content() -> None:
    spec = load_spec(REPO / "specs" / "example.yaml").spec
    assert spec.cluster == "emea-prod" and spec.master == "cms-lon-1"
    assert [n.address for n in spec.nodes] == ["10.48.36.61", "10.48.36.118", "10.48.36.182"]
    assert spec.nodes[0].mmp_host == "10.48.30.61"
    assert spec.ssh.password_env == "CMS_MMP_PASSWORD"


def test_lab_spec_matches_the_lab() -> None:
    spec = load_spec(REPO / "specs" / "lab.yaml").spec
    assert [(n.name, n.address, n.mmp_port) for n in spec.nodes] == [
        ("cms-lab-1", "127.0.10.1", 2222),
        ("cms-lab-2", "127.0.10.2", 2222),
        ("cms-lab-3", "127.0.10.3", 2222),
    ]
    assert spec.master == "cms-lab-1" and spec.ssh.password_env == "CMSLAB_PASSWORD"


def test_loaded_spec_fields(tmp_path: Path) -> None:
    write_pki(tmp_path)
    path = write_spec(tmp_path)
    loaded = load_spec(path, now=NOW)
    assert isinstance(loaded, LoadedSpec)
    assert loaded.path == path and loaded.base_dir == tmp_path
    assert resolve_spec_path(loaded, "certs/ca.cer") == tmp_path / "certs" / "ca.cer"
    assert resolve_spec_path(loaded, "/etc/x.cer") == Path("/etc/x.cer")


def test_known_hosts_missing_is_a_warning(tmp_path: Path) -> None:
    write_pki(tmp_path)
    (tmp_path / "known_hosts").unlink()
    loaded = load_spec(write_spec(tmp_path), now=NOW)
    (w,) = loaded.warnings
    assert (w.severity, w.field, w.line) == (
        Severity.WARNING,
        "ssh.known_hosts",
        VALID_SPEC_LINES["ssh.known_hosts"],
    )
    assert w.message.startswith("known_hosts: known_hosts file does not exist")
    assert "ssh-keyscan -p 22" in w.message


def test_ssh_key_file_checked(tmp_path: Path) -> None:
    write_pki(tmp_path)
    text = VALID_SPEC.replace("password_env: CMS_TEST_PASSWORD", "key: keys/id_ed25519")
    path = write_spec(tmp_path, text)
    (d,) = load_error(path, now=NOW)
    assert (d.field, d.line) == ("ssh.key", 23)
    assert d.message == (
        f"keys/id_ed25519: ssh key file does not exist (looked for {tmp_path}/keys/id_ed25519)"
    )
    write_file(tmp_path / "keys" / "id_ed25519", b"not shown", 0o640)
    (w,) = load_spec(path, now=NOW).warnings
    assert (w.field, w.line) == ("ssh.key", 23)
    assert "mode 0640" in w.message


def test_check_files_false_skips_file_checks(tmp_path: Path) -> None:
    loaded = load_spec(write_spec(tmp_path), check_files=False)
    assert loaded.warnings == ()
    assert "certificates.ca" in {d.field for d in load_error(write_spec(tmp_path), now=NOW)}


def test_spec_error_message_lists_every_diagnostic() -> None:
    with pytest.raises(SpecError) as info:
        load_spec(BAD / "many_errors.yaml", check_files=False)
    lines = str(info.value).splitlines()
    assert lines[0].endswith("many_errors.yaml: invalid spec (5 errors)")
    assert lines[1:] == [d.render() for d in diagnostics_of(info.value)]


def test_read_local_files(tmp_path: Path) -> None:
    write_pki(tmp_path)
    text = VALID_SPEC.replace(
        "  - {name: n3, address: 10.0.0.3}\n",
        "  - name: n3\n    address: 10.0.0.3\n    certificates:\n      ca: certs/ca.cer\n"
        "      server: {cert: certs/n3.cer, key: keys/n3.key}\n"
        "      client: {cert: certs/client.cer, key: keys/client.key}\n",
    )
    write_file(tmp_path / "certs" / "n3.cer", (tmp_path / "certs" / "server.cer").read_bytes())
    write_file(tmp_path / "keys" / "n3.key", (tmp_path / "keys" / "server.key").read_bytes(), 0o600)
    loaded = load_spec(write_spec(tmp_path, text), now=NOW)
    files = read_local_files(loaded)
    assert sorted(files) == [
        "certs/ca.cer",
        "certs/client.cer",
        "certs/n3.cer",
        "certs/server.cer",
        "keys/client.key",
        "keys/n3.key",
        "keys/server.key",
    ]
    n3 = files["keys/n3.key"]
    assert isinstance(n3, LocalFile)
    assert n3.local_path == str(tmp_path / "keys" / "n3.key")
    assert n3.remote_name == "n3.key"
    assert n3.sha256 == hashlib.sha256((tmp_path / "keys" / "n3.key").read_bytes()).hexdigest()


def test_read_local_files_reports_vanished_files(tmp_path: Path) -> None:
    write_pki(tmp_path)
    loaded = load_spec(write_spec(tmp_path), now=NOW)
    os.unlink(tmp_path / "certs" / "client.cer")
    with pytest.raises(SpecError) as info:
        read_local_files(loaded)
    (d,) = diagnostics_of(info.value)
    assert d.field == "certificates.client.cert"
    assert d.message.startswith("certs/client.cer: file does not exist")


def test_spec_digest(tmp_path: Path) -> None:
    path = write_spec(tmp_path)
    assert spec_digest(path) == hashlib.sha256(VALID_SPEC.encode()).hexdigest()


# --- property: any YAML mapping round-trips with a position for every path ---------------

_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
_scalars = st.one_of(
    st.integers(-(10**6), 10**6),
    st.booleans(),
    st.none(),
    st.text(alphabet="abcXYZ019 .-_/", max_size=12),  # ruamel dumps ": x" unquoted in flow style
)
_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(_keys, children, max_size=4)
    ),
    max_leaves=20,
)


def _paths(data: object, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out = [path]
    if isinstance(data, dict):
        for key, value in data.items():
            out += _paths(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            out += _paths(value, (*path, index))
    return out


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_keys, _values, min_size=1, max_size=5), st.booleans())
def test_yaml_round_trip_keeps_data_and_positions(data: dict[str, object], flow: bool) -> None:
    yaml = YAML()
    yaml.default_flow_style = flow
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    text = buffer.getvalue()
    doc = YamlDocument.from_text(text, Path("p.yaml"))
    assert doc.data == data
    line_count = len(text.splitlines())
    for path in _paths(data):
        pos = doc.position(path)
        assert pos is not None and 1 <= pos.line <= line_count
