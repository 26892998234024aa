"""Cross-field rules of a spec, pure over the parsed YAML and the model (no I/O).

Each rule returns :class:`~reconciler.common.diagnostics.Diagnostic` objects located
with the :class:`~reconciler.spec.yaml_source.YamlDocument`. File existence and
certificate contents are checked by :mod:`reconciler.spec.loader` (I/O) with
:mod:`reconciler.spec.cert_checks`.
"""

from __future__ import annotations

import ipaddress
import re
import zoneinfo
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from reconciler.common.addresses import normalize_address
from reconciler.common.diagnostics import Diagnostic
from reconciler.spec.model import CertificateSet, ClusterSpec, NodeRole, remote_name
from reconciler.spec.yaml_source import FieldPath, YamlDocument, field_name

# Mapping keys that hold (or look like they hold) a literal secret.
_SECRET_WORDS = ("password", "passwd", "passphrase", "secret", "token")
_SECRET_EXACT = frozenset({"pass", "pwd", "pw"})
_SECRET_ALLOWED = frozenset({"password_env"})

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$"
)
# Remote file names end up as bare words in `database cluster certs ...`.
_REMOTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def is_secret_key(key: str) -> bool:
    low = key.lower()
    if low in _SECRET_ALLOWED:
        return False
    return low in _SECRET_EXACT or any(word in low for word in _SECRET_WORDS)


def secret_paths(data: Any, path: FieldPath = ()) -> Iterator[FieldPath]:
    """Paths of every mapping key (at any depth) that looks like a literal secret."""
    if isinstance(data, dict):
        for key, value in data.items():
            child = (*path, key)
            if is_secret_key(key):
                yield child
            else:
                yield from secret_paths(value, child)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from secret_paths(value, (*path, index))


def _private_key_paths(data: Any, path: FieldPath = ()) -> Iterator[FieldPath]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _private_key_paths(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _private_key_paths(value, (*path, index))
    elif isinstance(data, str) and "PRIVATE KEY-----" in data:
        yield path


def secret_values(data: Any) -> set[str]:
    """Text that must never appear in a message: values under secret-looking keys and
    inline private keys (all their lines). Short values (< 6 characters) are left out so
    that redacting them cannot garble messages; they are never echoed anyway."""
    found: set[str] = set()

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)
        elif value is not None:
            found.add(str(value))

    for path in secret_paths(data):
        node: Any = data
        for part in path:
            node = node[part]
        collect(node)
    for path in _private_key_paths(data):
        node = data
        for part in path:
            node = node[part]
        found.add(node)
        found.update(line.strip() for line in node.splitlines())
    return {text for text in found if len(text) >= 6}


def redact(diagnostics: list[Diagnostic], secrets: set[str]) -> list[Diagnostic]:
    """Replace every secret text in the messages by ``<redacted>`` (defence in depth)."""
    if not secrets:
        return diagnostics
    ordered = sorted(secrets, key=len, reverse=True)
    out = []
    for diag in diagnostics:
        message = diag.message
        for text in ordered:
            message = message.replace(text, "<redacted>")
        out.append(diag if message == diag.message else replace(diag, message=message))
    return out


def looks_inline(text: str) -> bool:
    """A value pasted where a file name belongs (a PEM block, several lines)."""
    return "\n" in text or "-----BEGIN" in text or "PRIVATE KEY" in text


def check_secrets(doc: YamlDocument) -> list[Diagnostic]:
    """Literal passwords (or inline private keys) anywhere in the raw document. Never echoes."""
    out = [
        doc.error(
            path,
            f"'{path[-1]}' looks like a literal secret; secrets must not be written in the "
            "spec (the value is not shown here). Put the MMP password in an environment "
            "variable and name it with ssh.password_env, or use ssh.key or ssh.agent: true",
        )
        for path in secret_paths(doc.data)
    ]
    out.extend(
        doc.error(
            path,
            "holds an inline private key (not shown); name a key file instead and keep "
            "the key out of the spec",
        )
        for path in _private_key_paths(doc.data)
    )
    return out


