"""What a change does to a spec, in words (pure): :func:`describe_spec_changes`.

For a pull request (``reconcile plan --format markdown --base REF``): the spec at the base
revision against the spec now, each with the digests of the files it names, gives one line
per change a reviewer cares about, above the plan: nodes added or removed (and a node's
address, role or MMP endpoint changed), the master, the clustering interface, the
certificates (a file named in a new place, or the same file with new content, the CA, a
node's own set), the SSH settings and the policy. The I/O (reading the base version with
``git show``) is :mod:`reconciler.cli.spec_base`.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel

from reconciler.spec.model import CertificateSet, ClusterSpec, NodeSpec

FileDigests = Mapping[str, str | None]  # a file as the spec names it -> sha256 (None: missing)
NO_CHANGE = "no change to the spec or to the files it names"
_NODE_FIELDS = (("address", "address"), ("mmp_host", "MMP host"), ("mmp_port", "MMP port"),
                ("role", "role"))  # fmt: skip


def _node(n: NodeSpec) -> str:
    return f"{n.name} ({n.address}, {n.role.value})"


def _roles(certs: CertificateSet) -> dict[str, str]:
    """What a certificate set names, by role: local files and keys that live on the node."""
    out = {"CA": certs.ca}
    for pair_name, pair in (("server", certs.server), ("client", certs.client)):
        if pair is None:
            continue
        out[f"{pair_name} certificate"] = pair.cert
        if pair.key is not None:
            out[f"{pair_name} key"] = pair.key
        if pair.key_on_node is not None:
            out[f"{pair_name} key on the node"] = pair.key_on_node
    if certs.server_cn is not None:
        out["server CN"] = certs.server_cn
    return out


def _certificate_changes(
    owner: str,
    old: CertificateSet,
    new: CertificateSet,
    old_files: FileDigests,
    new_files: FileDigests,
) -> list[str]:
    before, after = _roles(old), _roles(new)
    out: list[str] = []
    for role in sorted(before.keys() | after.keys()):
        was, now = before.get(role), after.get(role)
        if was is None and now is not None:
            out.append(f"certificates: {owner} {role} added: {now}")
        elif now is None and was is not None:
            out.append(f"certificates: {owner} {role} removed (was {was})")
        elif was != now:
            out.append(f"certificates: {owner} {role} is now {now} (was {was})")
        elif now is not None and now in new_files and old_files.get(now) != new_files.get(now):
            out.append(f"certificates: {owner} {role} {now} has new content")
    return out


def _fields(old: BaseModel, new: BaseModel) -> list[str]:
    """The fields that differ; scalars with their values."""
    out = []
    for name in type(new).model_fields:
        was, now = getattr(old, name), getattr(new, name)
        if was == now:
            continue
        if isinstance(now, (bool, int, float, str)) or now is None:
            out.append(f"{name} {_value(was)} -> {_value(now)}")
        else:
            out.append(f"{name} changed")
    return out


def _value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _node_changes(old: ClusterSpec, new: ClusterSpec) -> list[str]:
    before = {n.name: n for n in old.nodes}
    after = {n.name: n for n in new.nodes}
    out = [f"node added: {_node(after[name])}" for name in after if name not in before]
    out += [f"node removed: {_node(before[name])}" for name in before if name not in after]
    for name in after.keys() & before.keys():
        was, now = before[name], after[name]
        fields = [
            f"{what} {getattr(was, f)} -> {getattr(now, f)}"
            for f, what in _NODE_FIELDS
            if getattr(was, f) != getattr(now, f)
        ]
        if fields:
            out.append(f"node {name}: " + "; ".join(fields))
    return sorted(out, key=lambda line: not line.startswith("node added"))


def describe_spec_changes(
    old: ClusterSpec | None,
    new: ClusterSpec,
    old_files: FileDigests,
    new_files: FileDigests,
) -> tuple[str, ...]:
    """One line per change from ``old`` (None: the spec is new) to ``new``."""
    if old is None:
        names = ", ".join(n.name for n in new.nodes)
        return (
            f"new spec: cluster {new.cluster}, {len(new.nodes)} node(s) ({names}), "
            f"master {new.master}",
        )
    out: list[str] = []
    if old.cluster != new.cluster:
        out.append(f"cluster renamed: {old.cluster} -> {new.cluster}")
    out += _node_changes(old, new)
    if old.master != new.master:
        out.append(f"master changed: {old.master} -> {new.master}")
    if old.interface != new.interface:
        out.append(f"clustering interface changed: {old.interface} -> {new.interface}")
    if old.database_port != new.database_port:
        out.append(f"database port changed: {old.database_port} -> {new.database_port}")
    out += _certificate_changes(
        "the cluster's", old.certificates, new.certificates, old_files, new_files
    )
    before = {n.name: n.certificates for n in old.nodes}
    for node in new.nodes:
        was = before.get(node.name)
        if node.name not in before or (was is None and node.certificates is None):
            continue
        if was is None:
            out.append(f"certificates: {node.name} now has a certificate set of its own")
        elif node.certificates is None:
            out.append(f"certificates: {node.name} now uses the cluster's certificates")
        else:
            owner = f"{node.name}'s"
            out += _certificate_changes(owner, was, node.certificates, old_files, new_files)
    if ssh := _fields(old.ssh, new.ssh):
        out.append("SSH settings: " + ", ".join(ssh))
    if policy := _fields(old.policy, new.policy):
        out.append("policy: " + ", ".join(policy))
    return tuple(out) or (NO_CHANGE,)
