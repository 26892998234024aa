"""Load a spec file: YAML with positions, model validation, cross-field rules, file checks.

:func:`load_spec` is the one entry point the CLI, planner and watch mode use.
It raises :class:`~reconciler.common.errors.SpecError` carrying every diagnostic
(all errors, plus the warnings found alongside them) and otherwise returns a
:class:`LoadedSpec` whose ``warnings`` the caller shows. ``str()`` of the
SpecError is every diagnostic rendered, one per line.

Validation runs in two phases: the YAML shape against the pydantic model
(plus the literal-secret scan), then — only when the shape is valid — the
cross-field rules and the certificate/key file checks.
"""

from __future__ import annotations

import datetime as dt
import difflib
import errno
import hashlib
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from reconciler.common.diagnostics import Diagnostic, Severity, errors_of, sort_diagnostics
from reconciler.common.errors import SpecError
from reconciler.common.file_limits import (
    CERT_LIMIT,
    KNOWN_HOSTS_LIMIT,
    SPEC_LIMIT,
    FileReadError,
    read_bounded,
)
from reconciler.spec import cert_checks
from reconciler.spec.cert_checks import CertProblem, Part
from reconciler.spec.local_file import LocalFile
from reconciler.spec.model import CertificateSet, ClusterSpec, KeyPair, remote_name
from reconciler.spec.rules import (
    certificate_sets,
    check_secrets,
    check_spec,
    looks_inline,
    redact,
    secret_paths,
    secret_values,
)
from reconciler.spec.yaml_file import load_yaml_document
from reconciler.spec.yaml_source import FieldPath, YamlDocument, field_name


@dataclass(frozen=True)
class LoadedSpec:
    spec: ClusterSpec
    path: Path  # the spec file as given
    base_dir: Path  # absolute directory of the spec file; relative paths start here
    warnings: tuple[Diagnostic, ...]


def load_spec(
    path: Path, *, check_files: bool = True, now: dt.datetime | None = None
) -> LoadedSpec:
    """Read, validate and (with ``check_files``) check the files a spec names.

    Raises SpecError with all diagnostics when there is at least one error.
    ``now`` (default: the current time) is used for certificate validity.
    """
    doc = load_yaml_document(path)
    base_dir = path.absolute().parent
    spec, diagnostics = validate_document(doc)
    if spec is not None and check_files:
        diagnostics += check_spec_files(doc, spec, base_dir, now=now or dt.datetime.now(dt.UTC))
    secrets = secret_values(doc.data) | _password_env_value(doc.data)
    ordered = sort_diagnostics(redact(diagnostics, secrets))
    if spec is None or errors_of(ordered):
        raise spec_error(path, ordered)
    return LoadedSpec(spec=spec, path=path, base_dir=base_dir, warnings=ordered)


def _password_env_value(data: Any) -> set[str]:
    """The MMP password, if its variable is set: never to be shown even if pasted elsewhere."""
    ssh = data.get("ssh") if isinstance(data, dict) else None
    name = ssh.get("password_env") if isinstance(ssh, dict) else None
    value = os.environ.get(name) if isinstance(name, str) and name else None
    return {value} if value is not None and len(value) >= 6 else set()


def spec_error(path: Path, diagnostics: tuple[Diagnostic, ...]) -> SpecError:
    errors = len(errors_of(diagnostics))
    summary = f"{path}: invalid spec ({errors} error{'s' if errors != 1 else ''})"
    return SpecError("\n".join([summary, *(d.render() for d in diagnostics)]), diagnostics)


def validate_document(doc: YamlDocument) -> tuple[ClusterSpec | None, list[Diagnostic]]:
    """Pure: model validation, secret scan and cross-field rules (no file checks)."""
    diagnostics = check_secrets(doc)
    skip = set(secret_paths(doc.data))
    try:
        spec = ClusterSpec.model_validate(doc.data)
    except ValidationError as exc:
        diagnostics += model_diagnostics(doc, exc, skip=skip)
        return None, redact(diagnostics, secret_values(doc.data))
    diagnostics += check_spec(doc, spec)
    return spec, redact(diagnostics, secret_values(doc.data))


