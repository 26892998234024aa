"""`POST /hooks/git` on the metrics port, over real HTTP (urllib on 127.0.0.1): a verified
push is handed over for a fetch; anything else is refused without one. Also the metric
of the applied revision, and `watch --git`'s flags refused one line at a time."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from reconciler.cli.main import build_parser
from reconciler.cli.watch import options_from_args
from reconciler.common.errors import ReconcilerError
from reconciler.watch.metrics import HealthState, MetricsServer, WatchMetrics, start_metrics_server
from reconciler.watch.webhook_endpoint import MAX_BODY, GitWebhook

SECRET = b"correct horse battery staple"
BODY = json.dumps({"ref": "refs/heads/main", "after": "3f2a9c1"}).encode()


@pytest.fixture
def hooked() -> Iterator[tuple[MetricsServer, list[str]]]:
    triggered: list[str] = []
    server = start_metrics_server(
        WatchMetrics(),
        HealthState(stale_after=30),
        host="127.0.0.1",
        port=0,
        webhook=GitWebhook(SECRET, triggered.append),
    )
    try:
        yield server, triggered
    finally:
        server.close()


def post(
    server: MetricsServer, headers: dict[str, str], body: bytes = BODY, method: str = "POST"
) -> tuple[int, str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/hooks/git", data=body, headers=headers, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def github(body: bytes = BODY, secret: bytes = SECRET) -> dict[str, str]:
    digest = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Event": "push"}


def test_a_signed_github_push_and_a_gitlab_token_trigger_a_fetch(
    hooked: tuple[MetricsServer, list[str]],
) -> None:
    server, triggered = hooked
    with capture_logs() as logs:
        assert post(server, github()) == (202, "fetching\n")
        assert post(server, {"X-Gitlab-Token": SECRET.decode()}) == (202, "fetching\n")
    assert triggered == ["webhook (github)", "webhook (gitlab)"]
    assert [e["event"] for e in logs] == ["webhook accepted: fetching"] * 2


@pytest.mark.parametrize(
    ("headers", "code", "reason"),
    [
        (github(secret=b"not the secret"), 403, "wrong signature"),
        (github(body=b"another body"), 403, "wrong signature"),
        ({"X-Gitlab-Token": "guess"}, 403, "wrong token"),
        ({}, 401, "no signature header (X-Hub-Signature-256 or X-Gitlab-Token)"),
        ({"X-Hub-Signature-256": "sha1=abc"}, 401, "malformed signature header"),
        ({**github(), "X-Gitlab-Token": SECRET.decode()}, 401, "malformed signature header"),
    ],
)
def test_anything_else_is_refused_without_fetching(
    hooked: tuple[MetricsServer, list[str]], headers: dict[str, str], code: int, reason: str
) -> None:
    server, triggered = hooked
    with capture_logs() as logs:
        assert post(server, headers) == (code, f"refused: {reason}\n")
    assert triggered == []
    refused = [e for e in logs if e["event"] == "webhook refused"]
    assert refused and refused[0]["reason"] == reason and refused[0]["fetch"] == "none"
    assert SECRET.decode() not in repr(logs)


def test_other_methods_big_bodies_and_no_length_are_refused(
    hooked: tuple[MetricsServer, list[str]],
) -> None:
    server, triggered = hooked
    assert post(server, github(), method="PUT")[0] == 405
    status, _ = post(server, {}, body=b"", method="GET")
    assert status == 405
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.putrequest("POST", "/hooks/git")
    connection.putheader("Content-Length", str(MAX_BODY + 1))
    connection.endheaders()  # the body is never sent: refused on its length
    assert connection.getresponse().status == 413
    connection.close()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.putrequest("POST", "/hooks/git", skip_accept_encoding=True)
    connection.endheaders()
    assert connection.getresponse().status == 411
    connection.close()
    assert triggered == []


def test_without_a_secret_the_hook_is_not_configured() -> None:
    server = start_metrics_server(WatchMetrics(), HealthState(30), host="127.0.0.1", port=0)
    try:
        assert post(server, github()) == (404, "webhook not configured\n")
    finally:
        server.close()


def test_the_applied_revision_metric_names_one_full_sha_per_cluster() -> None:
    metrics = WatchMetrics()
    first, second = "3f2a9c1" + "0" * 33, "4b1e2d0" + "1" * 33
    metrics.set_applied_revision("lon", first)
    metrics.set_applied_revision("par", first)
    metrics.set_applied_revision("lon", second)
    from prometheus_client import generate_latest

    text = generate_latest(metrics.registry).decode()
    found = {
        (s.labels["cluster"], s.labels["revision"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "cms_reconciler_applied_revision_info"
    }
    assert found == {("lon", second): 1.0, ("par", first): 1.0}
    metrics.forget_cluster("lon")
    assert "lon" not in generate_latest(metrics.registry).decode()


# --- flags ---------------------------------------------------------------------------------


def watch_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["watch", *argv])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["specs/"], None),
        ([], "give SPEC_OR_DIR... to watch, or --git URL to follow"),
        (["specs/", "--git", "file:///r.git"], "--git follows a repository: give no SPEC_OR_DIR"),
        (["specs/", "--branch", "main"], "--branch: only with --git URL"),
        (["specs/", "--verify-signatures"], "--verify-signatures: only with --git URL"),
        (["--git", "file:///r.git", "--verify-signatures"], "--verify-signatures and --allowed"),
        (["--git", "file:///r.git", "--git-key", "k"], "--git-key and --git-known-hosts go"),
        (
            ["--git", "https://h/r.git", "--git-key", "k", "--git-known-hosts", "h"],
            "--git-key is for an ssh URL",
        ),
        (["--git", "ssh://git@h/r.git", "--git-token-env", "TOKEN"], "--git-token-env is for"),
        (["--git", "https://h/r.git", "--git-token-user", "u"], "--git-token-user needs"),
        (
            ["--git", "https://h/r.git", "--git-token-env", "UNSET_TOKEN_VAR"],
            "environment variable UNSET_TOKEN_VAR (the git token) is not set",
        ),
        (["--git", "https://u:tok@h/r.git"], "--git: no password or token in the URL"),
        (["--git", "file:///r.git", "--branch", "a..b"], "--branch 'a..b': not a branch name"),
        (
            ["--git", "file:///r.git", "--webhook-secret-env", "UNSET_HOOK_VAR"],
            "environment variable UNSET_HOOK_VAR (the webhook secret) is not set",
        ),
        (
            ["--git", "file:///r.git", "--webhook-secret-env", "HOOK"],
            "--webhook-secret-env: the webhook is served on --metrics-port",
        ),
    ],
)
def test_bad_flag_combinations_are_one_line(
    argv: list[str], message: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RECONCILE_METRICS_PORT", raising=False)
    monkeypatch.setenv("HOOK", "a secret value")
    if message is None:
        assert options_from_args(watch_args(*argv)).git is None
        return
    with pytest.raises(ReconcilerError) as caught:
        options_from_args(watch_args(*argv))
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    assert "a secret value" not in str(caught.value)


def test_git_options_default_to_a_state_dir_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECONCILE_STATE_DIR", raising=False)
    monkeypatch.setenv("HOOK", "a secret value")
    options = options_from_args(
        watch_args("--git", "file:///r.git", "--webhook-secret-env", "HOOK", "--metrics-port", "0")
    )
    assert options.state_dir == tmp_path / ".reconcile"
    assert options.git is not None and options.git.branch == "main" and options.git.path == "."
    assert options.git.webhook_secret == b"a secret value"
    assert "a secret value" not in repr(options)
