"""The git source against real servers (git daemon, sshd on loopback), real signatures and
real checkouts; the revision model and the parsers of git's output without git."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import http.server
import os
import shlex
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, cast

import git_servers
import pytest
from git_servers import DAEMON_HOST, SPEC_FILES, GitDaemon, SigningKeys, SpecRepo, SshServer, git

import reconciler.source.git_source as git_source_module
from reconciler.source.git_command import (
    GitError,
    HttpsToken,
    SshDeployKey,
    clean_environment,
    run_git,
    scrub,
)
from reconciler.source.git_source import KEEP_CHECKOUTS, GitSource
from reconciler.source.revision import (
    Revision,
    SignatureState,
    describe_local,
    parse_log_record,
    parse_signature_check,
)
from reconciler.source.working_tree import local_revision, local_state

# the servers' fixtures (per module) and the repository's (per test)
served = git_servers.served
spec_repo = git_servers.spec_repo
git_daemon = git_servers.git_daemon
ssh_server = git_servers.ssh_server
signing_keys = git_servers.signing_keys
SHA = "3f2a9c1" + "0" * 33
WHEN = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def _source(url: str, root: Path, **kw: object) -> GitSource:
    return GitSource(url, "main", "specs", root / "state" / "git", **kw)  # type: ignore[arg-type]


def _tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# ----------------------------------------------------------------------------- revision (pure)
def test_describe_shortens_and_escapes_the_subject() -> None:
    rev = Revision(SHA, "add cms-fra-2", "Ada", "ada@example.com", WHEN)
    assert rev.short == "3f2a9c1"
    assert rev.describe() == "3f2a9c1 'add cms-fra-2'"
    odd = Revision(SHA, "it's a \\ \x1b[31mred\x1b[0m " + "x" * 80, "A", "a@x", WHEN)
    text = odd.describe()
    assert "\x1b" not in text and "it\\'s a \\\\ \\x1b[31mred" in text
    assert text.endswith("...'") and len(text) < 7 + 3 + 60 + 40


def test_describe_local() -> None:
    rev = Revision(SHA, "add cms-fra-2", "Ada", "ada@example.com", WHEN)
    assert describe_local(None, False) == "revision: working tree"
    assert describe_local(None, True) == "revision: working tree"
    assert describe_local(rev, False) == "revision: working tree at 3f2a9c1 'add cms-fra-2'"
    assert describe_local(rev, True).endswith("'add cms-fra-2' (modified)")


def test_revision_round_trips_through_its_dict() -> None:
    rev = Revision(SHA, "s", "Ada", "ada@example.com", WHEN).with_signature(
        SignatureState.VERIFIED, signer="ada@example.com"
    )
    data = rev.to_dict()
    assert data["committed_at"] == "2024-05-01T12:00:00Z" and data["signature"] == "verified"
    assert Revision.from_dict(data) == rev
    with pytest.raises(ValueError):
        Revision.from_dict({"sha": SHA})
    with pytest.raises(ValueError):
        Revision("3f2a9c1", "s", "A", "a@x", WHEN)
    with pytest.raises(ValueError):
        Revision(SHA, "s", "A", "a@x", WHEN, SignatureState.UNSIGNED, signer="x")


def test_parsers_of_git_output() -> None:
    rev = parse_log_record(f"{SHA}\x00add it\x00Ada\x00ada@example.com\x001714564800\n")
    assert rev.committed_at == WHEN and rev.author == "Ada <ada@example.com>"
    with pytest.raises(ValueError):
        parse_log_record("nonsense")
    good = 'Good "git" signature for ada@example.com with ED25519 key SHA256:abc'
    assert parse_signature_check(0, good) == (SignatureState.VERIFIED, "ada@example.com")
    unknown = 'Good "git" signature with ED25519 key SHA256:abc\nNo principal matched.'
    state, problem = parse_signature_check(1, unknown)
    assert (
        state is SignatureState.BAD and problem == "No principal matched. (ED25519 key SHA256:abc)"
    )
    assert parse_signature_check(0, "Good signature from someone")[0] is SignatureState.BAD


# ----------------------------------------------------------------------------- fetch, checkout
def test_fetch_and_checkout_over_git_daemon(
    git_daemon: GitDaemon, spec_repo: SpecRepo, tmp_path: Path
) -> None:
    source = _source(git_daemon.url(spec_repo), tmp_path)
    sha = source.fetch()
    assert sha == spec_repo.head()
    folder = source.checkout(sha)
    assert folder == source.root_dir / "checkouts" / sha / "specs"
    assert _tree(folder) == {
        k.removeprefix("specs/"): v for k, v in SPEC_FILES.items() if k.startswith("specs/")
    }
    assert source.current_sha() == sha
    assert os.readlink(source.root_dir / "current") == f"checkouts/{sha}"
    rev = source.revision(sha)
    assert (rev.sha, rev.subject, rev.author_email) == (sha, "add cms-fra-1", "ada@example.com")
    assert rev.signature is SignatureState.NOT_CHECKED and rev.committed_at.tzinfo is not None


def test_fetch_and_checkout_over_ssh_with_a_deploy_key(
    ssh_server: SshServer, spec_repo: SpecRepo, tmp_path: Path
) -> None:
    auth = SshDeployKey(ssh_server.deploy_key, ssh_server.known_hosts)
    source = _source(ssh_server.url(spec_repo), tmp_path, auth=auth)
    sha = source.fetch()
    assert sha == spec_repo.head()
    assert (source.checkout(sha) / "cms-fra-1.yaml").read_text() == SPEC_FILES[
        "specs/cms-fra-1.yaml"
    ]
    new = spec_repo.commit({"specs/cms-fra-2.yaml": "cluster: cms-fra-2\n"}, "add cms-fra-2")
    assert source.fetch() == new
    assert source.changed_paths(sha, new) == {"cms-fra-2.yaml"}


def test_a_host_key_not_in_known_hosts_is_refused_before_anything_is_fetched(
    ssh_server: SshServer, spec_repo: SpecRepo, tmp_path: Path
) -> None:
    auth = SshDeployKey(ssh_server.deploy_key, ssh_server.other_host_key_known_hosts)
    source = _source(ssh_server.url(spec_repo), tmp_path, auth=auth)
    with pytest.raises(GitError, match="Host key verification failed") as caught:
        source.fetch()
    assert "host key differs from the known_hosts file" in str(caught.value)
    assert not caught.value.retryable
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    auth = SshDeployKey(ssh_server.deploy_key, empty)
    with pytest.raises(GitError, match="Host key verification failed"):
        _source(ssh_server.url(spec_repo), tmp_path, auth=auth).fetch()
    assert not (source.root_dir / "checkouts").exists()
    assert not (source.root_dir / "current").exists()
    assert run_git(["for-each-ref"], git_dir=source.repo).text == ""


def test_key_and_known_hosts_paths_with_spaces_and_quotes_work(
    ssh_server: SshServer, spec_repo: SpecRepo, tmp_path: Path
) -> None:
    folder = tmp_path / "it's a $(dangerous) folder"
    folder.mkdir()
    key, known = folder / "deploy key", folder / "known hosts"
    key.write_bytes(ssh_server.deploy_key.read_bytes())
    key.chmod(0o600)
    known.write_bytes(ssh_server.known_hosts.read_bytes())
    auth = SshDeployKey(key, known)
    command = shlex.split(auth.environment()["GIT_SSH_COMMAND"])
    assert command[command.index("-i") + 1] == str(key)
    assert f'UserKnownHostsFile="{known}"' in command
    assert "StrictHostKeyChecking=yes" in command and "BatchMode=yes" in command
    assert _source(ssh_server.url(spec_repo), tmp_path, auth=auth).fetch() == spec_repo.head()
    odd = folder / "100%"
    odd.write_text("")
    with pytest.raises(GitError, match="ssh cannot be given a path"):
        SshDeployKey(key, odd).environment()


def test_a_deploy_key_readable_by_others_is_refused(
    ssh_server: SshServer, spec_repo: SpecRepo, tmp_path: Path
) -> None:
    key = tmp_path / "key"
    key.write_bytes(ssh_server.deploy_key.read_bytes())
    key.chmod(0o640)
    source = _source(ssh_server.url(spec_repo), tmp_path, auth=SshDeployKey(key, key))
    with pytest.raises(GitError, match="chmod 600") as caught:
        source.fetch()
    assert "PRIVATE KEY" not in str(caught.value)


def test_a_new_commit_gives_a_new_sha_and_its_changed_paths(
    git_daemon: GitDaemon, spec_repo: SpecRepo, tmp_path: Path
) -> None:
    source = _source(git_daemon.url(spec_repo), tmp_path)
    first = source.fetch()
    assert source.fetch() == first  # nothing new
    second = spec_repo.commit(
        {"specs/cms-fra-1.yaml": "cluster: cms-fra-1\nnodes: [a, b]\n",
         "specs/certs/ca.pem": None, "specs/cms-lon-1.yaml": "cluster: cms-lon-1\n",
         "README.md": "changed outside the spec folder\n"},
        "rotate",
    )  # fmt: skip
    assert source.fetch() == second
    assert source.changed_paths(first, second) == {
        "cms-fra-1.yaml", "certs/ca.pem", "cms-lon-1.yaml",
    }  # fmt: skip
    assert source.changed_paths(second, second) == frozenset()
    everything = GitSource(git_daemon.url(spec_repo), "main", ".", source.root_dir)
    assert "README.md" in everything.changed_paths(first, second)
    folder = source.checkout(second)
    assert not (folder / "certs" / "ca.pem").exists()
    assert source.revision(second).subject == "rotate"


def test_a_failed_checkout_leaves_current_as_it_was(
    git_daemon: GitDaemon, spec_repo: SpecRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _source(git_daemon.url(spec_repo), tmp_path)
    first = source.fetch()
    source.checkout(first)
    with pytest.raises(GitError, match="not in the fetched repository"):
        source.checkout("0" * 40)
    with pytest.raises(GitError, match="not a full commit sha"):
        source.checkout("HEAD")
    second = spec_repo.commit({"specs/cms-fra-2.yaml": "x: 1\n"}, "add cms-fra-2")
    assert source.fetch() == second

    def disk_full(top: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(git_source_module, "sync_tree", disk_full)
    with pytest.raises(OSError, match="No space"):
        source.checkout(second)
    assert source.current_sha() == first
    assert sorted(p.name for p in (source.root_dir / "checkouts").iterdir()) == [first]
    monkeypatch.undo()
    gone = spec_repo.commit({"specs/cms-fra-1.yaml": None, "specs/cms-fra-2.yaml": None,
                             "specs/certs/ca.pem": None}, "remove the spec folder")  # fmt: skip
    source.fetch()
    with pytest.raises(GitError, match="has no folder specs"):
        source.checkout(gone)
    assert source.current_sha() == first
    assert source.checkout(second).parent.name == second


def test_current_always_names_a_complete_tree(
    git_daemon: GitDaemon, spec_repo: SpecRepo, tmp_path: Path
) -> None:
    """A reader resolving ``current`` while checkouts switch back and forth never sees a
    partial tree: every file of one revision is there, with that revision's marker."""
    shas = [spec_repo.head()]
    for n in range(1, 3):
        files = {f"specs/c{i}.yaml": f"rev {n}\n" for i in range(40)}
        shas.append(spec_repo.commit({**files, "specs/marker": f"rev {n}\n"}, f"rev {n}"))
    source = _source(git_daemon.url(spec_repo), tmp_path)
    source.fetch()
    stop, seen, problems = threading.Event(), set(), []

    def reader() -> None:
        while not stop.is_set():
            try:
                # resolved once: a path through the link would follow it anew at every open
                tree = _tree((source.root_dir / "current").resolve() / "specs")
            except FileNotFoundError:
                continue  # before the first checkout, or a pruned tree under the reader
            marker = tree.get("marker", "rev 0\n")
            seen.add(marker)
            expected = 40 if marker != "rev 0\n" else 0
            if sum(1 for v in tree.values() if v == marker) != expected + (marker != "rev 0\n"):
                problems.append(sorted(tree))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(4):
            for sha in shas:
                source.checkout(sha)
    finally:
        stop.set()
        thread.join()
    assert not problems
    assert len(seen) >= 2


