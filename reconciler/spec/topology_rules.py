"""The cluster's shape: how many database nodes, a safe majority, where the master is.

At least one and at most ``policy.max_database_nodes`` database nodes; an even
count or fewer than 3 is refused (a master needs more than half) unless
``policy.allow_unsafe_topology``; the master is a database node of the spec.
Pure (no I/O).
"""

from __future__ import annotations

from reconciler.common.diagnostics import Diagnostic
from reconciler.common.majority import majority_of
from reconciler.spec.model import ClusterSpec, NodeRole
from reconciler.spec.yaml_source import YamlDocument


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
    need = majority_of(count)
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
