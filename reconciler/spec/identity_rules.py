"""Who each node is: unique names, valid unique addresses, one MMP endpoint per node.

Node names (compared ignoring case), ``address`` and ``mmp_host`` that are valid
hosts and not shared, no node reaching its MMP at another node's endpoint, and no
node named like another node's address or ``mmp_host``. Pure (no I/O).
"""

from __future__ import annotations

import ipaddress
import re

from reconciler.common.addresses import normalize_address
from reconciler.common.diagnostics import Diagnostic
from reconciler.spec.model import ClusterSpec
from reconciler.spec.yaml_source import YamlDocument

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$"
)


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
