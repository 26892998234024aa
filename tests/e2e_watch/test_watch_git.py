"""`reconcile watch --git` end to end: a 3-node cmslab (127.0.61.x), the specs in bare
repositories served by git daemon (127.0.62.1) and by sshd with a deploy key (127.0.62.2).

Every watch runs with `--interval 300 --git-interval 300`, longer than any wait below: what
happens after a push can only have been started by the webhook. Timings are printed, never
asserted (the machine may be loaded).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import git_servers
import pytest
from e2e.lab_harness import E2ELab, lab_fixture
from git_servers import SigningKeys, SshServer, git

from e2e_watch.git_remote import (
    HOOK_SECRET,
    GitWatchProcess,
    git_daemon,
    lab_spec_repo,
    lab_spec_text,
    sshd,
)
from e2e_watch.watch_harness import N3, Event, is_cycle

pytestmark = pytest.mark.lab
LAB_BASE = "127.0.61.1"
DAEMON_HOST = "127.0.62.1"
SSHD_HOST = "127.0.62.2"
QUIET = ("--interval", "300", "--git-interval", "300")
SPEC = "clusters/cmslab.yaml"
signing_keys = git_servers.signing_keys


@pytest.fixture(scope="module")
def lab() -> Iterator[E2ELab]:
    yield from lab_fixture(LAB_BASE, 3)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("served") / "repos"
    base.mkdir()
    return base


@pytest.fixture(scope="module")
def daemon(served: Path) -> Iterator[str]:
    with git_daemon(served, DAEMON_HOST) as url:
        yield url


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with sshd(tmp_path_factory.mktemp("sshd"), SSHD_HOST) as server:
        yield server


def at(sha: str, verdict: str = "converged") -> Callable[[Event], bool]:
    """A summary line of a cycle that planned from ``sha`` and found ``verdict``."""
    return lambda e: is_cycle(verdict)(e) and e.get("revision") == sha[:7]


def checked_out(sha: str) -> Callable[[Event], bool]:
    return lambda e: e["event"] == "revision checked out" and e["sha"] == sha


def wait_revision_metric(w: GitWatchProcess, sha: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while w.revision_metric() != {sha: 1.0}:
        assert time.monotonic() < deadline, f"{w.revision_metric()}; log tail:\n{w.tail()}"
        time.sleep(0.3)


def ts(event: Event) -> float:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


@pytest.mark.timeout(1200)
def test_a_fresh_lab_converges_from_git_and_a_pushed_node_joins_after_the_webhook(
    lab: E2ELab, served: Path, daemon: str, tmp_path: Path
) -> None:
    repo = lab_spec_repo(lab, served, "fresh", nodes=2)
    first = repo.head()
    state = tmp_path / "state"
    with GitWatchProcess(lab, state, f"{daemon}/fresh.git", "--mode", "heal", *QUIET) as w:
        w.wait_for(at(first), 420)
        wait_revision_metric(w, first)
        applied = w.audit()
        assert applied and {r["revision"] for r in applied} == {first}
        journal = state / "cmslab.journal.jsonl"
        lines = journal.read_text().splitlines() if journal.exists() else []
        assert all(json.loads(line)["revision"] == first for line in lines)

        mark = w.mark()
        second = repo.commit({SPEC: lab_spec_text(lab, 3)}, "add cms-lab-3")
        # A wrong signature or token is refused and fetches nothing.
        assert w.hook({"X-Hub-Signature-256": "sha256=" + "0" * 64}) == 403
        assert w.hook({"X-Gitlab-Token": "a guess"}) == 403
        assert w.hook({}) == 401
        w.wait_for(
            lambda e: e["event"] == "webhook refused" and e["reason"] == "wrong token",
            30,
            after=mark,
        )
        time.sleep(3)
        assert not [e for e in w.events()[mark:] if e["event"] == "revision checked out"]

        sent = time.time()
        assert w.hook() == 202
        checkout = w.wait_for(checked_out(second), 120, after=mark)
        assert checkout["why"] == "webhook (github)" and checkout["changed"] == ["cmslab.yaml"]
        planned = w.wait_for(
            lambda e: e["event"] == "planned step" and e["node"] == N3, 120, after=mark
        )
        print(
            f"webhook -> revision checked out {ts(checkout) - sent:.2f} s, "
            f"-> first line of the new plan {ts(planned) - sent:.2f} s (interval 300 s)"
        )
        lab.wait_for(lambda r: r[N3]["role"] == "replica", 300, what=f"{N3} joined")
        w.wait_for(at(second), 300, after=mark)
        wait_revision_metric(w, second)  # the first revision's series is gone
        new = w.audit()[len(applied) :]
        assert new and {r["revision"] for r in new} == {second}
        assert w.stop() == 0

    # `reconcile status` names the last applied revision and whether the head is applied.
    in_clone = state / "git" / "checkouts" / second / SPEC
    shown = lab.reconcile("status", in_clone, "--state-dir", state, "--no-db")
    assert shown.code == 0, shown.text
    print(shown.stdout)
    assert f"  last applied: {second[:7]} 'add cms-lab-3'" in shown.stdout
    assert f"  spec file:    {second[:7]} 'add cms-lab-3' (a checkout of" in shown.stdout
    assert f"    applied? yes: {second[:7]} is the last applied revision" in shown.stdout
    assert f"  branch:       main at {second[:7]} 'add cms-lab-3'" in shown.stdout


@pytest.mark.timeout(900)
def test_an_invalid_commit_is_reported_and_not_applied_and_a_revert_is_reconciled(
    lab: E2ELab, served: Path, daemon: str, tmp_path: Path
) -> None:
    repo = lab_spec_repo(lab, served, "invalid", nodes=3)
    good = repo.head()
    with GitWatchProcess(
        lab, tmp_path / "s", f"{daemon}/invalid.git", "--mode", "heal", *QUIET
    ) as w:
        w.wait_for(at(good), 300)
        mark = w.mark()
        bad = repo.commit({SPEC: lab_spec_text(lab, 3, master="cms-lab-9")}, "master nowhere")
        assert w.hook() == 202
        invalid = w.wait_for(lambda e: e["event"] == "spec invalid", 120, after=mark)
        assert invalid["sha"] == bad and invalid["revision"] == f"{bad[:7]} 'master nowhere'"
        assert invalid["author"] == "Ada Admin <ada@example.com>"
        assert (
            invalid["kept"] == f"last valid spec stays in force ({good[:7]} 'cmslab with 3 nodes')"
        )
        summary = w.wait_for(
            lambda e: is_cycle()(e) and e.get("spec", "").startswith("INVALID"), 120, after=mark
        )
        assert summary["revision"] == good[:7]
        assert w.metric("cms_reconciler_spec_valid") == 0
        assert not [r for r in w.audit() if r["revision"] == bad]
        wait_revision_metric(w, good)

        mark = w.mark()
        git("revert", "--no-edit", "HEAD", cwd=repo.work)  # a revert is a commit like any other
        git("push", "-q", "origin", "HEAD:main", cwd=repo.work)
        reverted = repo.head()
        assert w.hook() == 202
        w.wait_for(checked_out(reverted), 120, after=mark)
        w.wait_for(at(reverted), 120, after=mark)
        wait_revision_metric(w, reverted)
        assert w.metric("cms_reconciler_spec_valid") == 1
        assert w.stop() == 0


@pytest.mark.timeout(900)
def test_over_ssh_with_a_deploy_key_and_a_gitlab_webhook(
    lab: E2ELab, served: Path, ssh_server: SshServer, tmp_path: Path
) -> None:
    repo = lab_spec_repo(lab, served, "over-ssh", nodes=3)
    first = repo.head()
    url = f"ssh://root@{SSHD_HOST}:{ssh_server.port}{repo.bare}"
    key = ("--git-key", str(ssh_server.deploy_key))
    impostor = ("--git-known-hosts", str(ssh_server.other_host_key_known_hosts))
    with GitWatchProcess(lab, tmp_path / "a", url, *key, *impostor, *QUIET) as w:
        failed = w.wait_for(lambda e: e["event"] == "git fetch failed", 60)
        assert "Host key verification failed" in failed["error"]
        assert not [e for e in w.events() if e["event"] == "revision checked out"]
        assert w.stop() == 0
    known = ("--git-known-hosts", str(ssh_server.known_hosts))
    with GitWatchProcess(lab, tmp_path / "b", url, *key, *known, "--mode", "heal", *QUIET) as w:
        w.wait_for(at(first), 300)
        wait_revision_metric(w, first)
        mark = w.mark()
        policy = {"allow_master_move": True, "cert_expiry_warning_days": 20}
        second = repo.commit({SPEC: lab_spec_text(lab, 3, policy=policy)}, "warn later")
        assert w.hook({"X-Gitlab-Token": HOOK_SECRET, "X-Gitlab-Event": "Push Hook"}) == 202
        assert w.wait_for(checked_out(second), 120, after=mark)["why"] == "webhook (gitlab)"
        w.wait_for(at(second), 120, after=mark)
        wait_revision_metric(w, second)
        assert w.stop() == 0


@pytest.mark.timeout(900)
def test_with_verify_signatures_only_commits_signed_by_an_allowed_key_are_applied(
    lab: E2ELab, served: Path, daemon: str, tmp_path: Path, signing_keys: SigningKeys
) -> None:
    repo = lab_spec_repo(lab, served, "signed", nodes=3)
    text = lab_spec_text(lab, 3)
    signed = repo.commit({SPEC: text + "# signed\n"}, "signed", sign_with=signing_keys.allowed)
    verify = ("--verify-signatures", "--allowed-signers", str(signing_keys.allowed_signers))
    with GitWatchProcess(
        lab, tmp_path / "s", f"{daemon}/signed.git", *verify, "--mode", "heal", *QUIET
    ) as w:
        checkout = w.wait_for(checked_out(signed), 120)
        assert checkout["signature"] == "verified" and checkout["signer"] == signing_keys.principal
        w.wait_for(at(signed), 300)
        wait_revision_metric(w, signed)

        paused = lab_spec_text(lab, 3, policy={"allow_master_move": True, "paused": True})
        for message, key, state in (
            ("unsigned", None, "unsigned"),
            ("signed by mallory", signing_keys.other, "bad"),
        ):
            mark = w.mark()
            head = repo.commit({SPEC: paused + f"# {message}\n"}, message, sign_with=key)
            assert w.hook() == 202
            refused = w.wait_for(
                lambda e: e["event"] == "revision refused: signature not verified", 120, after=mark
            )
            assert refused["sha"] == head and refused["signature"] == state
            assert refused["author"] == "Ada Admin <ada@example.com>"
            assert refused["kept"] == f"{signed[:7]} 'signed'"
            time.sleep(2)
            later = w.events()[mark:]
            assert not [e for e in later if e["event"] in ("revision checked out", "spec loaded")]
            assert w.revision_metric() == {signed: 1.0}

        mark = w.mark()
        again = repo.commit(
            {SPEC: text + "# signed again\n"}, "signed again", sign_with=signing_keys.allowed
        )
        assert w.hook() == 202
        w.wait_for(checked_out(again), 120, after=mark)
        w.wait_for(at(again), 120, after=mark)
        wait_revision_metric(w, again)
        assert not [e for e in w.events() if e["event"].startswith("cycle PAUSED")]
        assert w.stop() == 0
