"""Read a YAML file (bounded, a regular file only, UTF-8) and parse it with positions.

Problems with the file itself (unreadable, not a regular file, larger than its limit in
:mod:`reconciler.common.file_limits`, not UTF-8) raise
:class:`reconciler.common.errors.SpecError` like the syntax errors of
:mod:`reconciler.spec.yaml_source`, with the line where one is known.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.common.file_limits import SPEC_LIMIT, FileReadError, read_bounded
from reconciler.spec.yaml_source import YamlDocument, file_error, parse_data, parse_document


def load_yaml_document(
    path: Path, *, limit: int = SPEC_LIMIT, what: str = "spec file"
) -> YamlDocument:
    """Read (at most ``limit`` bytes, a regular file only) and parse ``path``.

    Raises SpecError (with diagnostics) when it cannot; ``what`` names the file.
    """
    return parse_document(_read_text(path, limit, what), path, what)


def load_yaml_data(path: Path, *, limit: int = SPEC_LIMIT, what: str = "spec file") -> Any:
    """The top-level value of a YAML file, read and checked as by load_yaml_document
    (ruamel round-trip types; whatever its kind). Raises SpecError."""
    return parse_data(_read_text(path, limit, what), path, what)


def _read_text(path: Path, limit: int, what: str) -> str:
    try:
        raw = read_bounded(path, limit, what)
    except FileReadError as exc:
        raise file_error(path, f"cannot read {what}: {exc.reason}", None, None) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise file_error(path, f"{what} is not valid UTF-8", line, None) from None
