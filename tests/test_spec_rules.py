"""One test per spec validation rule: the message and the exact line of each diagnostic.

Fixtures: tests/fixtures/specs/bad/*.yaml (each says in its first line what is wrong
and where). Files are not checked here (check_files=False); see test_cert_checks.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reconciler.common.addresses import normalize_address
from reconciler.common.diagnostics import Diagnostic, Severity
from reconciler.common.errors import SpecError
from reconciler.spec.identity_rules import is_valid_host
from reconciler.spec.loader import load_spec, validate_document
from reconciler.spec.secret_rules import is_secret_key
from reconciler.spec.yaml_source import YamlDocument

FIXTURES = Path(__file__).parent / "fixtures" / "specs"
BAD = FIXTURES / "bad"
GOOD = FIXTURES / "good"


def errors_of(name: str) -> list[Diagnostic]:
    with pytest.raises(SpecError) as info:
        load_spec(BAD / f"{name}.yaml", check_files=False)
    diags = [d for d in info.value.diagnostics if isinstance(d, Diagnostic)]
    assert diags, "a SpecError must carry diagnostics"
    return diags


def one(name: str) -> Diagnostic:
    diags = errors_of(name)
    assert len(diags) == 1, [d.render() for d in diags]
    return diags[0]


def test_duplicate_node_name() -> None:
    d = one("duplicate_name")
    assert (d.severity, d.field, d.line, d.column) == (Severity.ERROR, "nodes[2].name", 8, 6)
    assert d.message == "duplicate node name 'n2' (also nodes[1])"


def test_duplicate_node_name_ignores_case() -> None:
    d = one("duplicate_name_case")
    assert (d.field, d.line) == ("nodes[1].name", 7)
    assert d.message == (
        "duplicate node name 'N1' (also nodes[0] 'n1'; names are compared ignoring case)"
    )


def test_duplicate_ipv6_address_is_normalised() -> None:
    d = one("duplicate_address_ipv6")
    assert (d.field, d.line, d.column) == ("nodes[1].address", 9, 5)
    assert d.message == "duplicate address 2001:DB8:0:0::1 (also nodes[0])"


def test_duplicate_host_name_ignores_case_and_final_dot() -> None:
    d = one("duplicate_address_hostname")
    assert (d.field, d.line) == ("nodes[1].address", 7)
    assert d.message == "duplicate address CMS1.Example.NET. (also nodes[0])"
    assert d.render().endswith(
        "duplicate_address_hostname.yaml:7:16: error: nodes[1].address: "
        "duplicate address CMS1.Example.NET. (also nodes[0])"
    )


def test_duplicate_mmp_endpoint() -> None:
    d = one("duplicate_mmp_endpoint")
    assert (d.field, d.line) == ("nodes[2].mmp_host", 15)
    assert d.message == (
        "n1 and n3 both reach their MMP at 192.0.2.10:22; each node needs its own "
        "(set mmp_host or mmp_port)"
    )


def test_master_must_be_a_node() -> None:
    d = one("master_unknown")
    assert (d.field, d.line) == ("master", 4)
    assert d.message == (
        "master 'cms-nowhere' is not a node of this spec (database nodes: n1, n2, n3)"
    )


def test_master_must_be_a_database_node() -> None:
    d = one("master_client")
    assert (d.field, d.line) == ("master", 4)
    assert d.message == "master 'n1' has role client; the master must be a database node"


def test_more_database_nodes_than_policy_allows() -> None:
    d = one("too_many_database_nodes")
    assert (d.field, d.line) == ("nodes", 5)
    assert d.message.startswith(
        "5 database nodes, more than policy.max_database_nodes (3); give the extra nodes "
        "role: client"
    )


def test_even_number_of_database_nodes_explains_the_majority_rule() -> None:
    d = one("even_database_nodes")
    assert (d.severity, d.field, d.line) == (Severity.ERROR, "nodes", 5)
    assert "a master needs more than half of the database nodes (3 of 4)" in d.message
    assert "with 2 of 4 on each side of a network split neither side has a master" in d.message
    assert "survives only 1 failure" in d.message
    assert "Use an odd number: 3 or 5 database nodes" in d.message
    assert d.message.endswith("or set policy.allow_unsafe_topology: true to accept the risk")


def test_two_database_nodes_one_failure_leaves_no_master() -> None:
    d = one("two_database_nodes")
    assert (d.field, d.line) == ("nodes", 5)
    assert "(2 of 2); one failure leaves no master" in d.message
    assert "policy.allow_unsafe_topology: true" in d.message


def test_unsafe_topology_allowed_is_a_warning() -> None:
    loaded = load_spec(GOOD / "unsafe_topology_allowed.yaml", check_files=False)
    (w,) = loaded.warnings
    assert (w.severity, w.field, w.line) == (Severity.WARNING, "nodes", 5)
    assert "2 database nodes" in w.message
    assert w.message.endswith("accepted because policy.allow_unsafe_topology is true")


def test_literal_password_is_refused_without_echo() -> None:
    d = one("literal_password")
    assert (d.field, d.line, d.column) == ("ssh.password", 15, 3)
    assert "looks like a literal secret" in d.message
    assert "ssh.password_env" in d.message and "ssh.key" in d.message
    text = (BAD / "literal_password.yaml").read_text()
    assert "correct-horse-battery-staple" in text
    assert "correct-horse-battery-staple" not in d.render()


def test_secret_keys_at_any_depth() -> None:
    diags = errors_of("nested_secrets")
    by_field = {d.field: d for d in diags}
    assert by_field["nodes[1].api_token"].line == 7
    assert by_field["policy.extra.Secret"].line == 16
    assert "looks like a literal secret" in by_field["policy.extra.Secret"].message
    # the unknown parent is still reported, but never the secret's own value
    assert "unknown field 'extra'" in by_field["policy.extra"].message
    for d in diags:
        assert "abc123" not in d.render() and "xyzzy" not in d.render()


def test_password_in_password_env_is_not_echoed() -> None:
    d = one("password_env_is_a_password")
    assert (d.field, d.line) == ("ssh.password_env", 14)
    assert d.message.startswith("must be the NAME of an environment variable")
    assert "hunter2" not in d.render()


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("Password", True),
        ("db_passwd", True),
        ("passphrase", True),
        ("client_secret", True),
        ("token", True),
        ("pwd", True),
        ("password_env", False),
        ("key", False),
        ("known_hosts", False),
        ("passive", False),
    ],
)
def test_secret_key_names(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_ssh_needs_a_login_method() -> None:
    d = one("ssh_no_auth")
    assert (d.field, d.line) == ("ssh", 13)
    assert d.message.startswith("ssh needs exactly one way to log in to the MMP: password_env")
    assert d.message.endswith("found none")


def test_ssh_needs_only_one_login_method() -> None:
    d = one("ssh_two_auth")
    assert (d.field, d.line) == ("ssh", 13)
    assert d.message.endswith("found password_env and agent: true")


def test_database_nodes_need_a_server_pair() -> None:
    d = one("database_node_without_server_pair")
    assert (d.field, d.line) == ("certificates", 9)
    assert d.message.startswith(
        "database nodes 'n1', 'n2', 'n3' use the cluster-wide certificates, which have no "
        "server pair"
    )


def test_database_node_override_needs_a_server_pair() -> None:
    d = one("override_without_server_pair")
    assert (d.field, d.line) == ("nodes[1].certificates", 9)
    assert d.message.startswith("database node 'n2' needs a server certificate and key")


def test_client_nodes_need_no_server_pair() -> None:
    loaded = load_spec(GOOD / "client_node.yaml", check_files=False)
    assert loaded.warnings == ()
    assert [n.name for n in loaded.spec.database_nodes] == ["n1", "n2", "n3"]


def test_address_must_be_a_host_or_ip() -> None:
    d = one("bad_address")
    assert (d.field, d.line) == ("nodes[1].address", 7)
    assert d.message.startswith("'10.0.0.2; remove' is not an IP address or host name")


def test_remote_file_names_must_not_clash() -> None:
    d = one("remote_name_clash")
    assert (d.field, d.line) == ("certificates.client.cert", 12)
    assert d.message == (
        "'certs/b/server.cer' and 'certs/a/server.cer' (certificates.server.cert) would both "
        "be uploaded as 'server.cer' and overwrite each other; rename one"
    )


def test_remote_file_names_must_be_safe_words() -> None:
    d = one("remote_name_unsafe")
    assert (d.field, d.line) == ("certificates.ca", 10)
    assert d.message.startswith("file name 'root ca.cer' cannot be used on the MMP")


def test_maintenance_window_time_zone_and_empty_window() -> None:
    diags = errors_of("maintenance_window")
    assert [(d.field, d.line) for d in diags] == [
        ("policy.maintenance_windows[0].timezone", 19),
        ("policy.maintenance_windows[1].end", 22),
    ]
    assert diags[0].message.startswith("unknown time zone 'Mars/Olympus'")
    assert diags[1].message == "the window starts and ends at 02:00: it is empty"


def test_all_errors_are_reported_at_once() -> None:
    diags = errors_of("many_errors")
    assert [(d.line, d.field) for d in diags] == [
        (4, "master"),
        (5, "nodes"),
        (7, "nodes[1].name"),
        (7, "nodes[1].address"),
        (14, "ssh"),
    ]


@pytest.mark.parametrize("path", sorted(GOOD.glob("*.yaml")), ids=lambda p: p.stem)
def test_good_fixtures_load(path: Path) -> None:
    loaded = load_spec(path, check_files=False)
    assert loaded.spec.version == 1
    assert all(w.severity is Severity.WARNING for w in loaded.warnings)


@pytest.mark.parametrize("path", sorted(BAD.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_bad_fixture_fails_at_the_lines_its_comment_names(path: Path) -> None:
    """Each fixture's first line names its error lines as "(line N)"; they must all appear."""
    comment = path.read_text().splitlines()[0]
    named = {int(n) for n in re.findall(r"\(line (\d+)\)", comment)}
    with pytest.raises(SpecError) as info:
        load_spec(path, check_files=False)
    lines = {d.line for d in info.value.diagnostics if isinstance(d, Diagnostic)}
    assert named <= lines, (comment, lines)


