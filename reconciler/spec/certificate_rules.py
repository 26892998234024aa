"""The certificate sets of a spec and the rules over them (not the files' contents).

:func:`certificate_sets` lists the cluster-wide block and every node override; the
rules check which nodes need a server pair and that the uploaded files' names are
safe and do not clash. Pure (no I/O): the files themselves are checked by
:mod:`reconciler.spec.file_checks` with :mod:`reconciler.spec.cert_checks`.
"""

from __future__ import annotations

import re

from reconciler.common.diagnostics import Diagnostic
from reconciler.spec.model import CertificateSet, ClusterSpec, KeyPair, NodeRole, remote_name
from reconciler.spec.secret_rules import looks_inline
from reconciler.spec.yaml_source import FieldPath, YamlDocument, field_name

# Remote file names end up as bare words in `database cluster certs ...`.
_REMOTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


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


def set_files(path: FieldPath, certs: CertificateSet) -> list[tuple[FieldPath, str]]:
    """The local files a certificate set names, each with its field: CA, then server and
    client certificate and key (a key that lives on the node is no local file)."""
    files: list[tuple[FieldPath, str]] = [((*path, "ca"), certs.ca)]
    for pair_name, pair in _pairs(certs):
        files.append(((*path, pair_name, "cert"), pair.cert))
        if pair.key is not None:
            files.append(((*path, pair_name, "key"), pair.key))
    return files


def node_held_keys(path: FieldPath, certs: CertificateSet) -> list[tuple[FieldPath, str]]:
    """The keys of a certificate set that live on the node (``key_on_node``), with fields."""
    return [
        ((*path, pair_name, "key_on_node"), pair.key_on_node)
        for pair_name, pair in _pairs(certs)
        if pair.key_on_node is not None and pair.key is None  # both: one error is enough
    ]


def _pairs(certs: CertificateSet) -> list[tuple[str, KeyPair]]:
    pairs = [("server", certs.server)] if certs.server is not None else []
    return [*pairs, ("client", certs.client)]


def check_key_sources(doc: YamlDocument, spec: ClusterSpec) -> list[Diagnostic]:
    """Every key pair names its key once: a local file (``key``) or a file on the node."""
    out: list[Diagnostic] = []
    for set_path, certs in certificate_sets(spec):
        for pair_name, pair in _pairs(certs):
            path = (*set_path, pair_name)
            if pair.key is None and pair.key_on_node is None:
                out.append(
                    doc.error(
                        path,
                        "no key: give `key` (a local file that is uploaded) or `key_on_node` "
                        "(the bare name of a key made on the node by `pki csr`)",
                    )
                )
            elif pair.key is not None and pair.key_on_node is not None:
                out.append(
                    doc.error(
                        (*path, "key_on_node"),
                        "give `key` or `key_on_node`, not both: a key is either uploaded from "
                        "here or lives on the node",
                    )
                )
            elif pair.key_on_node is not None and remote_name(pair.key_on_node) != (
                pair.key_on_node
            ):
                out.append(
                    doc.error(
                        (*path, "key_on_node"),
                        f"'{pair.key_on_node}' is a path: `key_on_node` is the bare file name "
                        "the key has on the node (as `pki csr` wrote it)",
                    )
                )
    return out


def check_remote_file_names(doc: YamlDocument, spec: ClusterSpec) -> list[Diagnostic]:
    """Uploaded files are named by basename on the MMP: safe words, no clashes in one set."""
    out: list[Diagnostic] = []
    for set_path, certs in certificate_sets(spec):
        by_name: dict[str, tuple[FieldPath, str]] = {}
        for path, spec_path in set_files(set_path, certs) + node_held_keys(set_path, certs):
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
