"""End to end on a fresh 3-node cmslab: SIGTERM while `reconcile apply` polls an asynchronous
command gives up the wait (the command keeps running on the node), starts nothing new, releases
the lock, and a plain re-run converges once the node has finished."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from .lab_harness import REPO, E2ELab, kill_process, lab_fixture

pytestmark = pytest.mark.lab
LAB_BASE = "127.0.23.1"


@pytest.fixture(scope="module")
def lab() -> Iterator[E2ELab]:
    yield from lab_fixture(LAB_BASE, 3)


def test_sigterm_during_a_polled_command_stops_waiting_and_releases_the_lock(
    lab: E2ELab,
) -> None:
    spec = lab.spec(3)
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler.cli", "apply", str(spec), "--yes"],
        cwd=REPO,
        env=lab.env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    seen: list[str] = []
    signalled = exited = 0.0
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            seen.append(line)
            if "database cluster initialize ..." in line:
                proc.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
            if time.monotonic() > deadline:
                break
        code = proc.wait(60)
        exited = time.monotonic()
    finally:
        kill_process(proc)
        if proc.stdout is not None:
            proc.stdout.close()
    text = "".join(seen)
    print(f"exit {exited - signalled:.2f} s after SIGTERM")  # measured, not asserted
    assert code == 1, text
    assert "Stopped by a signal" in text
    assert "STOPPED: stopped while `database cluster initialize` was running on cms-lab-1" in text
    assert "still running on the node (not waited for)" in text
    assert ": database cluster join" not in text  # no join started after the signal
    lab.wait_for(lambda r: r["cms-lab-1"]["last_result"] == "Success", what="initialize done")
    result = lab.apply(spec)  # no --break-lock needed: the lock was released
    assert result.code == 0, result.text
    assert lab.reconcile("plan", spec, "--detailed-exitcode").code == 0