# --- helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("2001:db8::1", "2001:DB8:0:0:0:0:0:1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("Host.Example.NET.", "host.example.net"),
    ],
)
def test_normalize_address_equal(a: str, b: str) -> None:
    assert normalize_address(a) == normalize_address(b)


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("10.48.36.61", True),
        ("fe80::1", True),
        ("[2001:db8::1]", True),
        ("cms-lon-1.example.net", True),
        ("cms_lab", True),
        ("10.48.36", False),
        ("a b", False),
        ("x;reboot", False),
        ("-bad.example", False),
        ("", False),
    ],
)
def test_is_valid_host(host: str, ok: bool) -> None:
    assert is_valid_host(host) is ok


def test_rules_are_pure_over_the_document() -> None:
    text = (BAD / "duplicate_name.yaml").read_text()
    doc = YamlDocument.from_text(text, Path("virtual.yaml"))
    spec, diags = validate_document(doc)
    assert spec is not None
    assert [d.render() for d in diags] == [
        "virtual.yaml:8:6: error: nodes[2].name: duplicate node name 'n2' (also nodes[1])"
    ]


# --- names, MMP endpoints and password_env (issue 8, point 8) --------------------------

INLINE = """version: 1
cluster: test
master: n1
nodes:
{nodes}
certificates:
  ca: certs/ca.cer
  server: {{cert: certs/server.cer, key: keys/server.key}}
  client: {{cert: certs/client.cer, key: keys/client.key}}
ssh: {{password_env: {env}, known_hosts: known_hosts{ssh}}}
"""
TWO = ["  - {name: n1, address: 10.0.0.1}", "  - {name: n2, address: 10.0.0.2}"]
THREE = [*TWO, "  - {name: n3, address: 10.0.0.3}"]


