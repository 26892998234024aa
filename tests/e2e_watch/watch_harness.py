"""`reconcile watch` as a background process for the end-to-end tests: JSON log lines read
from a file, metrics read with urllib."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from e2e.lab_harness import REPO, E2ELab
from prometheus_client.parser import text_string_to_metric_families

Event = dict[str, Any]
N1, N2, N3 = "cms-lab-1", "cms-lab-2", "cms-lab-3"


class WatchProcess:
    """`reconcile watch` in the background; its JSON log lines are read from a file."""

    def __init__(self, lab: E2ELab, spec: Path, *args: str) -> None:
        self.log_path = lab.root / f"watch-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler.cli",
                "watch",
                str(spec),
                "--metrics-port",
                "0",
                "--log-format",
                "json",
                "--settle-seconds",
                "20",
                "--action-timeout",
                "90",
                "--poll-interval",
                "0.5",
                *args,
            ],
            cwd=REPO,
            env=lab.env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.port = int(self.wait_for(lambda e: e["event"] == "metrics listening", 60)["port"])

    def events(self) -> list[Event]:
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line still being written, or a non-JSON traceback line
        return out

    def wait_for(
        self, predicate: Callable[[Event], bool], timeout: float = 120, after: int = 0
    ) -> Event:
        """The first event (from index ``after``) matching ``predicate``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events()[after:]:
                if predicate(event):
                    return event
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"no matching event; log tail:\n{self.tail()}")

    def mark(self) -> int:
        return len(self.events())

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text().splitlines()[-lines:])

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def metric(self, name: str, **labels: str) -> float | None:
        key = (name, tuple(sorted({"cluster": "cmslab", **labels}.items())))
        return self.metrics().get(key)

    def wait_metric(
        self, name: str, wanted: Callable[[float | None], bool], timeout: float = 120, **labels: str
    ) -> None:
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.metric(name, **labels)
            if wanted(value):
                return
            time.sleep(0.3)
        raise AssertionError(f"{name}{labels} = {value}; log tail:\n{self.tail()}")

    def healthz(self) -> int:
        url = f"http://127.0.0.1:{self.port}/healthz"
        with urllib.request.urlopen(url, timeout=10) as response:
            status: int = response.status
            return status

    def stop(self, timeout: float = 120) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._log.close()
        return code

    def __enter__(self) -> WatchProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc.poll() is None:
            try:
                self.stop()
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        self._log.close()


def is_cycle(verdict: str | None = None) -> Callable[[Event], bool]:
    return lambda e: e["event"].startswith("cycle") and (verdict is None or e["verdict"] == verdict)


def move_master_away(lab: E2ELab) -> None:
    """Kill cms-lab-1 (the master), let another node win, bring cms-lab-1 back as a replica."""
    lab.fault(N1, "kill")
    lab.wait_for(lambda r: "master" in (r[N2]["role"], r[N3]["role"]), what="election")
    lab.fault(N1, "revive")
    lab.wait_for(lambda r: r[N1]["role"] == "replica", what="old master back as replica")
