"""Every cross-field rule of a spec, in one call: :func:`check_spec`.

The rules are pure over the parsed YAML and the model (no I/O) and live by concept:
:mod:`~reconciler.spec.identity_rules` (names, addresses, MMP endpoints),
:mod:`~reconciler.spec.topology_rules` (database node count, majority, master),
:mod:`~reconciler.spec.secret_rules` (literal secrets, redaction, the SSH login),
:mod:`~reconciler.spec.certificate_rules` (certificate sets, uploaded file names) and
:mod:`~reconciler.spec.policy_rules` (maintenance windows). Each returns
:class:`~reconciler.common.diagnostics.Diagnostic` objects located with the
:class:`~reconciler.spec.yaml_source.YamlDocument`. File existence and certificate
contents are checked by :mod:`reconciler.spec.file_checks` (I/O) with
:mod:`reconciler.spec.cert_checks`.
"""

from __future__ import annotations

from reconciler.common.diagnostics import Diagnostic
from reconciler.spec.certificate_rules import (
    check_certificate_roles,
    check_key_sources,
    check_remote_file_names,
)
from reconciler.spec.identity_rules import (
    check_addresses,
    check_names_are_not_addresses,
    check_node_names,
)
from reconciler.spec.model import ClusterSpec
from reconciler.spec.policy_rules import check_maintenance_windows
from reconciler.spec.secret_rules import check_ssh_auth
from reconciler.spec.topology_rules import check_master, check_topology
from reconciler.spec.yaml_source import YamlDocument


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
    out += check_key_sources(doc, spec)
    out += check_remote_file_names(doc, spec)
    out += check_maintenance_windows(doc, spec)
    return out
