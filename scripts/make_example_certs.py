"""Generate the EXAMPLE certificates under specs/ (never use them for a real cluster).

A CA (vngtpRootca.cer), a server pair (CN dbcluster.example.net) and a client
pair (CN postgres), RSA 2048, valid 10 years from now, so specs/example.yaml
and specs/lab.yaml load without errors. Names match the ones in Cisco's
documentation samples. Run: ``python -m scripts.make_example_certs [out_dir]``
(default: the repository's specs/ directory). Keys are written chmod 600, but
git checks them out 0644, so a fresh clone shows a permission warning.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 3650
EXAMPLE_ORG = "EXAMPLE ONLY - cms-cluster-reconciler test material"


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, EXAMPLE_ORG),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: rsa.RSAPublicKey
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
    )


def make_ca() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = _key()
    name = _name("Example Root CA (cms-cluster-reconciler)")
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
    return cert, key


def make_leaf(
    ca_cert: x509.Certificate, ca_key: rsa.RSAPrivateKey, cn: str, usage: x509.ObjectIdentifier
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = _key()
    cert = (
        _builder(_name(cn), ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)


def generate(out_dir: Path) -> list[Path]:
    ca_cert, ca_key = make_ca()
    server_cert, server_key = make_leaf(
        ca_cert, ca_key, "dbcluster.example.net", ExtendedKeyUsageOID.SERVER_AUTH
    )
    client_cert, client_key = make_leaf(
        ca_cert, ca_key, "postgres", ExtendedKeyUsageOID.CLIENT_AUTH
    )
    pem = serialization.Encoding.PEM
    files = {
        out_dir / "certs" / "vngtpRootca.cer": (ca_cert.public_bytes(pem), 0o644),
        out_dir / "certs" / "dbclusterserver.cer": (server_cert.public_bytes(pem), 0o644),
        out_dir / "certs" / "dbclusterclient.cer": (client_cert.public_bytes(pem), 0o644),
    }
    for name, key in (("dbclusterserver.key", server_key), ("dbclusterclient.key", client_key)):
        data = key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        files[out_dir / "keys" / name] = (data, 0o600)
    for path, (data, mode) in files.items():
        _write(path, data, mode)
    return list(files)


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "specs"
    for path in generate(out_dir):
        print(f"wrote {path}")
    print("These are EXAMPLE certificates: never use them for a real cluster.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
