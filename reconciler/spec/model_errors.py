"""Pydantic validation errors turned into located, readable diagnostics.

:func:`model_diagnostics` gives one diagnostic per pydantic error at the source
position of the field: unknown fields with a "did you mean", missing fields with
their description, patterns explained in words, and the value found (never for
``password_env``). Pure (no I/O).
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from reconciler.common.diagnostics import Diagnostic, Severity
from reconciler.spec.model import ClusterSpec
from reconciler.spec.yaml_source import FieldPath, YamlDocument

_PATTERN_HELP = {
    r"^[A-Za-z0-9][A-Za-z0-9_.-]*$": (
        "must start with a letter or digit and contain only letters, digits, '_', '.' and '-'"
    ),
    r"^[A-Z_][A-Z0-9_]*$": (
        "must be the NAME of an environment variable (upper-case letters, digits and '_', "
        "not starting with a digit), not the password itself; the value is not shown"
    ),
    r"^([01]\d|2[0-3]):[0-5]\d$": "must be a time HH:MM between 00:00 and 23:59",
    r"^([01]\d|2[0-4]):[0-5]\d$": "must be a time HH:MM between 00:00 and 24:00",
}
_NO_ECHO_FIELDS = frozenset({"password_env"})


def model_diagnostics(
    doc: YamlDocument, exc: ValidationError, *, skip: set[FieldPath] | None = None
) -> list[Diagnostic]:
    """One diagnostic per pydantic error, at the source position of the field."""
    skip = skip or set()
    errors = exc.errors(include_url=False)
    locs = [tuple(e["loc"]) for e in errors]
    out: list[Diagnostic] = []
    for error, loc in zip(errors, locs, strict=True):
        if any(loc[:n] in skip for n in range(1, len(loc) + 1)):
            continue  # reported by the secret scan, without the value
        if error["type"] in ("too_short", "too_long") and any(
            len(other) > len(loc) and other[: len(loc)] == loc for other in locs
        ):
            continue  # pydantic counts the failed items; the item errors say more
        out.append(_model_diagnostic(doc, error, loc))
    return out


def _model_diagnostic(doc: YamlDocument, error: ErrorDetails, loc: FieldPath) -> Diagnostic:
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        return doc.error(loc, _unknown_field_message(loc))
    if kind == "missing":
        model = _model_at(loc[:-1])
        desc = ""
        if model is not None:
            info = model.model_fields.get(str(loc[-1]))
            if info is not None and info.description:
                desc = f": {info.description[0].lower()}{info.description[1:]}"
        return doc.error(loc, f"missing required field '{loc[-1]}'{desc}")
    message = _value_message(error, loc)
    scalar = value is None or isinstance(value, str | int | float | bool)
    return doc.diagnostic(Severity.ERROR, loc, message, at_value=scalar)


def _unknown_field_message(loc: FieldPath) -> str:
    name = str(loc[-1])
    model = _model_at(loc[:-1])
    if model is None:
        return f"unknown field '{name}'"
    allowed = list(model.model_fields)
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown field '{name}'{hint} (allowed here: {', '.join(allowed)})"


def _value_message(error: ErrorDetails, loc: FieldPath) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "string_pattern_mismatch" and str(ctx.get("pattern")) in _PATTERN_HELP:
        text = _PATTERN_HELP[str(ctx["pattern"])]
    elif kind in ("literal_error", "enum"):
        text = f"must be one of {ctx.get('expected')}"
    elif kind == "model_type" or kind == "model_attributes_type":
        model = _model_at(loc)
        fields = f" with fields {', '.join(model.model_fields)}" if model else ""
        text = f"must be a mapping{fields}"
    elif kind in ("tuple_type", "list_type"):
        text = "must be a list"
    else:
        text = error["msg"]
        for prefix, replacement in (
            ("Input should be", "must be"),
            ("String should", "must"),
            ("Tuple should", "must"),
            ("Value should", "must"),
        ):
            if text.startswith(prefix):
                text = replacement + text[len(prefix) :]
                break
    if not any(str(part) in _NO_ECHO_FIELDS for part in loc):
        text += _got(error.get("input"))
    return text


def _got(value: Any) -> str:
    if isinstance(value, dict):
        return ", got a mapping"
    if isinstance(value, list):
        return ", got a list"
    if value is None:
        return ", got nothing (null)"
    if isinstance(value, bool):
        return f", got {str(value).lower()}"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f", got '{shown}'"
    return f", got {value!r}"[:80]


def _model_at(loc: FieldPath) -> type[BaseModel] | None:
    """The pydantic model class that validates the value at ``loc`` (None if not a model)."""
    current: Any = ClusterSpec
    for part in loc:
        current = _unwrap_optional(current)
        if isinstance(part, int):
            args = typing.get_args(current)
            if typing.get_origin(current) in (tuple, list) and args:
                current = args[0]
            else:
                return None
        elif isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(part)
            if info is None:
                return None
            current = info.annotation
        else:
            return None
    current = _unwrap_optional(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _unwrap_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp
