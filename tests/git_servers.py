"""Real git servers for the git-source tests, on loopback only: git's own daemon on
127.0.51.1 and OpenSSH's sshd on 127.0.51.2 (root logs in with a deploy key), plus a spec
repository to commit to and SSH signing keys with an allowed-signers file.

The context managers (``running_git_daemon``, ``running_sshd``) also serve measurements
outside pytest; the fixtures wrap them (servers per test module, repositories per test).
A missing binary fails the test with the Debian package to install (``.ci/run`` installs
them), it never skips.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import pytest
from servers import free_port, stop_process

DAEMON_HOST = "127.0.51.1"
SSHD_HOST = "127.0.51.2"
SPEC_FILES = {
    "specs/cms-fra-1.yaml": "cluster: cms-fra-1\nnodes: [a, b, c]\n",
    "specs/certs/ca.pem": "-----BEGIN CERTIFICATE-----\nnot really\n",
    "README.md": "specs for the lab\n",
}
GIT_ENV = {
    "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C",
    "GIT_AUTHOR_NAME": "Ada Admin", "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada Admin", "GIT_COMMITTER_EMAIL": "ada@example.com",
}  # fmt: skip
_names = count(1)


def require(binary: str, package: str) -> str:
    """The path of ``binary``; fails the test naming the apt package when it is missing."""
    found = shutil.which(binary, path=f"{os.environ.get('PATH', os.defpath)}:/usr/sbin")
    if found is None:
        pytest.fail(f"{binary} not installed: apt-get install {package} (.ci/run does)")
    return found


def git(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    """Run the test's own git (not the reconciler's); its stdout."""
    full_env = {**os.environ, **GIT_ENV, **(env or {})}
    result = subprocess.run(
        [require("git", "git"), *args], cwd=cwd, env=full_env, capture_output=True, text=True
    )
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout


def wait_for_port(host: str, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while True:
        assert proc.poll() is None, log.read_text(errors="replace")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        assert time.monotonic() < deadline, f"no server on {host}:{port}"
        time.sleep(0.05)


@dataclass
class SpecRepo:
    """A bare repository (what the servers serve) and a clone to make commits in."""

    bare: Path
    work: Path

    def commit(
        self, files: Mapping[str, str | None], message: str, sign_with: Path | None = None
    ) -> str:
        """Write (or, for None, delete) ``files``, commit, push; the new commit's sha."""
        for name, text in files.items():
            path = self.work / name
            if text is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
        git("add", "--all", cwd=self.work)
        signing = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={sign_with}"]
        flags = [*signing, "commit", "-q", "-S"] if sign_with else ["commit", "-q"]
        git(*flags, "-m", message, cwd=self.work)
        git("push", "-q", "origin", "HEAD:main", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work).strip()

    def head(self) -> str:
        return git("rev-parse", "HEAD", cwd=self.work).strip()


def make_spec_repo(base: Path, name: str) -> SpecRepo:
    """``base/NAME.git`` with one commit of :data:`SPEC_FILES` on ``main``."""
    bare = base / f"{name}.git"
    git("init", "-q", "--bare", "-b", "main", str(bare))
    work = base.parent / f"{name}-work"
    git("clone", "-q", str(bare), str(work))
    git("checkout", "-q", "-b", "main", cwd=work)
    repo = SpecRepo(bare, work)
    repo.commit(SPEC_FILES, "add cms-fra-1")
    return repo


@dataclass(frozen=True)
class GitDaemon:
    base: Path
    port: int

    def url(self, repo: SpecRepo) -> str:
        return f"git://{DAEMON_HOST}:{self.port}/{repo.bare.relative_to(self.base)}"


@contextlib.contextmanager
def running_git_daemon(base: Path) -> Iterator[GitDaemon]:
    """``git daemon`` exporting every repository under ``base`` on 127.0.51.1."""
    port = free_port(DAEMON_HOST)
    log = base.parent / "git-daemon.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [require("git", "git"), "daemon", "--export-all", "--reuseaddr",
             f"--base-path={base}", f"--listen={DAEMON_HOST}", f"--port={port}", str(base)],
            env={**os.environ, **GIT_ENV}, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for_port(DAEMON_HOST, port, proc, log)
            yield GitDaemon(base, port)
        finally:
            stop_process(proc)


def keygen(path: Path, comment: str) -> Path:
    """A new ed25519 key pair at ``path`` (0600) and ``path.pub``; the private key's path."""
    subprocess.run(
        [require("ssh-keygen", "openssh-client"), "-q", "-t", "ed25519", "-N", "", "-C",
         comment, "-f", str(path)],
        check=True, capture_output=True,
    )  # fmt: skip
    path.chmod(0o600)
    return path


@dataclass(frozen=True)
class SshServer:
    port: int
    deploy_key: Path
    known_hosts: Path
    other_host_key_known_hosts: Path  # names this server with a different key

    def url(self, repo: SpecRepo) -> str:
        return f"ssh://root@{SSHD_HOST}:{self.port}{repo.bare}"


@contextlib.contextmanager
def running_sshd(home: Path, host: str = SSHD_HOST) -> Iterator[SshServer]:
    """An sshd on ``host`` (default 127.0.51.2) with its own host key; root logs in with a
    deploy key only."""
    sshd = require("sshd", "openssh-server")
    assert os.geteuid() == 0, "the sshd fixture runs as root (it logs root in by key)"
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
    host_key = keygen(home / "host_key", "test host")
    other_key = keygen(home / "other_host_key", "impostor")
    deploy = keygen(home / "deploy_key", "deploy")
    (home / "authorized_keys").write_text(Path(f"{deploy}.pub").read_text())
    port = free_port(host)
    config = home / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress {host}\nHostKey {host_key}\n"
        f"PidFile {home / 'sshd.pid'}\nAuthorizedKeysFile {home / 'authorized_keys'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nLogLevel VERBOSE\n"
    )
    for name, key in (("known_hosts", host_key), ("known_hosts_other", other_key)):
        public = " ".join(Path(f"{key}.pub").read_text().split()[:2])
        (home / name).write_text(f"[{host}]:{port} {public}\n")
    log = home / "sshd.log"
    proc = subprocess.Popen([sshd, "-D", "-f", str(config), "-E", str(log)])
    try:
        wait_for_port(host, port, proc, log)
        yield SshServer(port, deploy, home / "known_hosts", home / "known_hosts_other")
    finally:
        stop_process(proc)


@dataclass(frozen=True)
class SigningKeys:
    allowed: Path  # its principal is in the allowed-signers file
    other: Path  # a key nobody allowed
    allowed_signers: Path
    principal: str = "ada@example.com"


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the servers serve repositories from."""
    base = tmp_path_factory.mktemp("served") / "repos"
    base.mkdir()
    return base


@pytest.fixture
def spec_repo(served: Path) -> SpecRepo:
    return make_spec_repo(served, f"specs{next(_names)}")


@pytest.fixture(scope="module")
def git_daemon(served: Path) -> Iterator[GitDaemon]:
    with running_git_daemon(served) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="module")
def signing_keys(tmp_path_factory: pytest.TempPathFactory) -> SigningKeys:
    home = tmp_path_factory.mktemp("signing")
    allowed, other = keygen(home / "ada", "ada"), keygen(home / "mallory", "mallory")
    signers = home / "allowed_signers"
    public = Path(f"{allowed}.pub").read_text().strip()
    signers.write_text(f'ada@example.com namespaces="git" {public}\n')
    return SigningKeys(allowed, other, signers)