def test_old_checkouts_are_pruned_and_git_keeps_their_commits(
    git_daemon: GitDaemon, spec_repo: SpecRepo, tmp_path: Path
) -> None:
    source = _source(git_daemon.url(spec_repo), tmp_path)
    shas = [source.fetch()]
    for n in range(4):
        spec_repo.commit({"specs/n.yaml": f"{n}\n"}, f"commit {n}")
        shas.append(source.fetch())
    for sha in shas:
        source.checkout(sha)
    left = {p.name for p in (source.root_dir / "checkouts").iterdir()}
    assert left == set(shas[-KEEP_CHECKOUTS:])
    refs = run_git(["for-each-ref", "--format=%(refname)"], git_dir=source.repo).text.split()
    assert {r.rsplit("/", 1)[-1] for r in refs if "/kept/" in r} == left
    source.checkout(shas[-3])  # an older kept one becomes current: reused, not rewritten
    assert source.current_sha() == shas[-3]
    (source.root_dir / "checkouts" / f"{shas[0]}.tmp-dead").mkdir()  # an interrupted run
    source.prune()
    assert {p.name for p in (source.root_dir / "checkouts").iterdir()} == left


def test_everything_under_the_root_is_the_owners_only(
    git_daemon: GitDaemon, spec_repo: SpecRepo, tmp_path: Path
) -> None:
    source = _source(git_daemon.url(spec_repo), tmp_path)
    spec_repo.commit({"specs/run.sh": "#!/bin/sh\n"}, "a script")
    os.chmod(spec_repo.work / "specs" / "run.sh", 0o755)
    git("update-index", "--chmod=+x", "specs/run.sh", cwd=spec_repo.work)
    git("commit", "-q", "-m", "executable", cwd=spec_repo.work)
    git("push", "-q", "origin", "HEAD:main", cwd=spec_repo.work)
    source.checkout(source.fetch())
    assert stat.S_IMODE(source.root_dir.stat().st_mode) == 0o700
    for path in source.root_dir.rglob("*"):
        if not path.is_symlink():
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode & 0o077 == 0, f"{path} has mode {mode:04o}"
    files = [p for p in (source.root_dir / "checkouts").rglob("*") if p.is_file()]
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o600, 0o700}