def check_spec(doc: YamlDocument, spec: ClusterSpec) -> list[Diagnostic]:
    """Every cross-field rule over a spec that passed model validation."""
    out: list[Diagnostic] = []
    out += check_node_names(doc, spec)
    out += check_addresses(doc, spec)
    out += check_names_are_not_addresses(doc, spec)
    out += check_master(doc, spec)
    out += check_topology(doc, spec)
    out += check_ssh_auth(doc, spec)
    out += check_certificate_roles(doc, spec)
    out += check_remote_file_names(doc, spec)
    out += check_maintenance_windows(doc, spec)
    return out


# --- nodes -------------------------------------------------------------------


def check_node_names(doc: YamlDocument, spec: ClusterSpec) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    seen: dict[str, int] = {}
    for i, node in enumerate(spec.nodes):
        key = node.name.lower()
        if key in seen:
            first = spec.nodes[seen[key]].name
            same = "" if first == node.name else f" '{first}'; names are compared ignoring case"
            out.append(
                doc.error(
                    ("nodes", i, "name"),
                    f"duplicate node name '{node.name}' (also nodes[{seen[key]}]{same})",
                )
            )
        else:
            seen[key] = i
    return out


def is_valid_host(host: str) -> bool:
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        return bool(_HOSTNAME.match(host)) and not host.replace(".", "").isdigit()
    return True


def check_addresses(doc: YamlDocument, spec: ClusterSpec) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for i, node in enumerate(spec.nodes):
        for field_, value in (("address", node.address), ("mmp_host", node.mmp_host)):
            if value is not None and not is_valid_host(value):
                out.append(
                    doc.error(
                        ("nodes", i, field_),
                        f"'{value}' is not an IP address or host name (it is used as a "
                        "bare word in MMP commands)",
                    )
                )
    seen_addr: dict[str, int] = {}
    dup_pairs: set[tuple[int, int]] = set()
    for i, node in enumerate(spec.nodes):
        norm = normalize_address(node.address)
        if norm in seen_addr:
            j = seen_addr[norm]
            dup_pairs.add((j, i))
            out.append(
                doc.error(
                    ("nodes", i, "address"),
                    f"duplicate address {node.address} (also nodes[{j}])",
                )
            )
        else:
            seen_addr[norm] = i
    seen_mmp: dict[tuple[str, int], int] = {}
    for i, node in enumerate(spec.nodes):
        host = node.mmp_host or node.address
        port = node.mmp_port or spec.ssh.port
        endpoint = (normalize_address(host), port)
        if endpoint in seen_mmp:
            j = seen_mmp[endpoint]
            if (j, i) in dup_pairs:
                continue
            field_ = "mmp_host" if node.mmp_host is not None else "address"
            shown = f"[{endpoint[0]}]" if ":" in endpoint[0] else endpoint[0]
            out.append(
                doc.error(
                    ("nodes", i, field_),
                    f"{spec.nodes[j].name} and {node.name} both reach their MMP at "
                    f"{shown}:{port}; each node needs its own (set mmp_host or mmp_port)",
                )
            )
        else:
            seen_mmp[endpoint] = i
    return out


def check_names_are_not_addresses(doc: YamlDocument, spec: ClusterSpec) -> list[Diagnostic]:
    """A node named like another node's address or MMP host: the status shows addresses,
    so such a name would read as the other node."""
    out: list[Diagnostic] = []
    for i, node in enumerate(spec.nodes):
        found = [
            (j, field_)
            for j, other in enumerate(spec.nodes)
            if j != i
            for field_, value in (("address", other.address), ("mmp_host", other.mmp_host))
            if value is not None and normalize_address(value) == normalize_address(node.name)
        ]
        if found:
            j, field_ = found[0]
            out.append(
                doc.error(
                    ("nodes", i, "name"),
                    f"node name '{node.name}' is the {field_} of node '{spec.nodes[j].name}' "
                    f"(nodes[{j}].{field_}); a node's name must not be another node's address "
                    "or mmp_host",
                )
            )
    return out


