"""Certificate and private key checks (cryptography), pure over bytes.

The MMP's ``database cluster certs`` needs: a CA certificate; for database
nodes a server pair; for every node a client pair whose certificate's CN is
exactly ``postgres``; each key matching its certificate; both certificates
signed by the CA; all of them within their validity period. Certificates and
keys may be PEM or DER; keys RSA, EC or Ed25519, unencrypted.

Functions here take bytes and return :class:`CertProblem` objects (the part
they concern and a message); the spec loader reads the files and turns the
problems into located diagnostics. Messages never contain key material.
The one I/O helper is :func:`certificate_expiry` for status output.
"""

from __future__ import annotations

import datetime as dt
import errno
import stat
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PublicKeyTypes,
)
from cryptography.x509.oid import NameOID

from reconciler.common.diagnostics import Severity
from reconciler.common.file_limits import CERT_LIMIT, FileReadError, read_bounded

CLIENT_CN = "postgres"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class Part(StrEnum):
    """Which file of a pair (or the CA) a problem is about; maps to the spec field."""

    CA = "ca"
    CERT = "cert"
    KEY = "key"


@dataclass(frozen=True)
class CertProblem:
    severity: Severity
    part: Part
    message: str


class CertFormatError(ValueError):
    """A file that is not a usable certificate or key; ``str()`` is a safe message."""


class EncryptedKeyError(CertFormatError):
    pass


# --- parsing -----------------------------------------------------------------


def _looks_pem(data: bytes) -> bool:
    return b"-----BEGIN" in data


def load_certificate(data: bytes) -> x509.Certificate:
    """Parse a PEM or DER certificate; raises CertFormatError with a safe message."""
    if b"PRIVATE KEY-----" in data:
        raise CertFormatError("holds a private key, not a certificate (are cert and key swapped?)")
    try:
        if _looks_pem(data):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        fmt = "PEM" if _looks_pem(data) else "DER"
        raise CertFormatError(
            f"is not a valid X.509 certificate (tried {fmt}); expected PEM or DER"
        ) from None


def load_private_key(data: bytes) -> PrivateKey:
    """Parse an unencrypted PEM or DER RSA/EC/Ed25519 key; raises CertFormatError."""
    if _looks_pem(data) and b"PRIVATE KEY-----" not in data:
        if b"CERTIFICATE-----" in data:
            raise CertFormatError(
                "holds a certificate, not a private key (are cert and key swapped?)"
            )
        raise CertFormatError("is not a private key (no PEM 'PRIVATE KEY' block)")
    if b"ENCRYPTED PRIVATE KEY-----" in data or b"Proc-Type: 4,ENCRYPTED" in data:
        raise _encrypted()
    try:
        if _looks_pem(data):
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except TypeError:
        # cryptography: "Password was not given but private key is encrypted"
        raise _encrypted() from None
    except UnsupportedAlgorithm:
        raise CertFormatError("uses an unsupported key algorithm") from None
    except ValueError:
        fmt = "PEM" if _looks_pem(data) else "DER"
        raise CertFormatError(
            f"is not a valid private key (tried {fmt}); expected an unencrypted "
            "PEM or DER RSA, EC or Ed25519 key"
        ) from None
    if not isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise CertFormatError(
            f"holds an unsupported {type(key).__name__.removeprefix('_')} key; "
            "use RSA, EC or Ed25519"
        )
    return key


def _encrypted() -> EncryptedKeyError:
    return EncryptedKeyError(
        "is encrypted (passphrase-protected); the MMP needs an unencrypted key: "
        "decrypt it once with `openssl pkey -in <file> -out <new file>` and keep it chmod 600"
    )


# --- facts about certificates ------------------------------------------------


def common_name(cert: x509.Certificate) -> str | None:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return None
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _spki(public_key: CertificatePublicKeyTypes | PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_matches(cert: x509.Certificate, key: PrivateKey) -> bool:
    return _spki(cert.public_key()) == _spki(key.public_key())


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> str | None:
    """None when ``cert`` was issued by ``ca`` (issuer name and signature); else the reason."""
    if cert.issuer != ca.subject:
        return (
            f"was not issued by the CA: its issuer is '{cert.issuer.rfc4514_string()}', "
            f"the CA is '{ca.subject.rfc4514_string()}'"
        )
    try:
        cert.verify_directly_issued_by(ca)
    except InvalidSignature:
        return "is not signed by the CA's key (the signature does not verify)"
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return "could not be verified against the CA (unsupported signature algorithm)"
    return None


def validity_problems(
    cert: x509.Certificate,
    part: Part,
    *,
    what: str,
    now: dt.datetime,
    warning_days: int,
) -> list[CertProblem]:
    """Expired / not yet valid (errors) and expiring within ``warning_days`` (warning)."""
    now = _aware(now)
    not_before = cert.not_valid_before_utc
    not_after = cert.not_valid_after_utc
    if now < not_before:
        return [
            CertProblem(
                Severity.ERROR,
                part,
                f"{what} is not valid yet: valid from {_day(not_before)} "
                "(check the clock of the machine that issued it)",
            )
        ]
    if now >= not_after:
        days = (now - not_after).days
        return [
            CertProblem(
                Severity.ERROR,
                part,
                f"{what} expired on {_day(not_after)} ({_days(days)} ago); renew it",
            )
        ]
    left = (not_after - now).days
    if not_after - now < dt.timedelta(days=warning_days):
        return [
            CertProblem(
                Severity.WARNING,
                part,
                f"{what} expires on {_day(not_after)}, in {_days(left)} "
                f"(policy.cert_expiry_warning_days: {warning_days}); renew it soon",
            )
        ]
    return []


def _aware(now: dt.datetime) -> dt.datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=dt.UTC)


