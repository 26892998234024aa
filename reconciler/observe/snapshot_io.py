"""Read and write observation snapshots (``reconcile observe`` / ``--observed``).

File layout (YAML)::

    observed_at: "2026-11-26T03:00:00+00:00"   # optional, ISO 8601 date and time
    nodes:
      cms1:
        status: |                               # raw `database cluster status` text
          Status                : Enabled
          ...
        files:                                  # optional: SFTP root, name -> sha256 hex
          dbclusterserver.key: 3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b
      cms2:
        unreachable: connection refused         # instead of `status`
      cms3:
        unreadable: "'database cluster status' ended without an exit status"
                                                # it answered, but gave no usable status

Every raw status is parsed with :func:`reconciler.observe.status_parser.parse_status`.
The file is read bounded (:data:`reconciler.common.file_limits.SNAPSHOT_LIMIT`, a regular
file only) and a raw status longer than
:data:`reconciler.common.file_limits.STATUS_TEXT_LIMIT` is refused before it is parsed.
Bad input raises :class:`reconciler.common.errors.SpecError` carrying one
:class:`reconciler.common.diagnostics.Diagnostic` per problem (file:line:column and
the field path). Messages never quote values.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, LiteralScalarString

from reconciler.common.diagnostics import Diagnostic, Severity, render_all, sort_diagnostics
from reconciler.common.errors import SpecError
from reconciler.common.file_limits import SNAPSHOT_LIMIT, STATUS_TEXT_LIMIT, format_size
from reconciler.observe.snapshot_model import NodeObservation, Observed
from reconciler.observe.status_parser import parse_status
from reconciler.observe.status_render import Wording, render_status
from reconciler.spec.yaml_file import load_yaml_document
from reconciler.spec.yaml_source import FieldPath, YamlDocument

TOP_KEYS = ("observed_at", "nodes")
NODE_KEYS = ("status", "unreachable", "unreadable", "files")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_HAS_TIME = re.compile(r"\d[Tt ]\d")  # a date alone is not a point in time


def load_snapshot(path: Path) -> Observed:
    """Read a snapshot file; raises SpecError (with diagnostics) on bad input."""
    return snapshot_from_document(load_yaml_document(path, limit=SNAPSHOT_LIMIT, what="snapshot"))


def snapshot_from_document(doc: YamlDocument) -> Observed:
    """Validate an already parsed YAML document as a snapshot."""
    problems: list[Diagnostic] = []
    data: dict[str, Any] = doc.data
    for key in data:
        if key not in TOP_KEYS:
            problems.append(doc.error((key,), f"unknown key (expected one of: {_list(TOP_KEYS)})"))

    observed_at = (
        _observed_at(doc, data.get("observed_at"), problems) if "observed_at" in data else None
    )

    nodes: dict[str, NodeObservation] = {}
    if "nodes" not in data:
        problems.append(
            doc.error((), "missing key `nodes` (a mapping of node name to observation)")
        )
    elif not isinstance(data["nodes"], dict):
        problems.append(
            _at_value(doc, ("nodes",), f"must be a mapping, not {_kind(data['nodes'])}")
        )
    else:
        for name, node in data["nodes"].items():
            observation = _node(doc, ("nodes", name), node, problems)
            if observation is not None:
                nodes[name] = observation

    if problems:
        ordered = sort_diagnostics(problems)
        raise SpecError(render_all(ordered), diagnostics=ordered)
    return Observed(observed_at=observed_at, nodes=nodes)


def _observed_at(doc: YamlDocument, value: Any, problems: list[Diagnostic]) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _HAS_TIME.search(value):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            pass
    problems.append(
        _at_value(
            doc,
            ("observed_at",),
            "must be an ISO 8601 date and time, e.g. 2026-11-26T03:00:00+00:00",
        )
    )
    return None


def _node(
    doc: YamlDocument, path: FieldPath, node: Any, problems: list[Diagnostic]
) -> NodeObservation | None:
    if not isinstance(node, dict):
        problems.append(
            _at_value(
                doc, path, f"must be a mapping with `status` or `unreachable`, not {_kind(node)}"
            )
        )
        return None
    count = len(problems)
    for key in node:
        if key not in NODE_KEYS:
            problems.append(
                doc.error((*path, key), f"unknown key (expected one of: {_list(NODE_KEYS)})")
            )
    given = [key for key in ("status", "unreachable", "unreadable") if key in node]
    has_status = "status" in node
    if len(given) != 1:
        which = ", ".join(f"`{k}`" for k in given) if given else "none"
        problems.append(
            doc.error(
                path,
                f"needs exactly one of `status`, `unreachable` and `unreadable` (has {which})",
            )
        )
    for key in ("status", "unreachable", "unreadable"):
        if key in node and not isinstance(node[key], str):
            problems.append(
                _at_value(doc, (*path, key), f"must be a string, not {_kind(node[key])}")
            )
    raw_status = node.get("status")
    size = len(raw_status.encode("utf-8", "replace")) if isinstance(raw_status, str) else 0
    if size > STATUS_TEXT_LIMIT:
        problems.append(
            _at_value(
                doc,
                (*path, "status"),
                f"the status text of node {path[-1]} is {size} bytes, more than the "
                f"{format_size(STATUS_TEXT_LIMIT)} a `database cluster status` output may "
                "have; refused without parsing it",
            )
        )
    files = _files(doc, (*path, "files"), node.get("files"), problems)
    if len(problems) > count:
        return None
    if has_status:
        raw: str = node["status"]
        return NodeObservation(raw_status=raw, status=parse_status(raw), files=files)
    if "unreadable" in node:
        return NodeObservation(unreadable=node["unreadable"], files=files)
    return NodeObservation(unreachable=node["unreachable"], files=files)


def _files(
    doc: YamlDocument, path: FieldPath, value: Any, problems: list[Diagnostic]
) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.append(
            _at_value(doc, path, f"must be a mapping of file name to sha256, not {_kind(value)}")
        )
        return None
    files: dict[str, str] = {}
    for name, digest in value.items():
        if isinstance(digest, str) and _SHA256.match(digest):
            files[name] = digest.lower()
        else:
            problems.append(
                _at_value(doc, (*path, name), "must be a sha256 digest: 64 hexadecimal characters")
            )
    return files


def _at_value(doc: YamlDocument, path: FieldPath, message: str) -> Diagnostic:
    return doc.diagnostic(Severity.ERROR, path, message, at_value=True)


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _list(keys: tuple[str, ...]) -> str:
    return ", ".join(keys)


# ----------------------------------------------------------------------- dump


def dump_snapshot(observed: Observed) -> str:
    """The snapshot as YAML: load_snapshot of the text gives ``observed`` back.

    Node order is kept; inside a node the keys are `status` / `unreachable`, then
    `files` sorted by name. Raw statuses are literal block scalars (``|``) unless
    a literal block cannot hold the text exactly (e.g. carriage returns), then
    they are double-quoted; every other string is plain, or double-quoted when
    plain would not read back the same. A node must have exactly one of a status
    (raw text, or a parsed status, written as rendered text) and ``unreachable``.
    """
    out: dict[str, Any] = {}
    if observed.observed_at is not None:
        out["observed_at"] = _string(observed.observed_at.isoformat())
    nodes: dict[str, Any] = {}
    for name, node in observed.nodes.items():
        entry: dict[str, Any] = {}
        raw = node.raw_status
        if raw is None and node.status is not None:
            if node.status.incomplete:
                raise ValueError(f"node {name!r}: an incomplete status needs its raw text")
            wording: Wording = "primary" if node.status.wording == "primary" else "master"
            raw = render_status(node.status, wording=wording)
        given = [v for v in (raw, node.unreachable, node.unreadable) if v is not None]
        if len(given) != 1:
            raise ValueError(
                f"node {name!r}: needs exactly one of a status, `unreachable` and `unreadable`"
            )
        if raw is not None:
            entry["status"] = _string(raw, literal=True)
        elif node.unreachable is not None:
            entry["unreachable"] = _string(node.unreachable)
        elif node.unreadable is not None:
            entry["unreadable"] = _string(node.unreadable)
        if node.files is not None:
            entry["files"] = {_string(key, key=True): node.files[key] for key in sorted(node.files)}
        nodes[_string(name, key=True)] = entry
    out["nodes"] = nodes
    return _dump(out)


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.default_flow_style = False
    yaml.width = 4096
    return yaml


def _dump(data: Any) -> str:
    buffer = io.StringIO()
    _yaml().dump(data, buffer)
    return buffer.getvalue()


def _reads_back(value: str, *, as_key: bool) -> bool:
    """True when ``value`` (with its scalar style) survives dump and load."""
    data = {value: 0} if as_key else {"s": value}
    try:
        back = _yaml().load(_dump(data))
    except Exception:  # any emitter/loader trouble counts as "does not survive"
        return False
    return isinstance(back, dict) and list(back.items()) == list(data.items())


def _string(text: str, *, literal: bool = False, key: bool = False) -> str:
    """``text`` in the first scalar style that reads back exactly."""
    styles: list[str] = [LiteralScalarString(text)] if literal and "\n" in text else []
    styles.append(text)
    for candidate in styles:
        if _reads_back(candidate, as_key=key):
            return candidate
    quoted: str = DoubleQuotedScalarString(text)
    return quoted
