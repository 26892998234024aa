"""Git reaction time: a push and its webhook -> the first log line of the new plan, beside
the file watcher's reaction to the same change, measured in the same run.

A fresh 3-node cmslab (127.0.62.11-13) and a bare repository served by `git daemon`
(127.0.62.20). Two `reconcile watch ... --mode report --interval 60` processes run side by
side with JSON logs: one follows the repository (`--git git://... --git-interval 60
--webhook-secret-env ...`), one watches a spec file. Each round toggles the clustering
interface (`a`/`b`, which changes the plan) in both, one after the other:

* git: commit, `git push`, `POST /hooks/git` (signed as GitHub signs it); measured from
  before the push to the watch's `revision checked out` line and to the first `planned step`
  line of the new plan;
* file: the spec file rewritten; measured to its first `planned step` line.

Both intervals are 60 s, so anything well under a second comes from the webhook or the
file watcher. Prints each round, the median and the maximum of both, and their ratio
(target: the git median under 1 s).

    python -m benchmarks.bench_git_reaction [--rounds 10]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from .lab_util import BenchLab, bench_lab, write_spec

REPO = Path(__file__).resolve().parents[1]
LAB_BASE = "127.0.62.11"
DAEMON_HOST = "127.0.62.20"
SECRET = "bench webhook secret"
GIT_ENV = {
    "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com", "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}  # fmt: skip
Event = dict[str, Any]


def git(*args: str, cwd: Path | None = None) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


def events(log: Path) -> list[Event]:
    out = []
    for line in log.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def wait(log: Path, after: int, predicate: Callable[[Event], bool], timeout: float = 60) -> Event:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in events(log)[after:]:
            if predicate(event):
                return event
        time.sleep(0.01)
    raise SystemExit(f"timed out; log tail:\n{log.read_text()[-3000:]}")


def ts(event: Event) -> float:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def absolute_spec(lab: BenchLab, interface: str) -> str:
    """The lab's spec with every file named by an absolute path (the repository holds only it)."""
    yaml = YAML()
    data = yaml.load(lab.paths.lab_yaml.read_text())
    data["interface"] = interface
    root = lab.paths.root
    for certs in [data["certificates"], *(n["certificates"] for n in data["nodes"])]:
        certs["ca"] = str(root / certs["ca"])
        for pair in ("server", "client"):
            if pair in certs:
                certs[pair] = {k: str(root / v) for k, v in certs[pair].items()}
    data["ssh"]["known_hosts"] = str(root / "known_hosts")
    path = root / "git-spec.tmp"
    with path.open("w") as fh:
        yaml.dump(data, fh)
    return path.read_text()


def watch(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("w") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "reconciler.cli", "watch", *args, "--mode", "report",
             "--interval", "60", "--log-format", "json"],
            cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
        )  # fmt: skip


def hook(port: int) -> None:
    body = b'{"ref": "refs/heads/main"}'
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/hooks/git",
        data=body,
        headers={"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Event": "push"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202, response.status


def planned(interface: str) -> Callable[[Event], bool]:
    command = f"database cluster localnode {interface}"
    return lambda e: e["event"] == "planned step" and e.get("command") == command


def report(name: str, values: list[float]) -> float:
    med = statistics.median(values)
    print(f"{name}: median {med * 1000:.0f} ms, max {max(values) * 1000:.0f} ms")
    return med


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with bench_lab(LAB_BASE, 3) as lab, tempfile.TemporaryDirectory(prefix="bench-git-") as tmp:
        root = Path(tmp)
        served, work = root / "served", root / "work"
        served.mkdir()
        git("init", "-q", "--bare", "-b", "main", str(served / "specs.git"))
        git("clone", "-q", str(served / "specs.git"), str(work))
        git("checkout", "-q", "-b", "main", cwd=work)
        spec_in_git = work / "cmslab.yaml"
        spec_in_git.write_text(absolute_spec(lab, "a"))
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", "interface a", cwd=work)
        git("push", "-q", "origin", "HEAD:main", cwd=work)
        spec_file = write_spec(lab, 3, "bench-file.yaml")
        text = spec_file.read_text()
        port = free_port(DAEMON_HOST)
        daemon = subprocess.Popen(
            ["git", "daemon", "--export-all", "--reuseaddr", f"--base-path={served}",
             f"--listen={DAEMON_HOST}", f"--port={port}", str(served)],
            env={**os.environ, **GIT_ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        env = {**os.environ, "BENCH_HOOK": SECRET}
        git_log, file_log = root / "git.log", root / "file.log"
        git_watch = watch(
            ["--git", f"git://{DAEMON_HOST}:{port}/specs.git", "--git-interval", "60",
             "--state-dir", str(root / "state"), "--metrics-port", "0",
             "--webhook-secret-env", "BENCH_HOOK"], git_log, env,
        )  # fmt: skip
        file_watch = watch([str(spec_file)], file_log, env)
        try:
            hook_port = int(wait(git_log, 0, lambda e: e["event"] == "metrics listening")["port"])
            wait(git_log, 0, lambda e: e["event"] == "cycle")
            wait(file_log, 0, lambda e: e["event"] == "cycle")
            time.sleep(1.0)  # let the file watcher settle on its directories
            to_checkout: list[float] = []
            git_s: list[float] = []
            file_s: list[float] = []
            for i in range(args.rounds):
                interface = "b" if i % 2 == 0 else "a"
                spec_in_git.write_text(absolute_spec(lab, interface))
                git("commit", "-q", "-am", f"interface {interface}", cwd=work)
                after = len(events(git_log))
                started = time.time()
                git("push", "-q", "origin", "HEAD:main", cwd=work)
                hook(hook_port)
                checked = wait(git_log, after, lambda e: e["event"] == "revision checked out")
                first = wait(git_log, after, planned(interface))
                to_checkout.append(ts(checked) - started)
                git_s.append(ts(first) - started)
                after = len(events(file_log))
                written = time.time()
                spec_file.write_text(text.replace("interface: a", f"interface: {interface}"))
                file_s.append(ts(wait(file_log, after, planned(interface))) - written)
                print(
                    f"round {i + 1:2d}: push+webhook -> checked out {to_checkout[-1] * 1000:5.0f} "
                    f"ms, -> first plan line {git_s[-1] * 1000:5.0f} ms; file write -> first "
                    f"plan line {file_s[-1] * 1000:5.0f} ms"
                )
                time.sleep(0.5)
        finally:
            for proc in (git_watch, file_watch):
                proc.send_signal(signal.SIGTERM)
            codes = [proc.wait(60) for proc in (git_watch, file_watch)]
            daemon.terminate()
            daemon.wait(10)
        print()
        report("push+webhook -> revision checked out", to_checkout)
        git_median = report("push+webhook -> first plan line", git_s)
        file_median = report("file write -> first plan line (file watch, same run)", file_s)
        print(
            f"git / file-watch median = {git_median / file_median:.2f}; interval 60 s "
            f"(target: git median < 1 s); watch exit codes {codes}"
        )


if __name__ == "__main__":
    main()
