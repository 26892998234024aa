"""Git remotes on loopback for `reconcile watch --git` end to end: git's own daemon and
OpenSSH's sshd (root logs in with a deploy key) on addresses the caller picks, the lab's
spec committed to a repository, and `reconcile watch --git` as a background process.

The servers are tests/git_servers.py's (same configuration, same helpers), bound to the
caller's addresses so that this module's tests share no address with the git-source tests.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from e2e.lab_harness import REPO, E2ELab
from git_servers import (
    GIT_ENV,
    SpecRepo,
    SshServer,
    git,
    require,
    running_sshd,
    wait_for_port,
)
from ruamel.yaml import YAML
from servers import free_port, stop_process

from e2e_watch.watch_harness import WatchProcess

HOOK_ENV = "RECONCILE_TEST_WEBHOOK_SECRET"
HOOK_SECRET = "a shared secret for the e2e webhook"


@contextlib.contextmanager
def git_daemon(base: Path, host: str) -> Iterator[str]:
    """``git daemon`` exporting every repository under ``base``; yields ``git://host:port``."""
    port = free_port(host)
    log = base.parent / f"git-daemon-{host}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                require("git", "git"),
                "daemon",
                "--export-all",
                "--reuseaddr",
                f"--base-path={base}",
                f"--listen={host}",
                f"--port={port}",
                str(base),
            ],
            env={**os.environ, **GIT_ENV},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(host, port, proc, log)
            yield f"git://{host}:{port}"
        finally:
            stop_process(proc)


@contextlib.contextmanager
def sshd(home: Path, host: str) -> Iterator[SshServer]:
    """An sshd on ``host`` with its own host key; root logs in with a deploy key only."""
    with running_sshd(home, host) as server:
        yield server


def lab_spec_repo(lab: E2ELab, base: Path, name: str, nodes: int) -> SpecRepo:
    """A bare repository ``base/NAME.git`` (and a clone) holding the lab's spec in clusters/:
    the CA and the certificates committed with it, the keys and known_hosts named by
    absolute paths (secrets stay out of git), the first ``nodes`` nodes."""
    bare, work = base / f"{name}.git", base.parent / f"{name}-work"
    git("init", "-q", "--bare", "-b", "main", str(bare))
    git("clone", "-q", str(bare), str(work))
    git("checkout", "-q", "-b", "main", cwd=work)
    folder = work / "clusters"
    folder.mkdir()
    for sub in ("ca", "certs"):
        shutil.copytree(lab.root / sub, folder / sub)
    repo = SpecRepo(bare, work)
    repo.commit({"clusters/cmslab.yaml": lab_spec_text(lab, nodes)}, f"cmslab with {nodes} nodes")
    return repo


def lab_spec_text(lab: E2ELab, nodes: int, **changes: Any) -> str:
    yaml = YAML()
    data = yaml.load(lab.paths.lab_yaml.read_text())
    data["nodes"] = data["nodes"][:nodes]
    data["policy"] = {"allow_master_move": True, "allow_unsafe_topology": nodes < 3}
    for certs in [data["certificates"], *(n["certificates"] for n in data["nodes"])]:
        for pair in ("server", "client"):
            if pair in certs:
                certs[pair]["key"] = str(lab.root / certs[pair]["key"])
    data["ssh"]["known_hosts"] = str(lab.root / "known_hosts")
    data.update(changes)
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


class GitWatchProcess(WatchProcess):
    """`reconcile watch --git URL ...` in the background (JSON logs to a file)."""

    def __init__(self, lab: E2ELab, state_dir: Path, url: str, *args: str) -> None:
        self.log_path = lab.root / f"watch-git-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("w")
        self.state_dir = state_dir
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler.cli",
                "watch",
                "--git",
                url,
                "--path",
                "clusters",
                "--state-dir",
                str(state_dir),
                "--metrics-port",
                "0",
                "--log-format",
                "json",
                "--webhook-secret-env",
                HOOK_ENV,
                "--settle-seconds",
                "20",
                "--action-timeout",
                "90",
                "--poll-interval",
                "0.5",
                *args,
            ],
            cwd=REPO,
            env={**lab.env(), HOOK_ENV: HOOK_SECRET},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.port = int(self.wait_for(lambda e: e["event"] == "metrics listening", 60)["port"])

    def hook(self, headers: dict[str, str] | None = None, body: bytes = b'{"ref":"main"}') -> int:
        """POST /hooks/git, signed as GitHub signs it unless ``headers`` are given."""
        if headers is None:
            digest = hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
            headers = {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Event": "push"}
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/hooks/git", data=body, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    def revision_metric(self) -> dict[str, float]:
        """revision -> value of cms_reconciler_applied_revision_info for the lab's cluster."""
        return {
            dict(labels)["revision"]: value
            for (name, labels), value in self.metrics().items()
            if name == "cms_reconciler_applied_revision_info"
            and dict(labels).get("cluster") == "cmslab"
        }

    def audit(self) -> list[dict[str, Any]]:
        path = self.state_dir / "cmslab.audit.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