def _day(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _days(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"


# --- checks over bytes -------------------------------------------------------


def check_ca(
    ca_bytes: bytes, *, now: dt.datetime, warning_days: int
) -> tuple[x509.Certificate | None, list[CertProblem]]:
    """Parse and check the CA certificate; returns it (None if unusable) and its problems."""
    try:
        ca = load_certificate(ca_bytes)
    except CertFormatError as exc:
        return None, [CertProblem(Severity.ERROR, Part.CA, f"CA certificate {exc}")]
    problems = validity_problems(
        ca, Part.CA, what="CA certificate", now=now, warning_days=warning_days
    )
    try:
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = constraints.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        problems.append(
            CertProblem(
                Severity.WARNING,
                Part.CA,
                "CA certificate has no 'basicConstraints CA:TRUE'; TLS verification "
                "(sslmode=verify-ca) may reject it",
            )
        )
    return ca, problems


def check_pair(
    cert_bytes: bytes | None,
    key_bytes: bytes | None,
    *,
    ca: x509.Certificate | None,
    now: dt.datetime,
    warning_days: int,
    expected_cn: str | None = None,
    what: str = "certificate",
) -> list[CertProblem]:
    """Check a certificate and its key: formats, CN, key match, CA signature, validity.

    ``what`` names the pair in messages ("server certificate", "client certificate").
    ``ca`` None skips the signature check (the CA itself was unusable and reported);
    ``cert_bytes`` / ``key_bytes`` None skip that file (it could not be read, reported).
    """
    problems: list[CertProblem] = []
    cert: x509.Certificate | None = None
    key: PrivateKey | None = None
    if cert_bytes is not None:
        try:
            cert = load_certificate(cert_bytes)
        except CertFormatError as exc:
            problems.append(CertProblem(Severity.ERROR, Part.CERT, f"{what} {exc}"))
    key_what = what.replace("certificate", "key") if "certificate" in what else f"{what} key"
    if key_bytes is not None:
        try:
            key = load_private_key(key_bytes)
        except CertFormatError as exc:
            problems.append(CertProblem(Severity.ERROR, Part.KEY, f"{key_what} {exc}"))
    if cert is None:
        return problems

    if expected_cn is not None:
        cn = common_name(cert)
        if cn != expected_cn:
            shown = "missing" if cn is None else f"'{cn}'"
            problems.append(
                CertProblem(
                    Severity.ERROR,
                    Part.CERT,
                    f"{what} CN is {shown}, but it must be exactly '{expected_cn}' "
                    "(CMS database clustering maps the client certificate's CN to the "
                    "database user)",
                )
            )
    if key is not None and not key_matches(cert, key):
        problems.append(
            CertProblem(
                Severity.ERROR,
                Part.KEY,
                f"{key_what} does not match the {what} (their public keys differ)",
            )
        )
    if ca is not None:
        reason = signed_by(cert, ca)
        if reason is not None:
            problems.append(CertProblem(Severity.ERROR, Part.CERT, f"{what} {reason}"))
    problems.extend(
        validity_problems(cert, Part.CERT, what=what, now=now, warning_days=warning_days)
    )
    return problems


def key_permission_problem(mode: int, *, part: Part = Part.KEY) -> CertProblem | None:
    """A warning when a private key file (``st_mode``) is readable by group or others."""
    if mode & (stat.S_IRWXG | stat.S_IRWXO) == 0:
        return None
    return CertProblem(
        Severity.WARNING,
        part,
        f"private key file is accessible by group/others (mode {stat.S_IMODE(mode):04o}); "
        "run chmod 600 on it",
    )


# --- I/O helper for status output -------------------------------------------


def certificate_expiry(path: Path) -> dt.datetime:
    """``notAfter`` (UTC, timezone-aware) of the PEM or DER certificate at ``path``.

    Raises OSError when unreadable or refused (not a regular file, larger than
    :data:`~reconciler.common.file_limits.CERT_LIMIT`), CertFormatError when not a certificate.
    """
    try:
        data = read_bounded(path, CERT_LIMIT, "certificate")
    except FileReadError as exc:
        raise OSError(exc.errno or errno.EINVAL, exc.reason, str(path)) from None
    return load_certificate(data).not_valid_after_utc
