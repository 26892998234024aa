"""Running the git command line: a clean environment, a timeout, bounded output, one-line errors.

Every git the reconciler runs goes through :func:`run_git`: no user or system configuration
(``GIT_CONFIG_GLOBAL=/dev/null``, ``GIT_CONFIG_NOSYSTEM=1``), no prompt
(``GIT_TERMINAL_PROMPT=0``, ssh in batch mode), C locale (git's messages are parsed), only
a few variables of the caller's environment passed on (``PATH``, ``HOME``, ``TMPDIR``, the
proxy and CA-bundle variables). A failure is a :class:`GitError` with one line: the git
subcommand and git's first error line, with credentials in URLs shown as ``***`` and any
registered secret masked.

:class:`GitAuth` says how git authenticates to the remote: :class:`SshDeployKey` (a key
file readable only by its owner and a known_hosts file; ssh reads no configuration file and
no global known_hosts, so host keys are verified against that file only, unknown or changed
keys refused), :class:`HttpsToken` (a token read from an environment variable, sent as an
``http.extraHeader`` through ``GIT_CONFIG_*`` variables: never on a command line or in a
URL), or :data:`NO_AUTH` (git daemon, file URLs). git runs in a session of its own, so a
timeout kills ssh and whatever else it started too.
"""

from __future__ import annotations

import base64
import os
import re
import selectors
import shlex
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.common.errors import ReconcilerError
from reconciler.common.logging_setup import register_secret, scrub_text
from reconciler.spec.cert_checks import key_permission_problem

