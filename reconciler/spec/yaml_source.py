"""Read a YAML file and remember where every key and list item came from.

Uses ruamel.yaml's round-trip loader (YAML 1.2: ``yes``/``no``/``on`` stay
strings) for its line/column data, converts the result to plain Python data
(dict/list/str/int/float/bool/None) and keeps an index from field paths such
as ``("nodes", 1, "address")`` to 1-based source positions.

Pure: text in, data and positions out (:mod:`reconciler.spec.yaml_file` reads the
file). Problems with the text (YAML syntax, duplicate keys,
a tag other than the core ones, nesting deeper than :data:`MAX_DEPTH`, more than
:data:`MAX_NODES` nodes, top level not a mapping) raise
:class:`reconciler.common.errors.SpecError` carrying
:class:`~reconciler.common.diagnostics.Diagnostic` objects with line and column.
Messages never quote YAML values (a duplicated key may hold a secret).

Only plain data is accepted: strings, numbers, booleans, null, mappings and
lists (dates and ``<<`` merge keys as YAML resolves them). Any explicit tag but
the core ones (``!!str``, ``!!int``, ``!!float``, ``!!bool``, ``!!null``,
``!!map``, ``!!seq``) is refused with its line -- ``!!python/object/apply:...``
is never constructed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent

from reconciler.common.diagnostics import Diagnostic, Severity
from reconciler.common.errors import SpecError

FieldPath = tuple[str | int, ...]

# Converting expands YAML aliases; a small file could otherwise expand to
# billions of nodes ("billion laughs"). A cluster spec has a few hundred.
MAX_NODES = 100_000
# Mappings and lists inside each other; a spec needs 5 levels, a snapshot 4.
MAX_DEPTH = 50
_CORE_TAGS = frozenset(
    {"!"}
    | {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")}
)


@dataclass(frozen=True)
class SourcePos:
    line: int  # 1-based
    column: int  # 1-based


def field_name(field_path: Sequence[str | int]) -> str:
    """``("nodes", 1, "address")`` -> ``"nodes[1].address"``; ``()`` -> ``""``."""
    out = ""
    for part in field_path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass(frozen=True)
class _Positions:
    key: dict[FieldPath, SourcePos] = field(default_factory=dict)
    value: dict[FieldPath, SourcePos] = field(default_factory=dict)


class YamlDocument:
    """A parsed YAML file: plain ``data`` plus the source position of every node."""

    def __init__(self, path: Path, data: Any, positions: _Positions) -> None:
        self.path = path
        self.data = data
        self._positions = positions

    @classmethod
    def from_text(cls, text: str, path: Path) -> YamlDocument:
        """Parse ``text`` as if read from ``path`` (pure; used by tests and yaml_file)."""
        return parse_document(text, path)

    def position(self, field_path: Sequence[str | int]) -> SourcePos | None:
        """Where the field starts (its key, or its list item); falls back to the closest parent."""
        path = tuple(field_path)
        while True:
            pos = self._positions.key.get(path)
            if pos is not None:
                return pos
            if not path:
                return None
            path = path[:-1]

    def value_position(self, field_path: Sequence[str | int]) -> SourcePos | None:
        """Where the field's value starts; falls back to :meth:`position`."""
        pos = self._positions.value.get(tuple(field_path))
        return pos if pos is not None else self.position(field_path)

    def field_name(self, field_path: Sequence[str | int]) -> str:
        return field_name(field_path)

    def diagnostic(
        self,
        severity: Severity,
        field_path: Sequence[str | int],
        message: str,
        *,
        at_value: bool = False,
    ) -> Diagnostic:
        """A diagnostic located at ``field_path`` (its key, or its value with ``at_value``)."""
        pos = self.value_position(field_path) if at_value else self.position(field_path)
        return Diagnostic(
            severity=severity,
            file=str(self.path),
            line=pos.line if pos else None,
            column=pos.column if pos else None,
            field=field_name(field_path),
            message=message,
        )

    def error(self, field_path: Sequence[str | int], message: str) -> Diagnostic:
        return self.diagnostic(Severity.ERROR, field_path, message)

    def warning(self, field_path: Sequence[str | int], message: str) -> Diagnostic:
        return self.diagnostic(Severity.WARNING, field_path, message)


class _Refused(YAMLError):
    """Plain data only, nested at most MAX_DEPTH, at most MAX_NODES nodes."""

    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