# --- pydantic errors -> located diagnostics --------------------------------------

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


# --- file checks (I/O) --------------------------------------------------------------


def resolve_spec_path(loaded: LoadedSpec, spec_path: str) -> Path:
    """A path written in the spec, relative to the spec file's directory (``~`` expanded)."""
    return _resolve(loaded.base_dir, spec_path)


def _resolve(base_dir: Path, spec_path: str) -> Path:
    path = Path(spec_path).expanduser()
    return path if path.is_absolute() else base_dir / path


def _read(path: Path, limit: int = CERT_LIMIT) -> bytes | str:
    """The file's bytes (a regular file, at most ``limit``), or why it cannot be read."""
    try:
        return read_bounded(path, limit, "file")
    except FileReadError as exc:
        return _reason(exc)


def _reason(exc: FileReadError) -> str:
    if exc.missing:
        return f"does not exist (looked for {exc.path})"
    if exc.errno == errno.EISDIR:
        return f"is a directory, not a file ({exc.path})"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"cannot be read: permission denied ({exc.path})"
    return f"cannot be read: {exc.reason} ({exc.path})"


class _FileChecker:
    """Reads each file once and reports each problem of a file once."""

    def __init__(self, doc: YamlDocument, base_dir: Path, now: dt.datetime) -> None:
        self.doc = doc
        self.base_dir = base_dir
        self.now = now
        self.out: list[Diagnostic] = []
        self._cache: dict[tuple[Path, int], bytes | str] = {}
        self._reported: set[tuple[Path, str]] = set()

    def read(self, spec_path: str, limit: int = CERT_LIMIT) -> bytes | str:
        path = _resolve(self.base_dir, spec_path)
        if (path, limit) not in self._cache:
            self._cache[path, limit] = _read(path, limit)
        return self._cache[path, limit]

    def report(self, severity: Severity, field: FieldPath, spec_path: str, message: str) -> None:
        key = (_resolve(self.base_dir, spec_path), f"{severity}:{message}")
        if key in self._reported:
            return
        self._reported.add(key)
        self.out.append(
            self.doc.diagnostic(severity, field, f"{spec_path}: {message}", at_value=True)
        )

    def readable(self, field: FieldPath, spec_path: str, what: str) -> bytes | None:
        if looks_inline(spec_path):
            return None  # pasted content, reported by check_secrets, never quoted
        data = self.read(spec_path)
        if isinstance(data, str):
            self.report(Severity.ERROR, field, spec_path, f"{what} file {data}")
            return None
        return data

    def key_permissions(self, field: FieldPath, spec_path: str) -> None:
        try:
            mode = _resolve(self.base_dir, spec_path).stat().st_mode
        except OSError:
            return
        problem = cert_checks.key_permission_problem(mode)
        if problem is not None:
            self.report(problem.severity, field, spec_path, problem.message)

    def certificate_set(self, path: FieldPath, certs: CertificateSet, warning_days: int) -> None:
        ca_field = (*path, "ca")
        ca_bytes = self.readable(ca_field, certs.ca, "CA certificate")
        ca = None
        if ca_bytes is not None:
            ca, problems = cert_checks.check_ca(ca_bytes, now=self.now, warning_days=warning_days)
            for problem in problems:
                self.report(problem.severity, ca_field, certs.ca, problem.message)
        pairs: list[tuple[str, KeyPair, str | None]] = []
        if certs.server is not None:
            pairs.append(("server", certs.server, None))
        pairs.append(("client", certs.client, cert_checks.CLIENT_CN))
        for name, pair, expected_cn in pairs:
            what = f"{name} certificate"
            cert_field = (*path, name, "cert")
            key_field = (*path, name, "key")
            cert_bytes = self.readable(cert_field, pair.cert, what)
            key_bytes = self.readable(key_field, pair.key, f"{name} key")
            if key_bytes is not None:
                self.key_permissions(key_field, pair.key)
            problems = cert_checks.check_pair(
                cert_bytes,
                key_bytes,
                ca=ca,
                now=self.now,
                warning_days=warning_days,
                expected_cn=expected_cn,
                what=what,
            )
            for problem in problems:
                self._report_problem(problem, cert_field, key_field, pair)

    def _report_problem(
        self, problem: CertProblem, cert_field: FieldPath, key_field: FieldPath, pair: KeyPair
    ) -> None:
        if problem.part is Part.KEY:
            self.report(problem.severity, key_field, pair.key, problem.message)
        else:
            self.report(problem.severity, cert_field, pair.cert, problem.message)


