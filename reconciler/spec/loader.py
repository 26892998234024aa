"""Load a spec file: YAML with positions, model validation, cross-field rules, file checks.

:func:`load_spec` is the one entry point the CLI, planner and watch mode use.
It raises :class:`~reconciler.common.errors.SpecError` carrying every diagnostic
(all errors, plus the warnings found alongside them) and otherwise returns a
:class:`LoadedSpec` whose ``warnings`` the caller shows. ``str()`` of the
SpecError is every diagnostic rendered, one per line.

Validation runs in two phases: the YAML shape against the pydantic model
(:mod:`~reconciler.spec.model_errors`, plus the literal-secret scan), then — only
when the shape is valid — the cross-field rules (:mod:`~reconciler.spec.rules`) and
the certificate/key file checks (:mod:`~reconciler.spec.file_checks`). A loaded
spec's files are found with :func:`resolve_spec_path` and read (for the planner and
status) with :func:`read_local_files`; :func:`spec_digest` names the spec file's bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reconciler.common.diagnostics import Diagnostic, Severity, errors_of, sort_diagnostics
from reconciler.common.errors import SpecError
from reconciler.common.file_limits import SPEC_LIMIT, read_bounded
from reconciler.spec.certificate_rules import certificate_sets, set_files
from reconciler.spec.file_checks import check_spec_files, read_or_reason, resolve_path
from reconciler.spec.local_file import LocalFile
from reconciler.spec.model import ClusterSpec, remote_name
from reconciler.spec.model_errors import model_diagnostics
from reconciler.spec.rules import check_spec
from reconciler.spec.secret_rules import check_secrets, redact, secret_paths, secret_values
from reconciler.spec.yaml_file import load_yaml_document
from reconciler.spec.yaml_source import YamlDocument, field_name


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


# --- a loaded spec's files (for the planner and status) ---------------------------


def resolve_spec_path(loaded: LoadedSpec, spec_path: str) -> Path:
    """A path written in the spec, relative to the spec file's directory (``~`` expanded)."""
    return resolve_path(loaded.base_dir, spec_path)


def read_local_files(loaded: LoadedSpec) -> dict[str, LocalFile]:
    """Every certificate/key file the spec names (cluster block and node overrides).

    Keyed by the path as written in the spec; raises SpecError when one cannot be read.
    """
    files: dict[str, LocalFile] = {}
    problems: list[Diagnostic] = []
    for set_path, certs in certificate_sets(loaded.spec):
        for field, spec_path in set_files(set_path, certs):
            if spec_path in files:
                continue
            local = resolve_spec_path(loaded, spec_path)
            data = read_or_reason(local)
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
    "load_spec",
    "read_local_files",
    "resolve_spec_path",
    "spec_digest",
    "spec_error",
    "validate_document",
]
