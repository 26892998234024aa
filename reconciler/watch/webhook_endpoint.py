"""``POST /hooks/git``: a push notification from the git host makes ``watch --git`` fetch now.

:class:`GitWebhook` is a WSGI app served on the metrics port
(:func:`reconciler.watch.metrics.make_app`). It answers

* 405 to any method but POST, 411 without a ``Content-Length``, 413 for a body over
  :data:`MAX_BODY` (1 MiB), before reading it;
* 401 (no ``X-Hub-Signature-256``/``X-Gitlab-Token``, or a malformed one) or 403 (a wrong
  signature or token) after :func:`reconciler.source.webhook.verify_webhook` refused the
  request: nothing is fetched, and one warning line (``webhook refused``) says why, with
  the sender's address; never the secret, nor what the sender should have sent;
* 202 when verified: ``trigger`` is called and the fetch follows at once.

``trigger`` is called in the HTTP server's thread: it must only hand the request over
(``loop.call_soon_threadsafe``); the fetch itself runs in the watch's event loop
(:class:`reconciler.watch.git_follower.GitFollower`), where requests that arrive during a
fetch become one more fetch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import structlog

from reconciler.source.webhook import Refusal, verify_webhook
from reconciler.watch.metrics import Environ, StartResponse, text_response

log = structlog.get_logger("reconciler.watch")

MAX_BODY = 1024 * 1024
_STATUS = {
    Refusal.NO_SIGNATURE: "401 Unauthorized",
    Refusal.MALFORMED: "401 Unauthorized",
    Refusal.WRONG_SIGNATURE: "403 Forbidden",
    Refusal.WRONG_TOKEN: "403 Forbidden",
    Refusal.NO_SECRET: "404 Not Found",
}
_EVENT_HEADERS = ("HTTP_X_GITHUB_EVENT", "HTTP_X_GITLAB_EVENT")


def request_headers(environ: Environ) -> dict[str, str]:
    """The request's headers from a WSGI environ (``HTTP_X_HUB_SIGNATURE_256`` ->
    ``x-hub-signature-256``)."""
    return {
        key[5:].replace("_", "-").lower(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }


def _printable(text: str, limit: int = 60) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text[:limit])


class GitWebhook:
    """The ``/hooks/git`` WSGI app for one shared secret."""

    def __init__(self, secret: bytes, trigger: Callable[[str], object]) -> None:
        if not secret:
            raise ValueError("a webhook needs a secret")
        self._secret = secret
        self._trigger = trigger

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        sender = _printable(str(environ.get("REMOTE_ADDR", "?")))
        if environ.get("REQUEST_METHOD") != "POST":
            return text_response(start_response, "405 Method Not Allowed", "POST only\n")
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return text_response(start_response, "411 Length Required", "no Content-Length\n")
        if length < 0:
            return text_response(start_response, "400 Bad Request", "bad Content-Length\n")
        if length > MAX_BODY:
            log.warning("webhook refused", reason="body too large", bytes=length, sender=sender)
            return text_response(start_response, "413 Content Too Large", "body too large\n")
        try:
            body = environ["wsgi.input"].read(length) if length else b""
        except OSError as exc:  # the sender went away, or stopped sending
            log.warning("webhook refused", reason=f"body not read: {exc}", sender=sender)
            return text_response(start_response, "400 Bad Request", "body not read\n")
        if len(body) != length:
            log.warning("webhook refused", reason="body shorter than its length", sender=sender)
            return text_response(start_response, "400 Bad Request", "body incomplete\n")
        verdict = verify_webhook(request_headers(environ), body, self._secret)
        event = next((environ[h] for h in _EVENT_HEADERS if h in environ), None)
        fields = {"sender": sender, **({"git_event": _printable(str(event))} if event else {})}
        if not verdict.accepted or verdict.refusal is not None:
            reason = verdict.refusal or Refusal.NO_SIGNATURE
            log.warning("webhook refused", reason=str(reason), fetch="none", **fields)
            return text_response(start_response, _STATUS[reason], f"refused: {reason}\n")
        log.info("webhook accepted: fetching", provider=str(verdict.provider), **fields)
        self._trigger(f"webhook ({verdict.provider})")
        return text_response(start_response, "202 Accepted", "fetching\n")