class _CheckedComposer(Composer):
    """ruamel's composer, refusing unknown tags, deep nesting and huge node counts
    before anything is constructed (and before Python's recursion limit is near)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent):
            return super().compose_node(parent, index)
        count = getattr(self, "_checked_nodes", 0) + 1
        self._checked_nodes = count
        if count > MAX_NODES:
            raise _Refused(
                f"document too large: more than {MAX_NODES} YAML nodes", event.start_mark
            )
        tag = event.tag
        if tag is not None and str(tag) not in _CORE_TAGS:
            raise _Refused(
                f"YAML tag {_show_tag(str(tag))} is not allowed: a spec holds plain data only "
                "(strings, numbers, booleans, null, mappings and lists)",
                event.start_mark,
            )
        if not isinstance(event, MappingStartEvent | SequenceStartEvent):
            return super().compose_node(parent, index)
        depth = getattr(self, "_checked_depth", 0) + 1
        if depth > MAX_DEPTH:
            raise _Refused(
                f"nested too deeply: more than {MAX_DEPTH} levels of mappings and lists",
                event.start_mark,
            )
        self._checked_depth = depth
        try:
            return super().compose_node(parent, index)
        finally:
            self._checked_depth = depth - 1


def _show_tag(tag: str) -> str:
    short = (
        "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,") else tag
    )
    return f"'{short[:60]}...'" if len(short) > 60 else f"'{short}'"


def parse_data(text: str, path: Path, what: str = "spec file") -> Any:
    yaml = YAML(typ="rt")
    yaml.Composer = _CheckedComposer
    yaml.allow_duplicate_keys = False
    try:
        return yaml.load(text.removeprefix("\ufeff"))
    except _Refused as exc:
        mark = exc.mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        raise file_error(path, exc.message, line, column) from None
    except DuplicateKeyError as exc:
        raise _duplicate_key_error(path, exc) from None
    except MarkedYAMLError as exc:
        raise _syntax_error(path, exc) from None
    except YAMLError as exc:
        raise file_error(path, f"YAML error: {type(exc).__name__}", None, None) from None
    except RecursionError:  # not expected past the depth check; never a traceback
        raise file_error(path, f"{what} is nested too deeply", None, None) from None
    except ValueError as exc:  # a constructor refused a value, e.g. an int of 5000 digits
        reason = "a number has too many digits" if "digits" in str(exc) else "a bad value"
        raise file_error(path, f"YAML error: {reason}", None, None) from None


def parse_document(text: str, path: Path, what: str = "spec file") -> YamlDocument:
    loaded = parse_data(text, path, what)

    if not isinstance(loaded, CommentedMap):
        kind = "empty" if loaded is None else f"a {_kind(loaded)}"
        lc = getattr(loaded, "lc", None)
        line = lc.line + 1 if lc is not None and lc.line is not None else 1
        column = lc.col + 1 if lc is not None and lc.col is not None else 1
        raise file_error(
            path,
            f"the top level of a spec must be a mapping (version:, cluster:, nodes:, ...), "
            f"but the file is {kind}",
            line,
            column,
        )
    positions = _Positions()
    counter = [0]
    data = _convert(loaded, (), positions, counter, path)
    positions.key[()] = SourcePos(loaded.lc.line + 1, loaded.lc.col + 1)
    return YamlDocument(path, data, positions)


def _convert(
    node: Any, path: FieldPath, positions: _Positions, counter: list[int], file: Path
) -> Any:
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise file_error(
            file, f"document too large: more than {MAX_NODES} YAML nodes after aliases", None, None
        )
    if len(path) > MAX_DEPTH:  # aliases inside aliases can nest deeper than the text does
        raise file_error(
            file,
            f"nested too deeply: more than {MAX_DEPTH} levels of mappings and lists after aliases",
            None,
            None,
        )
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        for key, value in node.items():
            name = _key_name(key)
            child = (*path, name)
            _record(positions, child, node.lc.data.get(key))
            out[name] = _convert(value, child, positions, counter, file)
        return out
    if isinstance(node, CommentedSeq):
        items: list[Any] = []
        for index, value in enumerate(node):
            child = (*path, index)
            lc = node.lc.data.get(index)
            if lc is not None:
                pos = SourcePos(lc[0] + 1, lc[1] + 1)
                positions.key[child] = pos
                positions.value[child] = pos
            items.append(_convert(value, child, positions, counter, file))
        return items
    return _scalar(node)


def _record(positions: _Positions, path: FieldPath, lc: Any) -> None:
    if lc is None:  # keys merged in with `<<:` have no position of their own
        return
    positions.key[path] = SourcePos(lc[0] + 1, lc[1] + 1)
    if len(lc) >= 4:
        positions.value[path] = SourcePos(lc[2] + 1, lc[3] + 1)


def _scalar(node: Any) -> Any:
    if node is None or isinstance(node, bool):
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, dt.datetime):
        return dt.datetime.fromisoformat(node.isoformat())
    if isinstance(node, dt.date):
        return dt.date(node.year, node.month, node.day)
    if isinstance(node, TaggedScalar):
        return str(node.value)
    return str(node)


def _key_name(key: Any) -> str:
    if isinstance(key, str):
        return str(key)
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def file_error(path: Path, message: str, line: int | None, column: int | None) -> SpecError:
    diag = Diagnostic(Severity.ERROR, str(path), line, column, "", message)
    return SpecError(diag.render(), diagnostics=(diag,))


def _syntax_error(path: Path, exc: MarkedYAMLError) -> SpecError:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    message = f"YAML syntax error: {problem}"
    if exc.context and exc.problem and exc.context_mark is not None:
        message = (
            f"YAML syntax error: {exc.context} (line {exc.context_mark.line + 1}): {exc.problem}"
        )
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    return file_error(path, message, line, column)


def _duplicate_key_error(path: Path, exc: DuplicateKeyError) -> SpecError:
    # ruamel's own text quotes both values; they may be secrets, so build our own.
    problem = exc.problem or ""
    key = problem.split('"')[1] if problem.count('"') >= 2 else None
    mark = exc.problem_mark
    first = exc.context_mark
    what = f'duplicate key "{key}"' if key is not None else "duplicate key"
    message = what + (f" in the mapping that starts on line {first.line + 1}" if first else "")
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    return file_error(path, message, line, column)
