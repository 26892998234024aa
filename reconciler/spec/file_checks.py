"""Checking the files a valid spec names: certificates, keys, ssh.key, known_hosts (I/O).

:func:`check_spec_files` reads each file once (bounded, regular files only) and
reports each problem of a file once, located at the field that names it; the
contents are judged by :mod:`reconciler.spec.cert_checks`. :func:`resolve_path`
and :func:`read_or_reason` are how a path written in the spec is found and read.
"""

from __future__ import annotations

import datetime as dt
import errno
from pathlib import Path

from reconciler.common.diagnostics import Diagnostic, Severity
from reconciler.common.file_limits import (
    CERT_LIMIT,
    KNOWN_HOSTS_LIMIT,
    FileReadError,
    read_bounded,
)
from reconciler.spec import cert_checks
from reconciler.spec.cert_checks import CertProblem, Part
from reconciler.spec.certificate_rules import certificate_sets
from reconciler.spec.model import CertificateSet, ClusterSpec, KeyPair
from reconciler.spec.secret_rules import looks_inline
from reconciler.spec.yaml_source import FieldPath, YamlDocument


def resolve_path(base_dir: Path, spec_path: str) -> Path:
    """A path written in the spec, relative to ``base_dir`` (``~`` expanded)."""
    path = Path(spec_path).expanduser()
    return path if path.is_absolute() else base_dir / path


def read_or_reason(path: Path, limit: int = CERT_LIMIT) -> bytes | str:
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
        path = resolve_path(self.base_dir, spec_path)
        if (path, limit) not in self._cache:
            self._cache[path, limit] = read_or_reason(path, limit)
        return self._cache[path, limit]

    def report(self, severity: Severity, field: FieldPath, spec_path: str, message: str) -> None:
        key = (resolve_path(self.base_dir, spec_path), f"{severity}:{message}")
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
            mode = resolve_path(self.base_dir, spec_path).stat().st_mode
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
            key_bytes = None  # a key on the node is not here: the node checks it (`certs`)
            if pair.key is not None:
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
            self.report(problem.severity, key_field, pair.key_ref, problem.message)
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
