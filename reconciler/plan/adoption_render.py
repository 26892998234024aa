"""Adopting a cluster built by hand: the draft as a commented spec file (pure text).

:func:`render_spec` writes the spec as plain text with comments: a header (imported from
which hosts, when in UTC, by `reconcile import`; review and commit), every field the
import knows with a line on what it means, the certificate blocks of
:mod:`reconciler.plan.adoption_files`, the ``ssh:`` block from the flags and the policy's
defaults with the knobs that matter explained. Every value is written plain when YAML
reads it back as the same string, else double-quoted (:func:`scalar`). The command
validates the text with the real loader before it puts the file in place.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import textwrap
from dataclasses import dataclass

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from reconciler.plan.adoption import Draft, DraftNode
from reconciler.plan.adoption_files import CertLayout, PairPaths, SetPaths
from reconciler.spec.model import NodeRole, Policy
from reconciler.spec.topology_rules import majority_explanation


@dataclass(frozen=True)
class SshBlock:
    user: str
    password_env: str
    known_hosts: str  # relative to the spec's folder
    port: int


@dataclass(frozen=True)
class ImportHeader:
    hosts: tuple[str, ...]  # as given with --host
    at: dt.datetime
    fetch_keys: bool
    spec_name: str  # the spec's file name, for the commands in the header


def scalar(value: str) -> str:
    """``value`` as a YAML scalar: plain when it reads back as itself, else double-quoted."""
    try:
        back = YAML(typ="rt").load(io.StringIO(f"k: {value}\n"))
    except YAMLError:
        back = None
    plain = isinstance(back, dict) and back.get("k") == value and isinstance(back["k"], str)
    return value if plain and value == value.strip() and "#" not in value else json.dumps(value)


def render_spec(draft: Draft, layout: CertLayout, ssh: SshBlock, header: ImportHeader) -> str:
    lines = _header(draft, header)
    lines += [
        "version: 1",
        "",
        "# Name of the cluster (from --cluster): used in plans, status output, metrics and the",
        "# apply lock.",
        f"cluster: {scalar(draft.cluster)}",
        "# The MMP interface every node clusters on (`database cluster localnode <interface>`).",
        f"interface: {scalar(draft.interface)}",
        "# The intended master: the node that was master when this file was imported. Name",
        "# another database node here and `reconcile apply` moves the master there with the",
        "# data-safe procedure of docs/assumptions.md (A4), if policy.allow_master_move.",
        f"master: {scalar(draft.master)}",
        "",
        "# Every node of the cluster, master first, in the order the reconciler works through",
        "# them. `address` is the node's address as `database cluster status` lists it (what",
        "# `join` targets); `mmp_host`/`mmp_port` say where its MMP answers SSH.",
        "nodes:",
    ]
    for node in draft.nodes:
        lines += _node(node, layout.for_node(node.name), ssh.port)
    lines += ["", *_certificates(layout), "", *_ssh(ssh), "", *_policy(draft)]
    return "\n".join(lines) + "\n"


def _header(draft: Draft, header: ImportHeader) -> list[str]:
    when = header.at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    keys = (
        "The private keys were copied into keys/ (0600): keep them out of git unless your",
        "repository is meant to hold them.",
    )
    if not header.fetch_keys:
        keys = (
            "The private keys stayed on the nodes (`key_on_node`: never read, copied or",
            "uploaded); `reconcile import --fetch-keys` copies them into keys/ instead.",
        )
    return [
        f"# Imported by `reconcile import` from {', '.join(header.hosts)} on {when},",
        f"# as the cluster ran then: {len(draft.nodes)} node(s), master {draft.master}.",
        "# Review it, then commit it to git. It should plan no changes:",
        f"#   reconcile validate {header.spec_name}",
        f"#   reconcile plan {header.spec_name} --detailed-exitcode   # exit 0: no changes",
        "# Paths are relative to this file. The certificates were copied from the nodes into",
        "# certs/ (certs/<node>/<name> where nodes use one name for different files).",
        *(f"# {line}" for line in keys),
        "",
    ]


def _node(node: DraftNode, certs: SetPaths | None, port: int) -> list[str]:
    named = {"--name": "from --name", "hostname": "its MMP hostname"}.get(
        node.name_from, "made from its address"
    )
    lines = [
        f"  # {node.seen_as} when imported, {node.found}; name: {named}",
        f"  - name: {scalar(node.name)}",
        f"    address: {scalar(node.address)}",
    ]
    if node.role is NodeRole.CLIENT:
        lines.append("    role: client  # a Call Bridge without a database that only `connect`s")
    if node.mmp_host is not None:
        lines.append(f"    mmp_host: {scalar(node.mmp_host)}")
    if node.port != port:
        lines.append(f"    mmp_port: {node.port}")
    if certs is not None:
        lines += ["    certificates:", *_set(certs, "      ")]
    return lines


def _pair(name: str, pair: PairPaths, indent: str) -> list[str]:
    lines = [f"{indent}{name}:", f"{indent}  cert: {scalar(pair.cert)}"]
    if pair.key is not None:
        lines.append(f"{indent}  key: {scalar(pair.key)}")
    if pair.key_on_node is not None:
        lines.append(f"{indent}  key_on_node: {scalar(pair.key_on_node)}  # stays on the node")
    return lines


def _set(certs: SetPaths, indent: str) -> list[str]:
    lines = [f"{indent}ca: {scalar(certs.ca)}"]
    if certs.server is not None:
        lines += _pair("server", certs.server, indent)
    return lines + _pair("client", certs.client, indent)


def _certificates(layout: CertLayout) -> list[str]:
    if layout.shared:
        about = [
            "# Certificates for `database cluster certs`: every node uses these same files",
            "# (same names, same content). A node may override them with its own block.",
        ]
    else:
        about = [
            "# The nodes use different files, so each node above has its own block. This",
            "# cluster-wide block (the master's CA and client pair) is what a node added",
            "# without its own block would use; a database node needs a server pair too.",
        ]
    return [
        *about,
        "# The client certificate's CN must be exactly `postgres`.",
        "certificates:",
        *_set(layout.cluster, "  "),
    ]


def _ssh(ssh: SshBlock) -> list[str]:
    return [
        "# How the reconciler logs in to each node's MMP (from the flags of the import).",
        "ssh:",
        f"  user: {scalar(ssh.user)}",
        "  # The NAME of the environment variable holding the password (never the password).",
        f"  password_env: {scalar(ssh.password_env)}",
        "  # OpenSSH known_hosts file with the MMP host keys; unknown or changed keys are refused.",
        f"  known_hosts: {scalar(ssh.known_hosts)}",
        f"  port: {ssh.port}",
        "  # connect_timeout: 10     # seconds",
        "  # command_timeout: 60     # seconds",
    ]


def _policy(draft: Draft) -> list[str]:
    defaults = Policy()
    count = sum(1 for n in draft.nodes if n.role is NodeRole.DATABASE)
    lines = [
        "# What the reconciler may do on its own: the defaults, which change nothing on a",
        "# cluster that matches this file.",
        "policy:",
        "  # Remove clustered nodes that this file does not list (`database cluster remove`):",
        "  # off, so a member missing here is only reported.",
        f"  allow_remove: {_bool(defaults.allow_remove)}",
        "  # Move the master back to `master` when another node is master (A4).",
        f"  allow_master_move: {_bool(defaults.allow_master_move)}",
    ]
    if count < 3 or count % 2 == 0:
        why = (
            f"The cluster was built with {count} database node(s), which a spec accepts only "
            f"with this: {majority_explanation(count)}."
        )
        lines += [
            *(f"  # {line}" for line in textwrap.wrap(why, 86)),
            "  allow_unsafe_topology: true",
        ]
    limit = max(defaults.max_database_nodes, count)
    lines += [
        "  # Most database nodes allowed in one cluster (Cisco documents 5).",
        f"  max_database_nodes: {limit}",
        "  # Warn when a certificate expires within this many days.",
        f"  cert_expiry_warning_days: {defaults.cert_expiry_warning_days}",
        "  # Other settings, with their defaults:",
        "  # join_concurrency: 1           # nodes joined at the same time",
        "  # action_timeout_seconds: 600   # longest wait for an asynchronous MMP command",
        "  # paused: false                 # watch mode: observe and report only",
        "  # maintenance_windows:          # watch heal mode: destructive steps only inside these",
        '  #   - {days: [sat, sun], start: "02:00", end: "05:00", timezone: Europe/London}',
    ]
    return lines


def _bool(value: bool) -> str:
    return "true" if value else "false"
