"""Lab PKI made with `cryptography`: a CA, per-node server certificates, client CN postgres."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

KeyType = ec.EllipticCurvePrivateKey
MAX_CN = 64  # X.509's upper bound for a common name


def new_key() -> KeyType:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str = "cmslab CA", days: int = 3650) -> tuple[KeyType, x509.Certificate]:
    key = new_key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue(
    ca_key: KeyType,
    ca_cert: x509.Certificate,
    cn: str,
    days: int = 825,
    key: KeyType | None = None,
) -> tuple[KeyType, x509.Certificate]:
    key = key or new_key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def key_pem(key: KeyType) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file with mode 0600 from the start (never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def load_key(path: Path) -> KeyType:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path.name}: not an EC private key")
    return key


def load_cert(path: Path) -> x509.Certificate:
    data = path.read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def make_csr(key: KeyType, cn: str) -> bytes:
    csr = x509.CertificateSigningRequestBuilder().subject_name(_name(cn)).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def describe(path: Path) -> list[str]:
    """`pki inspect` output lines for a certificate or CSR."""
    data = path.read_bytes()
    if b"CERTIFICATE REQUEST" in data:
        csr = x509.load_pem_x509_csr(data)
        return [
            f"Certificate signing request: {path.name}",
            f"  Subject: {csr.subject.rfc4514_string()}",
        ]
    cert = load_cert(path)
    before = cert.not_valid_before_utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    after = cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    days = (cert.not_valid_after_utc - dt.datetime.now(dt.UTC)).days
    return [
        f"Certificate: {path.name}",
        f"  Subject: {cert.subject.rfc4514_string()}",
        f"  Issuer: {cert.issuer.rfc4514_string()}",
        f"  Serial: {cert.serial_number:x}",
        f"  Not valid before: {before}",
        f"  Not valid after: {after}",
        f"  Expires in: {days} days",
    ]
