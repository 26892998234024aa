"""Test helper: mint CAs, certificates and keys with cryptography (into tmp_path).

Everything is relative to a fixed ``NOW`` so tests pass ``now=NOW`` to the
code under test and never depend on the wall clock.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)

KeyKind = Literal["ec", "rsa", "ed25519"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def new_key(kind: KeyKind = "ec") -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: PrivateKey

    def cert_pem(self) -> bytes:
        return cert_bytes(self.cert)

    def key_pem(self) -> bytes:
        return key_bytes(self.key)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _sign(builder: x509.CertificateBuilder, key: PrivateKey) -> x509.Certificate:
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def make_cert(
    cn: str,
    *,
    issuer: Issued | None = None,
    now: dt.datetime = NOW,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    key: PrivateKey | None = None,
    kind: KeyKind = "ec",
    is_ca: bool = False,
    issuer_name: x509.Name | None = None,
) -> Issued:
    """A certificate for ``cn`` signed by ``issuer`` (self-signed when None)."""
    key = key or new_key(kind)
    subject = _name(cn)
    signer_key = issuer.key if issuer is not None else key
    if issuer_name is None:
        issuer_name = issuer.cert.subject if issuer is not None else subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(days=1))
        .not_valid_after(not_after or now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    return Issued(_sign(builder, signer_key), key)


def make_ca(
    cn: str = "Test Root CA",
    *,
    now: dt.datetime = NOW,
    not_after: dt.datetime | None = None,
    kind: KeyKind = "ec",
    is_ca: bool = True,
) -> Issued:
    return make_cert(cn, now=now, not_after=not_after, kind=kind, is_ca=is_ca)


def cert_bytes(cert: x509.Certificate, *, der: bool = False) -> bytes:
    encoding = serialization.Encoding.DER if der else serialization.Encoding.PEM
    return cert.public_bytes(encoding)


def key_bytes(
    key: PrivateKey,
    *,
    der: bool = False,
    passphrase: bytes | None = None,
    traditional: bool = False,
) -> bytes:
    encoding = serialization.Encoding.DER if der else serialization.Encoding.PEM
    fmt = (
        serialization.PrivateFormat.TraditionalOpenSSL
        if traditional
        else serialization.PrivateFormat.PKCS8
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase is not None
        else serialization.NoEncryption()
    )
    return key.private_bytes(encoding, fmt, encryption)


@dataclass(frozen=True)
class Pki:
    ca: Issued
    server: Issued
    client: Issued


def make_pki(*, now: dt.datetime = NOW, kind: KeyKind = "ec") -> Pki:
    ca = make_ca(now=now, kind=kind)
    server = make_cert("dbcluster.test", issuer=ca, now=now, kind=kind)
    client = make_cert("postgres", issuer=ca, now=now, kind=kind)
    return Pki(ca, server, client)


def write_file(path: Path, data: bytes, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


def write_pki(directory: Path, pki: Pki | None = None) -> Pki:
    """The files VALID_SPEC names: certs/ca.cer, certs/server.cer, keys/server.key, ..."""
    pki = pki or make_pki()
    write_file(directory / "certs" / "ca.cer", pki.ca.cert_pem())
    write_file(directory / "certs" / "server.cer", pki.server.cert_pem())
    write_file(directory / "keys" / "server.key", pki.server.key_pem(), 0o600)
    write_file(directory / "certs" / "client.cer", pki.client.cert_pem())
    write_file(directory / "keys" / "client.key", pki.client.key_pem(), 0o600)
    write_file(directory / "known_hosts", b"")
    return pki


# A valid spec naming the files of write_pki; VALID_SPEC_LINES gives the line of
# each field (tests assert exact line numbers, keep both in step).
VALID_SPEC_LINES = {
    "nodes": 6,
    "certificates.ca": 14,
    "certificates.server.cert": 16,
    "certificates.server.key": 17,
    "certificates.client.cert": 19,
    "certificates.client.key": 20,
    "ssh": 21,
    "ssh.known_hosts": 25,
}
VALID_SPEC = """\
version: 1
cluster: test
interface: a
master: n1
# nodes
nodes:
  - {name: n1, address: 10.0.0.1}
  - {name: n2, address: 10.0.0.2}
  - {name: n3, address: 10.0.0.3}
policy:
  cert_expiry_warning_days: 30
# certificates
certificates:
  ca: certs/ca.cer
  server:
    cert: certs/server.cer
    key: keys/server.key
  client:
    cert: certs/client.cer
    key: keys/client.key
ssh:
  user: admin
  password_env: CMS_TEST_PASSWORD
  port: 22
  known_hosts: known_hosts
"""


def write_spec(directory: Path, text: str = VALID_SPEC, name: str = "spec.yaml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path