def test_a_missing_branch_or_a_bad_path_is_a_git_error(
    git_daemon: GitDaemon, spec_repo: SpecRepo, tmp_path: Path
) -> None:
    url = git_daemon.url(spec_repo)
    with pytest.raises(GitError, match="couldn't find remote ref"):
        GitSource(url, "nope", "specs", tmp_path / "a").fetch()
    with pytest.raises(GitError, match="check-ref-format"):
        GitSource(url, "bad..name", "specs", tmp_path / "b").fetch()
    with pytest.raises(GitError, match="relative path"):
        GitSource(url, "main", "../etc", tmp_path / "c")
    with pytest.raises(GitError, match="not a usable git URL"):
        GitSource("--upload-pack=touch /tmp/x", "main", "specs", tmp_path / "d")


# ----------------------------------------------------------------------------- signatures
def test_signatures_verified_unsigned_and_bad(
    git_daemon: GitDaemon, spec_repo: SpecRepo, signing_keys: SigningKeys, tmp_path: Path
) -> None:
    source = _source(git_daemon.url(spec_repo), tmp_path)
    signers = signing_keys.allowed_signers
    unsigned = source.fetch()
    verdict = source.verify(unsigned, signers)
    assert verdict.signature is SignatureState.UNSIGNED and verdict.signer is None

    good = spec_repo.commit({"specs/a.yaml": "a\n"}, "signed", sign_with=signing_keys.allowed)
    source.fetch()
    verdict = source.verify(good, signers)
    assert verdict.signature is SignatureState.VERIFIED
    assert verdict.signer == signing_keys.principal and verdict.subject == "signed"

    other = spec_repo.commit({"specs/b.yaml": "b\n"}, "by mallory", sign_with=signing_keys.other)
    source.fetch()
    verdict = source.verify(other, signers)
    assert verdict.signature is SignatureState.BAD
    assert verdict.signature_problem and "No principal matched" in verdict.signature_problem

    raw = git("cat-file", "commit", good, cwd=spec_repo.work).replace("signed", "tampered", 1)
    forged = run_git(["hash-object", "-t", "commit", "-w", "--stdin"], git_dir=source.repo,
                     stdin=raw.encode()).text.strip()  # fmt: skip
    verdict = source.verify(forged, signers)
    assert verdict.signature is SignatureState.BAD
    assert verdict.signature_problem and "incorrect signature" in verdict.signature_problem

    with pytest.raises(GitError, match="allowed signers file"):
        source.verify(good, tmp_path / "missing")