def check_master(doc: YamlDocument, spec: ClusterSpec) -> list[Diagnostic]:
    names = {n.name: n for n in spec.nodes}
    node = names.get(spec.master)
    if node is None:
        listed = ", ".join(n.name for n in spec.database_nodes) or "none"
        return [
            doc.error(
                ("master",),
                f"master '{spec.master}' is not a node of this spec (database nodes: {listed})",
            )
        ]
    if node.role is not NodeRole.DATABASE:
        return [
            doc.error(
                ("master",),
                f"master '{spec.master}' has role {node.role.value}; the master must be a "
                "database node",
            )
        ]
    return []


def majority_explanation(count: int) -> str:
    """Why ``count`` database nodes is unsafe (even, or fewer than 3)."""
    if count == 1:
        return (
            "1 database node: there is no redundancy, one failure stops all writes. "
            "Use 3 or 5 database nodes"
        )
    need = count // 2 + 1
    half = count // 2
    if count == 2:
        risk = "one failure leaves no master, and without a master there are no writes"
    else:
        survive = (count - 1) // 2
        risk = (
            f"with {half} of {count} on each side of a network split neither side has a "
            f"master (no writes), and the cluster survives only {survive} "
            f"failure{'s' if survive > 1 else ''}, no more than {count - 1} nodes would"
        )
    return (
        f"{count} database nodes: a master needs more than half of the database nodes "
        f"({need} of {count}); {risk}. Use an odd number: 3 or 5 database nodes"
    )


def check_topology(doc: YamlDocument, spec: ClusterSpec) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    count = len(spec.database_nodes)
    limit = spec.policy.max_database_nodes
    if count == 0:
        return [doc.error(("nodes",), "no database nodes: at least one node needs role database")]
    if count > limit:
        out.append(
            doc.error(
                ("nodes",),
                f"{count} database nodes, more than policy.max_database_nodes ({limit}); "
                "give the extra nodes role: client (they connect to the cluster) or raise "
                "the limit",
            )
        )
    if count < 3 or count % 2 == 0:
        explanation = majority_explanation(count)
        if spec.policy.allow_unsafe_topology:
            out.append(
                doc.warning(
                    ("nodes",),
                    f"{explanation}; accepted because policy.allow_unsafe_topology is true",
                )
            )
        else:
            out.append(
                doc.error(
                    ("nodes",),
                    f"{explanation}, or set policy.allow_unsafe_topology: true to accept the risk",
                )
            )
    return out


# --- ssh ---------------------------------------------------------------------


def check_ssh_auth(doc: YamlDocument, spec: ClusterSpec) -> list[Diagnostic]:
    ssh = spec.ssh
    chosen = [
        name
        for name, on in (
            ("password_env", ssh.password_env is not None),
            ("key", ssh.key is not None),
            ("agent: true", ssh.agent),
        )
        if on
    ]
    if len(chosen) == 1:
        return []
    found = "none" if not chosen else " and ".join(chosen)
    return [
        doc.error(
            ("ssh",),
            "ssh needs exactly one way to log in to the MMP: password_env (the name of an "
            "environment variable holding the password), key (a private key file) or "
            f"agent: true; found {found}",
        )
    ]


# --- certificates ------------------------------------------------------------


def certificate_sets(spec: ClusterSpec) -> list[tuple[FieldPath, CertificateSet]]:
    """The cluster-wide block and every node override, with their field paths."""
    sets: list[tuple[FieldPath, CertificateSet]] = [(("certificates",), spec.certificates)]
    for i, node in enumerate(spec.nodes):
        if node.certificates is not None:
            sets.append((("nodes", i, "certificates"), node.certificates))
    return sets


