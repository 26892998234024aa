"""What `reconcile validate` reports, in three formats.

``text``: one ``file:line:column: severity: field: message`` line per diagnostic on stderr
and ``OK``/``INVALID`` per spec (as always). ``json``: one document on stdout, every
diagnostic with its file, line, column, severity, field and message
(``schemas/validate-output.schema.json``). ``github``: GitHub Actions workflow commands
(``::error file=...,line=...,col=...,title=...::message``), so a pull request shows each
error and warning on its line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from reconciler.common.diagnostics import Diagnostic, Severity
from reconciler.common.errors import SpecError
from reconciler.common.file_limits import FileReadError
from reconciler.spec.loader import LoadedSpec, load_spec

VALIDATE_FORMAT_VERSION = 1


@dataclass(frozen=True)
class SpecResult:
    """One spec file's verdict and every diagnostic found in it."""

    file: str
    loaded: LoadedSpec | None
    diagnostics: tuple[Diagnostic, ...]

    @property
    def valid(self) -> bool:
        return self.loaded is not None


def validate_file(path: Path) -> SpecResult:
    """Load and check ``path``; never raises for a bad spec (its diagnostics say why)."""
    try:
        loaded = load_spec(path)
    except SpecError as exc:
        found = tuple(d for d in exc.diagnostics if isinstance(d, Diagnostic))
        if not any(d.is_error for d in found):  # a file-level problem without a position
            message = (
                f"cannot read {exc.what}: {exc.reason}"
                if isinstance(exc, FileReadError)
                else str(exc)
            )
            found += (Diagnostic(Severity.ERROR, str(path), None, None, "", message),)
        return SpecResult(str(path), None, found)
    return SpecResult(str(path), loaded, tuple(loaded.warnings))


def _diagnostic_dict(d: Diagnostic) -> dict[str, object]:
    return {
        "file": d.file,
        "line": d.line,
        "column": d.column,
        "severity": d.severity.value,
        "field": d.field,
        "message": d.message,
    }


def render_json(results: list[SpecResult]) -> str:
    document = {
        "format_version": VALIDATE_FORMAT_VERSION,
        "valid": all(r.valid for r in results),
        "specs": [
            {
                "file": r.file,
                "valid": r.valid,
                "cluster": r.loaded.spec.cluster if r.loaded is not None else None,
                "diagnostics": [_diagnostic_dict(d) for d in r.diagnostics],
            }
            for r in results
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(d: Diagnostic) -> str:
    """One workflow command: ``::error file=F,line=L,col=C,title=FIELD::MESSAGE``."""
    props = [f"file={_escape_property(d.file)}"]
    if d.line is not None:
        props.append(f"line={d.line}")
        if d.column is not None:
            props.append(f"col={d.column}")
    if d.field:
        props.append(f"title={_escape_property(d.field)}")
    level = "error" if d.is_error else "warning"
    return f"::{level} {','.join(props)}::{_escape_data(d.message)}"


def render_github(results: list[SpecResult]) -> str:
    lines = [github_annotation(d) for r in results for d in r.diagnostics]
    return "".join(line + "\n" for line in lines)