def inline_errors(
    nodes: list[str], *, env: str = "CMS_PASSWORD", ssh: str = ""
) -> list[Diagnostic]:
    text = INLINE.format(nodes="\n".join(nodes), env=env, ssh=ssh)
    _spec, diags = validate_document(YamlDocument.from_text(text, Path("inline.yaml")))
    return [d for d in diags if d.is_error]


def test_name_equal_to_another_nodes_address_is_an_error() -> None:
    (d,) = inline_errors([*TWO, "  - {name: 10.0.0.2, address: 10.0.0.3}"])
    assert (d.file, d.line, d.field) == ("inline.yaml", 7, "nodes[2].name")
    assert d.message == (
        "node name '10.0.0.2' is the address of node 'n2' (nodes[1].address); a node's name "
        "must not be another node's address or mmp_host"
    )


def test_name_equal_to_another_nodes_mmp_host_after_normalisation() -> None:
    nodes = [
        "  - {name: n1, address: 10.0.0.1, mmp_host: CMS-B.Example.NET.}",
        "  - {name: n2, address: 10.0.0.2}",
        "  - {name: cms-b.example.net, address: 10.0.0.3}",
    ]
    (d,) = inline_errors(nodes)
    assert (d.line, d.field) == (7, "nodes[2].name")
    assert "is the mmp_host of node 'n1' (nodes[0].mmp_host)" in d.message