def check_certificate_roles(doc: YamlDocument, spec: ClusterSpec) -> list[Diagnostic]:
    """Database nodes need a server pair; a client node's own server pair is unused."""
    out: list[Diagnostic] = []
    needs_cluster_pair: list[str] = []
    for i, node in enumerate(spec.nodes):
        if node.role is NodeRole.DATABASE:
            if node.certificates is None:
                if spec.certificates.server is None:
                    needs_cluster_pair.append(node.name)
            elif node.certificates.server is None:
                out.append(
                    doc.error(
                        ("nodes", i, "certificates"),
                        f"database node '{node.name}' needs a server certificate and key, but "
                        "its own certificates block has no server pair (add server: {cert: "
                        "..., key: ...})",
                    )
                )
        elif node.certificates is not None and node.certificates.server is not None:
            out.append(
                doc.warning(
                    ("nodes", i, "certificates", "server"),
                    f"client node '{node.name}' does not use a server pair (a Call Bridge "
                    "that only connects gets `certs <client_key> <client_crt> <ca_crt>`); "
                    "it is ignored",
                )
            )
    if needs_cluster_pair:
        names = ", ".join(f"'{name}'" for name in needs_cluster_pair)
        plural = "s" if len(needs_cluster_pair) > 1 else ""
        out.append(
            doc.error(
                ("certificates",),
                f"database node{plural} {names} use{'' if plural else 's'} the cluster-wide "
                "certificates, which have no server pair: add server: {cert: ..., key: ...} "
                "here or to each database node's own certificates",
            )
        )
    return out


def _set_files(path: FieldPath, certs: CertificateSet) -> list[tuple[FieldPath, str]]:
    files: list[tuple[FieldPath, str]] = [((*path, "ca"), certs.ca)]
    for pair_name, pair in (("server", certs.server), ("client", certs.client)):
        if pair is not None:
            files.append(((*path, pair_name, "cert"), pair.cert))
            files.append(((*path, pair_name, "key"), pair.key))
    return files


def check_remote_file_names(doc: YamlDocument, spec: ClusterSpec) -> list[Diagnostic]:
    """Uploaded files are named by basename on the MMP: safe words, no clashes in one set."""
    out: list[Diagnostic] = []
    for set_path, certs in certificate_sets(spec):
        by_name: dict[str, tuple[FieldPath, str]] = {}
        for path, spec_path in _set_files(set_path, certs):
            if looks_inline(spec_path):
                continue  # reported by check_secrets, never quoted
            name = remote_name(spec_path)
            if not _REMOTE_NAME.match(name):
                out.append(
                    doc.error(
                        path,
                        f"file name '{name}' cannot be used on the MMP: use only letters, "
                        "digits, '.', '_' and '-' (it is uploaded under that name and "
                        "passed to `database cluster certs`)",
                    )
                )
                continue
            other = by_name.get(name)
            if other is not None and _norm_path(other[1]) != _norm_path(spec_path):
                out.append(
                    doc.error(
                        path,
                        f"'{spec_path}' and '{other[1]}' ({field_name(other[0])}) would both "
                        f"be uploaded as '{name}' and overwrite each other; rename one",
                    )
                )
            else:
                by_name.setdefault(name, (path, spec_path))
    return out


def _norm_path(spec_path: str) -> str:
    parts = [p for p in spec_path.replace("\\", "/").split("/") if p not in ("", ".")]
    return "/".join(parts)


# --- policy ------------------------------------------------------------------


def check_maintenance_windows(doc: YamlDocument, spec: ClusterSpec) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for i, window in enumerate(spec.policy.maintenance_windows):
        path: FieldPath = ("policy", "maintenance_windows", i)
        try:
            zoneinfo.ZoneInfo(window.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            out.append(
                doc.error(
                    (*path, "timezone"),
                    f"unknown time zone '{window.timezone}'; use an IANA name such as "
                    "Europe/London or UTC",
                )
            )
        if window.start == window.end:
            out.append(
                doc.error(
                    (*path, "end"),
                    f"the window starts and ends at {window.start}: it is empty",
                )
            )
    return out
