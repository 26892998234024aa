"""The webhook's sender check: GitHub's HMAC-SHA256 signature, GitLab's token, refusals."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from reconciler.source.webhook import Provider, Refusal, WebhookVerdict, verify_webhook

SECRET = b"shared webhook secret"
BODY = b'{"ref": "refs/heads/main", "after": "3f2a9c1"}'


def _github(body: bytes, secret: bytes = SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _refused(verdict: WebhookVerdict, reason: Refusal) -> bool:
    return not verdict.accepted and verdict.refusal is reason and verdict.provider is None


def test_github_signature_accepted() -> None:
    verdict = verify_webhook({"X-Hub-Signature-256": _github(BODY)}, BODY, SECRET)
    assert verdict.accepted and verdict.provider is Provider.GITHUB
    assert verdict.describe() == "accepted (github)"


def test_github_signature_of_another_body_or_secret_refused() -> None:
    other_body = verify_webhook({"X-Hub-Signature-256": _github(b"{}")}, BODY, SECRET)
    assert _refused(other_body, Refusal.WRONG_SIGNATURE)
    other_secret = verify_webhook({"X-Hub-Signature-256": _github(BODY, b"x")}, BODY, SECRET)
    assert _refused(other_secret, Refusal.WRONG_SIGNATURE)
    assert other_secret.describe() == "refused: wrong signature"


def test_missing_signature_refused() -> None:
    assert _refused(verify_webhook({}, BODY, SECRET), Refusal.NO_SIGNATURE)
    sha1 = "sha1=" + hmac.new(SECRET, BODY, hashlib.sha1).hexdigest()
    only_sha1 = verify_webhook({"X-Hub-Signature": sha1}, BODY, SECRET)
    assert _refused(only_sha1, Refusal.NO_SIGNATURE)
    unrelated = verify_webhook({"Content-Type": "application/json"}, BODY, SECRET)
    assert _refused(unrelated, Refusal.NO_SIGNATURE)


def test_malformed_github_signature_refused() -> None:
    good = _github(BODY)
    for value in (
        good.removeprefix("sha256="),
        "sha1=" + good.removeprefix("sha256="),
        good[:-1],
        good + "0",
        "sha256=" + "g" * 64,
        "",
        "sha256=",
    ):
        verdict = verify_webhook({"X-Hub-Signature-256": value}, BODY, SECRET)
        assert _refused(verdict, Refusal.MALFORMED), value


def test_uppercase_hex_and_surrounding_space_accepted() -> None:
    value = " sha256=" + _github(BODY).removeprefix("sha256=").upper() + " "
    assert verify_webhook({"X-Hub-Signature-256": value}, BODY, SECRET).accepted


def test_gitlab_token() -> None:
    good = verify_webhook({"X-Gitlab-Token": SECRET.decode()}, BODY, SECRET)
    assert good.accepted and good.provider is Provider.GITLAB
    for wrong in ("shared webhook secre", "shared webhook secret ", "", "x"):
        verdict = verify_webhook({"X-Gitlab-Token": wrong}, BODY, SECRET)
        assert _refused(verdict, Refusal.WRONG_TOKEN), wrong


def test_non_ascii_gitlab_token_compared_as_sent() -> None:
    secret = "clé".encode()
    as_asgi_decodes_it = secret.decode("latin-1")
    assert verify_webhook({"x-gitlab-token": as_asgi_decodes_it}, BODY, secret).accepted
    assert verify_webhook({"x-gitlab-token": "clé"}, BODY, secret).accepted


def test_header_names_are_case_insensitive() -> None:
    signature = _github(BODY)
    for name in ("x-hub-signature-256", "X-HUB-SIGNATURE-256", "x-Hub-Signature-256"):
        assert verify_webhook({name: signature}, BODY, SECRET).provider is Provider.GITHUB
    for name in ("x-gitlab-token", "X-GITLAB-TOKEN"):
        assert verify_webhook({name: SECRET.decode()}, BODY, SECRET).provider is Provider.GITLAB


def test_ambiguous_requests_refused() -> None:
    twice = {"x-hub-signature-256": _github(BODY), "X-Hub-Signature-256": _github(BODY)}
    assert _refused(verify_webhook(twice, BODY, SECRET), Refusal.MALFORMED)
    both = {"X-Hub-Signature-256": _github(BODY), "X-Gitlab-Token": SECRET.decode()}
    assert _refused(verify_webhook(both, BODY, SECRET), Refusal.MALFORMED)


def test_an_empty_secret_refuses_everything() -> None:
    for headers in (
        {"X-Hub-Signature-256": _github(BODY, b"")},
        {"X-Gitlab-Token": ""},
        {},
    ):
        assert _refused(verify_webhook(headers, BODY, b""), Refusal.NO_SECRET)


@given(body=st.binary(max_size=2048), secret=st.binary(min_size=1), other=st.binary(min_size=1))
def test_a_signature_made_with_another_secret_is_refused(
    body: bytes, secret: bytes, other: bytes
) -> None:
    signed = {"X-Hub-Signature-256": _github(body, other)}
    verdict = verify_webhook(signed, body, secret)
    if (
        hmac.new(other, body, hashlib.sha256).digest()
        == hmac.new(secret, body, hashlib.sha256).digest()
    ):
        assert verdict.accepted  # same key after HMAC's padding (e.g. b"k" and b"k\0")
    else:
        assert _refused(verdict, Refusal.WRONG_SIGNATURE)
    assert verify_webhook(signed, body, other).accepted
    token = verify_webhook({"X-Gitlab-Token": other.decode("latin-1")}, body, secret)
    assert token.accepted == (other == secret)