OUTPUT_LIMIT = 4 * 1024 * 1024
PASSED_ON = (
    "PATH", "HOME", "TMPDIR", "http_proxy", "https_proxy", "no_proxy", "all_proxy",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "GIT_SSL_CAINFO", "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)  # fmt: skip
# In http(s) URLs the whole user part may be a token; elsewhere only a password is secret.
_HTTP_CREDENTIALS = re.compile(r"(?P<scheme>\bhttps?://)[^/@\s]+@", re.IGNORECASE)
_PASSWORD = re.compile(r"(?P<user>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/:@\s]*):[^/@\s]*@")
_SSH_VERDICTS = ("Host key verification failed", "Permission denied", "Load key")
_RETRYABLE = (
    "could not resolve host", "connection refused", "connection timed out", "timed out",
    "connection reset", "network is unreachable", "early eof", "the remote end hung up",
    "failed to connect", "could not connect",
)  # fmt: skip


class GitError(ReconcilerError):
    """A git command failed; ``str()`` is one line without credentials."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def scrub(text: str) -> str:
    """``text`` with URL credentials shown as ``***`` (an http(s) URL's whole user part, any
    other URL's password) and every registered secret masked."""
    text = _HTTP_CREDENTIALS.sub(r"\g<scheme>***@", text)
    return scrub_text(_PASSWORD.sub(r"\g<user>:***@", text))


@dataclass(frozen=True)
class SshDeployKey:
    """Git over SSH with one key and one known_hosts file (host keys verified against it)."""

    key: Path
    known_hosts: Path

    def environment(self) -> dict[str, str]:
        for what, path in (("deploy key", self.key), ("known_hosts file", self.known_hosts)):
            try:
                info = path.stat()
            except OSError as exc:
                raise GitError(f"{what} {path}: {exc.strerror or exc}") from None
            if not stat.S_ISREG(info.st_mode):
                raise GitError(f"{what} {path}: not a regular file")
            if path is self.key and (problem := key_permission_problem(info.st_mode)):
                raise GitError(f"deploy key {path}: {problem.message}")
        key, known_hosts = str(self.key.absolute()), str(self.known_hosts.absolute())
        for text in (key, known_hosts):  # ssh expands % and splits or unquotes these itself
            if any(ch in text for ch in '%"\\') or not text.isprintable():
                raise GitError(f'{text!r}: ssh cannot be given a path with %, " or \\ in it')
        command = [
            "ssh", "-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes",
            "-o", f'UserKnownHostsFile="{known_hosts}"', "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
        ]  # fmt: skip
        return {"GIT_SSH_COMMAND": shlex.join(command), "GIT_SSH_VARIANT": "ssh"}


@dataclass(frozen=True)
class HttpsToken:
    """Git over HTTPS with a token read from the environment variable ``env_var``.

    Sent as ``Authorization: Bearer TOKEN``; with a ``username`` as HTTP Basic
    ``username:TOKEN`` instead (GitHub: ``x-access-token``, GitLab: ``oauth2``). Redirects
    are not followed, so the header goes to the URL's host only.
    """

    env_var: str
    username: str | None = None

    def environment(self) -> dict[str, str]:
        token = os.environ.get(self.env_var, "")
        if not token:
            raise GitError(f"environment variable {self.env_var} (the git token) is not set")
        register_secret(token)
        if self.username is None:
            header = f"Authorization: Bearer {token}"
        else:
            pair = base64.b64encode(f"{self.username}:{token}".encode()).decode("ascii")
            register_secret(pair)
            header = f"Authorization: Basic {pair}"
        return {  # no redirects: git would send the header to wherever it is redirected
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": header,
            "GIT_CONFIG_KEY_1": "http.followRedirects",
            "GIT_CONFIG_VALUE_1": "false",
        }


@dataclass(frozen=True)
class NoAuth:
    """No credentials: git daemon, file URLs, public HTTPS."""

    def environment(self) -> dict[str, str]:
        return {}


GitAuth = SshDeployKey | HttpsToken | NoAuth
NO_AUTH = NoAuth()


def git_binary() -> str:
    """The path of git; GitError naming the package when it is not installed."""
    found = shutil.which("git")
    if found is None:
        raise GitError("git is not installed (apt-get install git)")
    return found


def clean_environment(auth: GitAuth = NO_AUTH) -> dict[str, str]:
    env = {name: os.environ[name] for name in PASSED_ON if name in os.environ}
    env.setdefault("PATH", os.defpath)
    env.update(
        GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="", SSH_ASKPASS="", LC_ALL="C", LANG="C", GIT_PAGER="cat", PAGER="cat",
    )  # fmt: skip
    env.update(auth.environment())
    return env


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


def _first_error_line(stderr: str) -> str:
    """The line that says what went wrong: ssh's verdict on the host key or the login when
    there is one (it comes after ssh's banner), else git's first line that is not a hint."""
    lines = [line.strip().strip("@").strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line]
    for verdict in _SSH_VERDICTS:
        found = next((line for line in lines if line.startswith(verdict)), None)
        if found is not None:
            if "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr:
                found += " (the server's host key differs from the known_hosts file)"
            lines = [found]
            break
    for line in lines:
        if not line.lower().startswith(("hint:", "warning:")):
            return "".join(ch if ch.isprintable() else "?" for ch in line)
    return ""


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill git and what it started (ssh, helpers): it runs in a session of its own."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _read_bounded(
    proc: subprocess.Popen[bytes], stdin: bytes, timeout: float, limit: int
) -> tuple[bytes, bytes, str | None]:
    """Feed ``stdin`` to ``proc`` and read its output until it closes; the reason when it was
    killed (timeout, too much output)."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    chunks: dict[int, list[bytes]] = {proc.stdout.fileno(): [], proc.stderr.fileno(): []}
    total, deadline, problem = 0, time.monotonic() + timeout, None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        sel.register(proc.stderr, selectors.EVENT_READ)
        if stdin:
            sel.register(proc.stdin, selectors.EVENT_WRITE)
        else:
            proc.stdin.close()
        while sel.get_map() and problem is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                problem = f"timed out after {timeout:g}s"
                break
            for key, _ in sel.select(remaining):
                if key.fileobj is proc.stdin:
                    try:
                        stdin = stdin[os.write(key.fd, stdin[:65536]) :]
                    except BrokenPipeError:
                        stdin = b""
                    if not stdin:
                        sel.unregister(proc.stdin)
                        proc.stdin.close()
                    continue
                data = os.read(key.fd, 65536)
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                chunks[key.fd].append(data)
                total += len(data)
                if total > limit:
                    problem = f"output larger than {limit} bytes"
    if problem is not None:
        _kill_group(proc)
    try:
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.wait()
        problem = problem or f"timed out after {timeout:g}s"
    out, err = (b"".join(chunks[f.fileno()]) for f in (proc.stdout, proc.stderr))
    return out, err, problem


def run_git(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    git_dir: Path | None = None,
    work_tree: Path | None = None,
    auth: GitAuth = NO_AUTH,
    config: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    limit: int = OUTPUT_LIMIT,
    umask: int = 0o077,
    stdin: bytes = b"",
    check: bool = True,
) -> GitResult:
    """Run ``git -c K=V... ARGS`` and return its result; GitError when it cannot run, times
    out, writes more than ``limit`` bytes, or (with ``check``) exits non-zero.

    ``git_dir``/``work_tree`` are given as ``--git-dir=``/``--work-tree=``; ``stdin`` is fed
    to git. Files git creates are the owner's only (``umask``). ``config`` values appear on git's
    command line: never pass a secret there (see :class:`HttpsToken`).
    """
    subcommand = next((a for a in args if not a.startswith("-")), "git")
    argv = [git_binary()]
    if git_dir is not None:
        argv.append(f"--git-dir={git_dir}")
    if work_tree is not None:
        argv.append(f"--work-tree={work_tree}")
    for key, value in (config or {}).items():
        argv += ["-c", f"{key}={value}"]
    environment = clean_environment(auth)
    environment.update(env or {})
    try:
        proc = subprocess.Popen(
            [*argv, *args], cwd=cwd, env=environment, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, umask=umask, close_fds=True,
            start_new_session=True,
        )  # fmt: skip
    except OSError as exc:
        raise GitError(f"git {subcommand}: cannot run git: {exc.strerror or exc}") from None
    with proc:
        out, err_bytes, problem = _read_bounded(proc, stdin, timeout, limit)
    err = err_bytes.decode("utf-8", "replace")
    if problem is not None:
        raise GitError(f"git {subcommand}: {problem}", retryable="timed out" in problem)
    if check and proc.returncode != 0:
        line = _first_error_line(err) or f"exited with status {proc.returncode}"
        retryable = any(word in err.lower() for word in _RETRYABLE)
        raise GitError(scrub(f"git {subcommand} failed: {line[:300]}"), retryable=retryable)
    return GitResult(proc.returncode, out, err)