def test_name_equal_to_another_nodes_ipv6_address_in_another_spelling() -> None:
    nodes = [
        "  - {name: n1, address: '2001:db8::250'}",
        "  - {name: n2, address: 10.0.0.2}",
        "  - {name: 2001.db8, address: 10.0.0.3}",  # not an address: no match
    ]
    assert inline_errors(nodes) == []
    assert normalize_address("[2001:0db8:0:0:0:0:0:250]") == normalize_address("2001:db8::250")


def test_name_equal_to_its_own_address_is_fine() -> None:
    assert inline_errors([*TWO, "  - {name: 10.0.0.3, address: 10.0.0.3}"]) == []


def test_same_mmp_endpoint_after_normalisation_is_an_error() -> None:
    nodes = [
        "  - {name: n1, address: 10.0.1.1, mmp_host: '2001:db8::1'}",
        "  - {name: n2, address: 10.0.1.2, mmp_host: '[2001:0DB8:0:0:0:0:0:1]'}",
        "  - {name: n3, address: 10.0.1.3}",
    ]
    (d,) = inline_errors(nodes)
    assert (d.line, d.field) == (6, "nodes[1].mmp_host")
    assert d.message == (
        "n1 and n2 both reach their MMP at [2001:db8::1]:22; each node needs its own "
        "(set mmp_host or mmp_port)"
    )


def test_mmp_host_equal_to_another_nodes_address_with_the_effective_port() -> None:
    nodes = [
        "  - {name: n1, address: 10.0.0.1}",
        "  - {name: n2, address: 10.0.0.2, mmp_host: 10.0.0.1, mmp_port: 2222}",
        "  - {name: n3, address: 10.0.0.3}",
    ]
    (d,) = inline_errors(nodes, ssh=", port: 2222")  # n1's port is 2222 too
    assert (d.line, d.field) == (6, "nodes[1].mmp_host")
    assert d.message.startswith("n1 and n2 both reach their MMP at 10.0.0.1:2222;")
    assert inline_errors(nodes) == []  # n1 on 22, n2 on 2222: two endpoints


@pytest.mark.parametrize(
    "value", ["hunter2", "Cms_Password", "S3cret-Pass!", "1ABC", "'CMS PASSWORD'", "'p@ss w0rd'"]
)
def test_password_env_must_be_an_upper_case_variable_name(value: str) -> None:
    (d,) = inline_errors(THREE, env=value)
    assert (d.field, d.line) == ("ssh.password_env", 12)
    assert d.message.startswith("must be the NAME of an environment variable")
    assert value.strip("'") not in d.render()


@pytest.mark.parametrize("value", ["CMS_MMP_PASSWORD", "_X1", "A"])
def test_password_env_accepts_usual_names(value: str) -> None:
    assert inline_errors(THREE, env=value) == []


def test_password_env_of_another_type_is_not_echoed() -> None:
    (d,) = inline_errors(THREE, env="987654321")
    assert d.field == "ssh.password_env"
    assert "987654321" not in d.render()


def test_an_invalid_password_env_never_reaches_the_transport() -> None:
    """`environment variable <value> is not set` is only ever said of a valid name."""
    from pydantic import ValidationError

    from reconciler.spec.model import SshSpec

    with pytest.raises(ValidationError):
        SshSpec(password_env="hunter2!pw", known_hosts="known_hosts")


def test_a_key_pair_needs_a_key() -> None:
    d = one("key_pair_without_key")
    assert (d.field, d.line) == ("certificates.client", 9)
    assert d.message.startswith(
        "no key: give `key` (a local file that is uploaded) or `key_on_node`"
    )


def test_a_key_is_local_or_on_the_node_not_both() -> None:
    d = one("key_and_key_on_node")
    assert (d.field, d.line) == ("certificates.server.key_on_node", 8)
    assert d.message.startswith("give `key` or `key_on_node`, not both")


def test_key_on_node_is_a_bare_name() -> None:
    d = one("key_on_node_is_a_path")
    assert (d.field, d.line) == ("certificates.server.key_on_node", 8)
    assert "is a path: `key_on_node` is the bare file name" in d.message
