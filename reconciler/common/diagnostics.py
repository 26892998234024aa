"""Diagnostics: one problem found in a spec file, with its place in the file.

Pure data. Rendered like a compiler message so editors can jump to it::

    specs/x.yaml:12:5: error: nodes[1].address: duplicate address 10.0.0.1 (also nodes[0])
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Diagnostic:
    severity: Severity
    file: str
    line: int | None  # 1-based
    column: int | None  # 1-based
    field: str  # dotted path like "nodes[1].address" ("" for the whole file)
    message: str

    def render(self) -> str:
        location = self.file
        if self.line is not None:
            location += f":{self.line}"
            if self.column is not None:
                location += f":{self.column}"
        field = f"{self.field}: " if self.field else ""
        return f"{location}: {self.severity.value}: {field}{self.message}"

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR


def errors_of(diagnostics: Iterable[Diagnostic]) -> tuple[Diagnostic, ...]:
    return tuple(d for d in diagnostics if d.severity is Severity.ERROR)


def warnings_of(diagnostics: Iterable[Diagnostic]) -> tuple[Diagnostic, ...]:
    return tuple(d for d in diagnostics if d.severity is Severity.WARNING)


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> tuple[Diagnostic, ...]:
    """File order: by file, line, column (unknown positions first), then message."""
    return tuple(
        sorted(
            diagnostics,
            key=lambda d: (d.file, d.line or 0, d.column or 0, d.field, d.message),
        )
    )


def render_all(diagnostics: Iterable[Diagnostic]) -> str:
    return "\n".join(d.render() for d in diagnostics)
