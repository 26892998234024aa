"""Colour on a terminal, none elsewhere: a real pseudo-terminal, NO_COLOR and --no-color.

The words never change: the coloured output with its escape codes removed is the
piped output.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli.colour import styled

ROOT = Path(__file__).resolve().parent.parent
PLAN = ["plan", "specs/example.yaml", "--observed", "specs/snapshots/example-drifted.yaml"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env["TERM"] = "xterm-256color"
    env.update(extra)
    return env


def on_terminal(*args: str, **env: str) -> tuple[int, str]:
    """Run `reconcile ARGS` with stdout and stderr on a pseudo-terminal."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler.cli", *args],
        stdout=slave,
        stderr=slave,
        stdin=subprocess.DEVNULL,
        env=_env(**env),
        cwd=ROOT,
    )
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode().replace("\r\n", "\n")


def piped(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli", *args],
        capture_output=True,
        text=True,
        env=_env(**env),
        cwd=ROOT,
        check=False,
    )


def test_a_terminal_gets_colour_and_the_same_words() -> None:
    code, shown = on_terminal(*PLAN)
    assert code == 0
    assert "\x1b[" in shown
    assert "\x1b[1;31m  ! s04  cms-ams-1" in shown  # the destructive step in bold red
    plain = piped(*PLAN)
    assert plain.returncode == 0
    assert "\x1b[" not in plain.stdout
    # stdout and stderr share the terminal: the same lines, in the order each stream wrote them
    # (a fresh clone's key-mode warnings go to stderr, so the two may interleave)
    assert sorted(ANSI.sub("", shown).splitlines()) == sorted(
        (plain.stdout + plain.stderr).splitlines()
    )


def test_no_color_environment_variable() -> None:
    code, shown = on_terminal(*PLAN, NO_COLOR="1")
    assert code == 0 and "Plan: 6 steps" in shown
    assert "\x1b[" not in shown


@pytest.mark.parametrize("where", ["after the command", "before the command"])
def test_no_color_flag(where: str) -> None:
    args = [*PLAN, "--no-color"] if where == "after the command" else ["--no-color", *PLAN]
    code, shown = on_terminal(*args)
    assert code == 0 and "Plan: 6 steps" in shown
    assert "\x1b[" not in shown


def test_dumb_terminal_gets_no_colour() -> None:
    code, shown = on_terminal(*PLAN, TERM="dumb")
    assert code == 0 and "\x1b[" not in shown


def test_errors_are_red_on_a_terminal_and_plain_in_a_pipe() -> None:
    code, shown = on_terminal("plan", "specs/example.yaml", "--observed", "missing.yaml")
    assert code == 1
    assert "missing.yaml: \x1b[1;31merror\x1b[0m: cannot read snapshot" in shown
    plain = piped("plan", "specs/example.yaml", "--observed", "missing.yaml")
    assert plain.returncode == 1 and "missing.yaml: error: cannot read snapshot" in plain.stderr
    assert "\x1b[" not in plain.stderr


def _styles(text: str) -> dict[str, str]:
    """Each styled span's text -> its style name."""
    t = styled(text)
    return {t.plain[s.start : s.end]: str(s.style) for s in t.spans}


def test_what_is_styled() -> None:
    spans = _styles(
        "Cluster emea-prod\n"
        "Steps, in order (+ change, ! destructive, [procedure]):\n"
        "  + s01  n1  database cluster localnode a\n"
        "        # n1 clusters on interface b\n"
        "  ! s02  n2  database cluster remove\n"
        "        # destructive: the node leaves the cluster\n"
        "Held back:\n"
        "  x n3: key a.key is not on the node\n"
        "  ~ n3 is not in the cluster\n"
        "  ! a warning\n"
        "[s03] n2: still running (10s elapsed); Last command: 'join' (In progress)\n"
        "[s04] n2: FAILED: it failed\n"
        "Verdict: converged\n"
        "Verdict: degraded\n"
        "No changes. The cluster matches the spec.\n"
    )
    assert spans["Cluster emea-prod"] == "reconcile.heading"
    assert spans["+ s01"] == "reconcile.change"
    assert spans["        # n1 clusters on interface b"] == "reconcile.comment"
    assert spans["  ! s02  n2  database cluster remove"] == "reconcile.destructive"
    assert spans["        # destructive: the node leaves the cluster"] == "reconcile.destructive"
    assert spans["  x n3: key a.key is not on the node"] == "reconcile.held"
    assert spans["~"] == "reconcile.drift"
    assert spans["  ! a warning"] == "reconcile.warning"
    assert spans["still running (10s elapsed); Last command: 'join' (In progress)"] == (
        "reconcile.progress"
    )
    assert spans["FAILED"] == "reconcile.bad"
    assert spans["converged"] == "reconcile.good"
    assert spans["degraded"] == "reconcile.bad"
    assert spans["No changes. The cluster matches the spec."] == "reconcile.good"
