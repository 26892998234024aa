"""Is a webhook request from the git host we share a secret with (pure).

``POST /hooks/git`` triggers a fetch only when :func:`verify_webhook` accepts it:

- GitHub: ``X-Hub-Signature-256: sha256=<hex>``, the HMAC-SHA256 of the raw body keyed with
  the secret (the older SHA-1 ``X-Hub-Signature`` alone is refused);
- GitLab: ``X-Gitlab-Token`` equal to the secret.

Comparisons are constant-time (``hmac.compare_digest``). An empty secret refuses everything;
a request carrying both providers' headers, or one header twice under different cases, is
refused as malformed. The reasons (:class:`Refusal`) say what was wrong, never the secret or
what the sender should have sent.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

GITHUB_HEADER = "x-hub-signature-256"
GITHUB_SHA1_HEADER = "x-hub-signature"
GITLAB_HEADER = "x-gitlab-token"
_GITHUB_VALUE = re.compile(r"sha256=([0-9a-fA-F]{64})")


class Provider(StrEnum):
    GITHUB = "github"
    GITLAB = "gitlab"


class Refusal(StrEnum):
    NO_SECRET = "no webhook secret configured"
    NO_SIGNATURE = "no signature header (X-Hub-Signature-256 or X-Gitlab-Token)"
    MALFORMED = "malformed signature header"
    WRONG_SIGNATURE = "wrong signature"
    WRONG_TOKEN = "wrong token"


@dataclass(frozen=True)
class WebhookVerdict:
    """Accepted (with the provider) or refused (with the reason)."""

    provider: Provider | None = None
    refusal: Refusal | None = None

    @property
    def accepted(self) -> bool:
        return self.provider is not None and self.refusal is None

    def describe(self) -> str:
        return f"accepted ({self.provider})" if self.accepted else f"refused: {self.refusal}"


def _refused(reason: Refusal) -> WebhookVerdict:
    return WebhookVerdict(refusal=reason)


def _header_bytes(value: str) -> list[bytes]:
    """The bytes the header may have been sent as: ASGI servers decode header bytes as
    Latin-1, other servers as UTF-8."""
    forms = [value.encode("utf-8", "surrogateescape")]
    with contextlib.suppress(UnicodeEncodeError):
        forms.append(value.encode("latin-1"))
    return forms


def _lookup(headers: Mapping[str, str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in (GITHUB_HEADER, GITHUB_SHA1_HEADER, GITLAB_HEADER):
            found.setdefault(lowered, []).append(value)
    return found


def verify_webhook(headers: Mapping[str, str], body: bytes, secret: bytes) -> WebhookVerdict:
    """Whether the request with these headers (any case) and this raw body was sent by a
    holder of ``secret``."""
    if not secret:
        return _refused(Refusal.NO_SECRET)
    found = _lookup(headers)
    github, gitlab = found.get(GITHUB_HEADER, []), found.get(GITLAB_HEADER, [])
    if len(github) > 1 or len(gitlab) > 1 or (github and gitlab):
        return _refused(Refusal.MALFORMED)
    if github:
        match = _GITHUB_VALUE.fullmatch(github[0].strip())
        if match is None:
            return _refused(Refusal.MALFORMED)
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, match.group(1).lower()):
            return WebhookVerdict(provider=Provider.GITHUB)
        return _refused(Refusal.WRONG_SIGNATURE)
    if gitlab:
        matches = [hmac.compare_digest(form, secret) for form in _header_bytes(gitlab[0])]
        if any(matches):
            return WebhookVerdict(provider=Provider.GITLAB)
        return _refused(Refusal.WRONG_TOKEN)
    return _refused(Refusal.NO_SIGNATURE)