def check_spec_files(
    doc: YamlDocument, spec: ClusterSpec, base_dir: Path, *, now: dt.datetime
) -> list[Diagnostic]:
    """Certificates, keys, ssh.key and known_hosts named by a valid spec (reads files)."""
    checker = _FileChecker(doc, base_dir, now)
    for path, certs in certificate_sets(spec):
        checker.certificate_set(path, certs, spec.policy.cert_expiry_warning_days)
    ssh_key = spec.ssh.key
    if ssh_key is not None and checker.readable(("ssh", "key"), ssh_key, "ssh key") is not None:
        checker.key_permissions(("ssh", "key"), ssh_key)
    known_hosts = checker.read(spec.ssh.known_hosts, KNOWN_HOSTS_LIMIT)
    if isinstance(known_hosts, str) and not known_hosts.startswith("does not exist"):
        checker.report(
            Severity.ERROR, ("ssh", "known_hosts"), spec.ssh.known_hosts, f"file {known_hosts}"
        )
    elif isinstance(known_hosts, str):
        checker.report(
            Severity.WARNING,
            ("ssh", "known_hosts"),
            spec.ssh.known_hosts,
            f"known_hosts file {known_hosts}; the live transport needs it to verify the MMP "
            f"host keys (collect them with `ssh-keyscan -p {spec.ssh.port} <mmp host>` and "
            "check the fingerprints)",
        )
    return checker.out


# --- for the planner and status ---------------------------------------------------


def read_local_files(loaded: LoadedSpec) -> dict[str, LocalFile]:
    """Every certificate/key file the spec names (cluster block and node overrides).

    Keyed by the path as written in the spec; raises SpecError when one cannot be read.
    """
    files: dict[str, LocalFile] = {}
    problems: list[Diagnostic] = []
    for set_path, certs in certificate_sets(loaded.spec):
        named: list[tuple[FieldPath, str]] = [((*set_path, "ca"), certs.ca)]
        for pair_name, pair in (("server", certs.server), ("client", certs.client)):
            if pair is not None:
                named += [((*set_path, pair_name, "cert"), pair.cert)]
                named += [((*set_path, pair_name, "key"), pair.key)]
        for field, spec_path in named:
            if spec_path in files:
                continue
            local = resolve_spec_path(loaded, spec_path)
            data = _read(local)
            if isinstance(data, str):
                problems.append(
                    Diagnostic(
                        Severity.ERROR,
                        str(loaded.path),
                        None,
                        None,
                        field_name(field),
                        f"{spec_path}: file {data}",
                    )
                )
                continue
            files[spec_path] = LocalFile(
                spec_path=spec_path,
                local_path=str(local),
                remote_name=remote_name(spec_path),
                sha256=hashlib.sha256(data).hexdigest(),
            )
    if problems:
        raise spec_error(loaded.path, tuple(problems))
    return files


def spec_digest(path: Path) -> str:
    """sha256 (hex) of the spec file's bytes (read as the loader reads it: bounded)."""
    return hashlib.sha256(read_bounded(path, SPEC_LIMIT, "spec file")).hexdigest()


__all__ = [
    "LoadedSpec",
    "check_spec_files",
    "load_spec",
    "model_diagnostics",
    "read_local_files",
    "resolve_spec_path",
    "spec_digest",
    "spec_error",
    "validate_document",
]
