"""Certificate and key checks: pure functions over bytes, and their use by load_spec."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from certgen import (
    NOW,
    VALID_SPEC,
    VALID_SPEC_LINES,
    Issued,
    key_bytes,
    make_ca,
    make_cert,
    make_pki,
    new_key,
    write_file,
    write_pki,
    write_spec,
)

from reconciler.common.diagnostics import Diagnostic, Severity
from reconciler.common.errors import SpecError
from reconciler.spec import cert_checks
from reconciler.spec.cert_checks import (
    CertFormatError,
    CertProblem,
    EncryptedKeyError,
    Part,
    certificate_expiry,
    check_ca,
    check_pair,
    key_permission_problem,
    load_certificate,
    load_private_key,
)
from reconciler.spec.loader import load_spec

DAY = dt.timedelta(days=1)


def pair(
    issued: Issued,
    ca: Issued | None,
    *,
    cn: str | None = None,
    now: dt.datetime = NOW,
    warning_days: int = 30,
) -> list[CertProblem]:
    return check_pair(
        issued.cert_pem(),
        issued.key_pem(),
        ca=ca.cert if ca else None,
        now=now,
        warning_days=warning_days,
        expected_cn=cn,
        what="client certificate",
    )


def only(problems: list[CertProblem]) -> CertProblem:
    assert len(problems) == 1, problems
    return problems[0]


# --- pure checks ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ec", "rsa", "ed25519"])
def test_valid_pair_has_no_problems(kind: str) -> None:
    pki = make_pki(kind=kind)  # type: ignore[arg-type]
    assert pair(pki.client, pki.ca, cn="postgres") == []
    assert pair(pki.server, pki.ca) == []


def test_der_certificate_and_der_key_are_accepted() -> None:
    pki = make_pki()
    der_cert = pki.client.cert.public_bytes(cert_checks.serialization.Encoding.DER)
    der_key = key_bytes(pki.client.key, der=True)
    assert not der_cert.startswith(b"-----")
    problems = check_pair(
        der_cert, der_key, ca=pki.ca.cert, now=NOW, warning_days=30, expected_cn="postgres"
    )
    assert problems == []
    assert load_certificate(der_cert).subject == pki.client.cert.subject


def test_traditional_pem_key_is_accepted() -> None:
    key = new_key("rsa")
    loaded = load_private_key(key_bytes(key, traditional=True))
    assert loaded.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]


def test_expired_certificate_is_an_error_with_its_date() -> None:
    ca = make_ca()
    cert = make_cert("postgres", issuer=ca, not_before=NOW - 400 * DAY, not_after=NOW - 3 * DAY)
    problem = only(pair(cert, ca, cn="postgres"))
    assert problem.severity is Severity.ERROR
    assert problem.part is Part.CERT
    expiry = (NOW - 3 * DAY).strftime("%Y-%m-%d")
    assert f"client certificate expired on {expiry}" in problem.message
    assert "(3 days ago)" in problem.message


def test_expiring_soon_is_a_warning_with_days_left() -> None:
    ca = make_ca()
    cert = make_cert("postgres", issuer=ca, not_after=NOW + 10 * DAY + dt.timedelta(hours=1))
    problem = only(pair(cert, ca, cn="postgres", warning_days=30))
    assert problem.severity is Severity.WARNING
    assert "in 10 days" in problem.message
    assert "policy.cert_expiry_warning_days: 30" in problem.message
    assert pair(cert, ca, cn="postgres", warning_days=5) == []


def test_not_yet_valid_is_an_error() -> None:
    ca = make_ca()
    cert = make_cert("postgres", issuer=ca, not_before=NOW + 2 * DAY, not_after=NOW + 400 * DAY)
    problem = only(pair(cert, ca, cn="postgres"))
    assert problem.severity is Severity.ERROR
    assert "is not valid yet: valid from" in problem.message


def test_client_cn_must_be_exactly_postgres() -> None:
    ca = make_ca()
    for cn in ("Postgres", "postgres.example.net", "admin"):
        problem = only(pair(make_cert(cn, issuer=ca), ca, cn="postgres"))
        assert problem.severity is Severity.ERROR
        assert f"client certificate CN is '{cn}', but it must be exactly 'postgres'" in (
            problem.message
        )


def test_key_not_matching_certificate() -> None:
    pki = make_pki()
    problems = check_pair(
        pki.client.cert_pem(),
        key_bytes(new_key()),
        ca=pki.ca.cert,
        now=NOW,
        warning_days=30,
        expected_cn="postgres",
        what="client certificate",
    )
    problem = only(problems)
    assert problem.part is Part.KEY
    assert problem.message == (
        "client key does not match the client certificate (their public keys differ)"
    )


def test_certificate_signed_by_another_ca_with_the_same_name() -> None:
    ca = make_ca("Corp CA")
    impostor = make_ca("Corp CA")
    cert = make_cert("postgres", issuer=impostor)
    problem = only(pair(cert, ca, cn="postgres"))
    assert problem.part is Part.CERT
    assert "is not signed by the CA's key" in problem.message


def test_certificate_issued_by_another_ca_name() -> None:
    ca = make_ca("Corp CA")
    cert = make_cert("postgres", issuer=make_ca("Other CA"))
    problem = only(pair(cert, ca, cn="postgres"))
    assert "was not issued by the CA: its issuer is 'CN=Other CA', the CA is 'CN=Corp CA'" in (
        problem.message
    )


def test_self_signed_client_certificate_is_not_signed_by_ca() -> None:
    ca = make_ca()
    problem = only(pair(make_cert("postgres"), ca, cn="postgres"))
    assert "was not issued by the CA" in problem.message


@pytest.mark.parametrize(
    ("der", "traditional"),
    [(False, False), (False, True), (True, False)],
    ids=["pkcs8", "pem-traditional", "der"],
)
def test_encrypted_key_is_a_clear_error(der: bool, traditional: bool) -> None:
    data = key_bytes(new_key("rsa"), der=der, traditional=traditional, passphrase=b"s3cret-pass")
    with pytest.raises(EncryptedKeyError) as info:
        load_private_key(data)
    assert "is encrypted (passphrase-protected)" in str(info.value)
    assert "openssl pkey" in str(info.value)


def test_swapped_certificate_and_key_are_named() -> None:
    pki = make_pki()
    problems = check_pair(
        pki.client.key_pem(), pki.client.cert_pem(), ca=pki.ca.cert, now=NOW, warning_days=30
    )
    messages = {p.part: p.message for p in problems}
    assert "holds a private key, not a certificate" in messages[Part.CERT]
    assert "holds a certificate, not a private key" in messages[Part.KEY]


def test_garbage_files_are_rejected_without_echo() -> None:
    with pytest.raises(CertFormatError, match=r"is not a valid X\.509 certificate"):
        load_certificate(b"hello world")
    with pytest.raises(CertFormatError, match="is not a valid private key") as info:
        load_private_key(b"\x30\x03\x02\x01\x00")
    assert "\\x30" not in str(info.value)
    with pytest.raises(CertFormatError, match=r"is not a valid X\.509 certificate"):
        load_certificate(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


def test_unsupported_key_type() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import x25519

    data = x25519.X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(CertFormatError, match="unsupported X25519PrivateKey key; use RSA, EC"):
        load_private_key(data)


def test_ca_checks() -> None:
    ca, problems = check_ca(make_ca().cert_pem(), now=NOW, warning_days=30)
    assert ca is not None and problems == []
    _, problems = check_ca(make_ca(is_ca=False).cert_pem(), now=NOW, warning_days=30)
    assert only(problems).severity is Severity.WARNING
    assert "basicConstraints CA:TRUE" in problems[0].message
    _, problems = check_ca(
        make_ca(now=NOW - 800 * DAY, not_after=NOW - DAY).cert_pem(), now=NOW, warning_days=30
    )
    assert only(problems).part is Part.CA
    assert problems[0].message.startswith("CA certificate expired on")
    missing, problems = check_ca(b"nope", now=NOW, warning_days=30)
    assert missing is None
    assert only(problems).message.startswith("CA certificate is not a valid X.509 certificate")


@pytest.mark.parametrize(
    ("mode", "warns"), [(0o600, False), (0o400, False), (0o640, True), (0o644, True), (0o604, True)]
)
def test_key_permissions(mode: int, warns: bool) -> None:
    problem = key_permission_problem(0o100000 | mode)
    assert (problem is not None) is warns
    if problem is not None:
        assert problem.severity is Severity.WARNING
        assert f"mode {mode:04o}" in problem.message
        assert "chmod 600" in problem.message


def test_certificate_expiry_reads_pem_and_der(tmp_path: Path) -> None:
    not_after = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    issued = make_cert("x", not_after=not_after)
    pem = write_file(tmp_path / "a.cer", issued.cert_pem())
    der = write_file(
        tmp_path / "a.der", issued.cert.public_bytes(cert_checks.serialization.Encoding.DER)
    )
    assert certificate_expiry(pem) == not_after
    assert certificate_expiry(der) == not_after


# --- through load_spec: located diagnostics ----------------------------------------


def _load_problems(tmp_path: Path, text: str = VALID_SPEC) -> tuple[Diagnostic, ...]:
    spec = write_spec(tmp_path, text)
    try:
        return load_spec(spec, now=NOW).warnings
    except SpecError as exc:
        return tuple(d for d in exc.diagnostics if isinstance(d, Diagnostic))


def _at(diags: tuple[Diagnostic, ...], field: str) -> Diagnostic:
    found = [d for d in diags if d.field == field]
    assert len(found) == 1, [d.render() for d in diags]
    return found[0]


def test_valid_spec_with_minted_certificates_loads(tmp_path: Path) -> None:
    write_pki(tmp_path)
    loaded = load_spec(write_spec(tmp_path), now=NOW)
    assert loaded.warnings == ()
    assert loaded.spec.cluster == "test"


def test_expired_client_certificate_located(tmp_path: Path) -> None:
    pki = make_pki()
    write_pki(tmp_path, pki)
    expired = make_cert(
        "postgres", issuer=pki.ca, not_before=NOW - 9 * DAY, not_after=NOW - DAY, key=pki.client.key
    )
    write_file(tmp_path / "certs" / "client.cer", expired.cert_pem())
    d = _at(_load_problems(tmp_path), "certificates.client.cert")
    assert d.severity is Severity.ERROR
    assert d.line == VALID_SPEC_LINES["certificates.client.cert"]
    assert d.message.startswith("certs/client.cer: client certificate expired on")


def test_expiring_server_certificate_is_a_warning(tmp_path: Path) -> None:
    pki = make_pki()
    write_pki(tmp_path, pki)
    soon = make_cert(
        "srv", issuer=pki.ca, not_after=NOW + 7 * DAY + dt.timedelta(hours=2), key=pki.server.key
    )
    write_file(tmp_path / "certs" / "server.cer", soon.cert_pem())
    loaded = load_spec(write_spec(tmp_path), now=NOW)
    d = _at(loaded.warnings, "certificates.server.cert")
    assert d.line == VALID_SPEC_LINES["certificates.server.cert"]
    assert "server certificate expires on" in d.message and "in 7 days" in d.message


def test_wrong_client_cn_located(tmp_path: Path) -> None:
    pki = make_pki()
    write_pki(tmp_path, pki)
    wrong = make_cert("cms-client", issuer=pki.ca, key=pki.client.key)
    write_file(tmp_path / "certs" / "client.cer", wrong.cert_pem())
    d = _at(_load_problems(tmp_path), "certificates.client.cert")
    assert d.line == 19
    assert "CN is 'cms-client', but it must be exactly 'postgres'" in d.message


def test_key_mismatch_located_on_the_key(tmp_path: Path) -> None:
    write_pki(tmp_path)
    write_file(tmp_path / "keys" / "server.key", key_bytes(new_key()), 0o600)
    d = _at(_load_problems(tmp_path), "certificates.server.key")
    assert d.line == VALID_SPEC_LINES["certificates.server.key"]
    assert d.message == (
        "keys/server.key: server key does not match the server certificate "
        "(their public keys differ)"
    )


def test_not_signed_by_ca_located(tmp_path: Path) -> None:
    pki = make_pki()
    write_pki(tmp_path, pki)
    write_file(tmp_path / "certs" / "ca.cer", make_ca("Test Root CA").cert_pem())
    diags = _load_problems(tmp_path)
    for field in ("certificates.server.cert", "certificates.client.cert"):
        d = _at(diags, field)
        assert d.line == VALID_SPEC_LINES[field]
        assert "is not signed by the CA's key" in d.message


def test_der_files_in_spec(tmp_path: Path) -> None:
    pki = make_pki(kind="rsa")
    write_pki(tmp_path, pki)
    der = cert_checks.serialization.Encoding.DER
    write_file(tmp_path / "certs" / "ca.cer", pki.ca.cert.public_bytes(der))
    write_file(tmp_path / "certs" / "client.cer", pki.client.cert.public_bytes(der))
    write_file(tmp_path / "keys" / "client.key", key_bytes(pki.client.key, der=True), 0o600)
    assert load_spec(write_spec(tmp_path), now=NOW).warnings == ()


def test_world_readable_key_is_a_warning(tmp_path: Path) -> None:
    write_pki(tmp_path)
    os.chmod(tmp_path / "keys" / "client.key", 0o644)
    loaded = load_spec(write_spec(tmp_path), now=NOW)
    d = _at(loaded.warnings, "certificates.client.key")
    assert d.severity is Severity.WARNING
    assert d.line == VALID_SPEC_LINES["certificates.client.key"]
    assert d.message == (
        "keys/client.key: private key file is accessible by group/others (mode 0644); "
        "run chmod 600 on it"
    )


def test_encrypted_key_in_spec_is_an_error(tmp_path: Path) -> None:
    pki = make_pki()
    write_pki(tmp_path, pki)
    write_file(
        tmp_path / "keys" / "server.key", key_bytes(pki.server.key, passphrase=b"pw-123"), 0o600
    )
    d = _at(_load_problems(tmp_path), "certificates.server.key")
    assert d.severity is Severity.ERROR
    assert d.line == VALID_SPEC_LINES["certificates.server.key"]
    assert d.message.startswith("keys/server.key: server key is encrypted (passphrase-protected)")


def test_missing_files_are_errors_at_their_fields(tmp_path: Path) -> None:
    write_pki(tmp_path)
    (tmp_path / "certs" / "ca.cer").unlink()
    (tmp_path / "keys" / "client.key").unlink()
    diags = _load_problems(tmp_path)
    ca = _at(diags, "certificates.ca")
    assert ca.line == VALID_SPEC_LINES["certificates.ca"]
    assert ca.message == (
        f"certs/ca.cer: CA certificate file does not exist (looked for {tmp_path}/certs/ca.cer)"
    )
    key = _at(diags, "certificates.client.key")
    assert key.line == VALID_SPEC_LINES["certificates.client.key"]
    assert "client key file does not exist" in key.message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    write_pki(tmp_path)
    os.chmod(tmp_path / "certs" / "server.cer", 0o000)
    d = _at(_load_problems(tmp_path), "certificates.server.cert")
    assert "cannot be read: permission denied" in d.message


def test_directory_instead_of_file(tmp_path: Path) -> None:
    write_pki(tmp_path)
    (tmp_path / "certs" / "server.cer").unlink()
    (tmp_path / "certs" / "server.cer").mkdir()
    d = _at(_load_problems(tmp_path), "certificates.server.cert")
    assert d.line == VALID_SPEC_LINES["certificates.server.cert"]
    assert "server certificate file is a directory" in d.message


def test_no_key_material_or_password_in_any_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every message of a spec full of key-related mistakes stays free of secrets."""
    password = "Tr0ub4dor&3-horse"
    monkeypatch.setenv("CMS_TEST_PASSWORD", password)
    pki = make_pki(kind="rsa")
    write_pki(tmp_path, pki)
    server_key_pem = key_bytes(pki.server.key)
    # cert and key swapped, an encrypted key, a mismatching key, world-readable
    write_file(tmp_path / "certs" / "server.cer", server_key_pem)
    write_file(tmp_path / "keys" / "server.key", pki.server.cert_pem(), 0o644)
    write_file(tmp_path / "keys" / "client.key", key_bytes(new_key("rsa"), passphrase=b"kp"), 0o644)
    file_diags = _load_problems(tmp_path)  # valid shape: every file check runs
    assert len(file_diags) >= 4, [d.render() for d in file_diags]
    text = VALID_SPEC.replace("  port: 22\n", f"  port: 22\n  password: {password}\n")
    inline = server_key_pem.decode()
    text += "inline: |\n" + "".join(f"  {line}\n" for line in inline.splitlines())
    shape_diags = _load_problems(tmp_path, text)  # literal password and inline key
    assert len(shape_diags) >= 2
    rendered = "\n".join(d.render() for d in (*file_diags, *shape_diags))
    # an inline key where a file name belongs: the file checks would quote the "path"
    # (and the password itself pasted as a file name: redacted as the password_env value)
    pasted = VALID_SPEC.replace(
        "    key: keys/client.key",
        "    key: |\n" + "".join(f"      {line}\n" for line in inline.splitlines()).rstrip("\n"),
    ).replace("ca: certs/ca.cer", f"ca: {password}")
    pasted_diags = _load_problems(tmp_path, pasted)
    fields = {d.field for d in pasted_diags}
    assert {"certificates.client.key", "certificates.ca"} <= fields, fields
    assert [d.message for d in pasted_diags if d.field == "certificates.client.key"] == [
        "holds an inline private key (not shown); name a key file instead and keep the key "
        "out of the spec"
    ]
    rendered += "\n".join(d.render() for d in pasted_diags)
    outputs = [rendered]
    for spec_text in (VALID_SPEC, text, pasted):
        with pytest.raises(SpecError) as info:
            load_spec(write_spec(tmp_path, spec_text), now=NOW)
        outputs.append(str(info.value))
    for output in outputs:
        assert "PRIVATE KEY" not in output
        assert password not in output
        for line in inline.splitlines()[1:-1]:
            assert line not in output