# ----------------------------------------------------------------------------- local runs
def test_local_revision_inside_and_outside_a_checkout(
    spec_repo: SpecRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = spec_repo.work / "specs" / "cms-fra-1.yaml"
    short = spec_repo.head()[:7]
    assert local_revision(spec) == f"revision: working tree at {short} 'add cms-fra-1'"
    assert local_state(spec).commit is not None
    spec.write_text("changed\n")
    assert local_revision(spec).endswith("'add cms-fra-1' (modified)")
    git("checkout", "-q", "--", "specs/cms-fra-1.yaml", cwd=spec_repo.work)
    new = spec_repo.work / "specs" / "new.yaml"
    new.write_text("untracked\n")
    assert local_revision(new).endswith("(modified)")
    ca = spec_repo.work / "specs" / "certs" / "ca.pem"
    ca.write_text("other\n")
    assert local_revision(spec, related=[ca]).endswith("(modified)")
    (spec_repo.work / ".gitignore").write_text("ignored.yaml\n")
    ignored = spec_repo.work / "specs" / "ignored.yaml"
    ignored.write_text("x: 1\n")
    assert local_revision(ignored).endswith("(modified)")
    assert not local_revision(spec).endswith("(modified)")

    outside = tmp_path / "plain" / "spec.yaml"
    outside.parent.mkdir()
    outside.write_text("x: 1\n")
    assert local_revision(outside) == "revision: working tree"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert local_revision(spec) == "revision: working tree"


# ----------------------------------------------------------------------------- secrets
def test_errors_never_show_the_https_token_or_url_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from servers import free_port

    port = free_port("127.0.0.1")  # nothing listens there
    token = "glpat-s3cr3t-t0ken-value"
    monkeypatch.setenv("GIT_TOKEN_FOR_TEST", token)
    for auth in (HttpsToken("GIT_TOKEN_FOR_TEST"), HttpsToken("GIT_TOKEN_FOR_TEST", "oauth2")):
        source = _source(f"http://127.0.0.1:{port}/specs.git", tmp_path, auth=auth)
        with pytest.raises(GitError) as caught:
            source.fetch()
        message = str(caught.value)
        assert token not in message and "127.0.0.1" in message and caught.value.retryable
        assert "Authorization" not in message
    env = clean_environment(HttpsToken("GIT_TOKEN_FOR_TEST"))
    assert env["GIT_CONFIG_KEY_0"] == "http.extraHeader" and token in env["GIT_CONFIG_VALUE_0"]
    assert (
        env["GIT_CONFIG_KEY_1"] == "http.followRedirects" and env["GIT_CONFIG_VALUE_1"] == "false"
    )
    assert "GIT_TOKEN_FOR_TEST" not in env

    with_password = f"http://deploy:{token}@127.0.0.1:{port}/specs.git"
    source = _source(with_password, tmp_path)
    assert token not in source.safe_url and "***@127.0.0.1" in source.safe_url
    with pytest.raises(GitError) as caught:
        source.fetch()
    assert token not in str(caught.value)
    assert (
        scrub("https://u:p@host/x ssh://git@h/y ssh://git:pw@h/z HTTPS://tok@h")
        == "https://***@host/x ssh://git@h/y ssh://git:***@h/z HTTPS://***@h"
    )

    monkeypatch.delenv("GIT_TOKEN_FOR_TEST")
    with pytest.raises(GitError, match="GIT_TOKEN_FOR_TEST"):
        _source(
            f"http://127.0.0.1:{port}/specs.git", tmp_path, auth=HttpsToken("GIT_TOKEN_FOR_TEST")
        ).fetch()


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Records each request's path and Authorization header; redirects when told to."""

    seen: ClassVar[list[tuple[str, str | None]]] = []
    redirect_to: ClassVar[str | None] = None

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        if self.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.redirect_to + self.path)
        else:
            self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def _http_server(redirect_to: str | None = None) -> Iterator[tuple[str, list[Any]]]:
    handler = cast(
        "type[_Recorder]", type("Handler", (_Recorder,), {"seen": [], "redirect_to": redirect_to})
    )
    server = http.server.ThreadingHTTPServer((DAEMON_HOST, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{DAEMON_HOST}:{server.server_address[1]}", handler.seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_token_goes_in_a_header_to_the_urls_host_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "ghs_t0ken-for-the-header-test"
    monkeypatch.setenv("GIT_TOKEN_FOR_TEST", token)
    with _http_server() as (url, seen):
        with pytest.raises(GitError) as caught:
            _source(f"{url}/specs.git", tmp_path, auth=HttpsToken("GIT_TOKEN_FOR_TEST")).fetch()
        assert token not in str(caught.value)
        assert seen and all(auth == f"Bearer {token}" for _, auth in seen)
        assert all(token not in path for path, _ in seen)
        with _http_server(redirect_to=url) as (redirecting, first):
            seen.clear()
            auth = HttpsToken("GIT_TOKEN_FOR_TEST", username="x-access-token")
            with pytest.raises(GitError, match="returned error: 302"):
                _source(f"{redirecting}/specs.git", tmp_path / "r", auth=auth).fetch()
            basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
            assert first and first[0][1] == f"Basic {basic}"
        assert seen == []  # the redirect was not followed: the other host saw nothing


def test_git_runs_with_a_timeout_and_bounded_output(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="output larger than 100 bytes"):
        run_git(["help", "-a"], limit=100)
    with pytest.raises(GitError, match="git hash-object failed"):
        run_git(["hash-object", str(tmp_path / "missing")])
    started = time.monotonic()
    with pytest.raises(GitError, match=r"git slow: timed out after 0\.3s") as caught:
        run_git(["slow"], config={"alias.slow": "!sleep 30"}, timeout=0.3)
    assert caught.value.retryable and time.monotonic() - started < 5
