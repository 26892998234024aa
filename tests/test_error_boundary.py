"""One error boundary (issue 13, point 1): every OS and argument error is one line naming the
flag or file, exit 1, never a traceback; and what the tool writes is its owner's only (point 6).

Each case runs the real command (`python -m reconciler.cli`) against files on this machine;
none reaches a node: the refusal comes before any connection.
"""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr
from pathlib import Path

import pytest

from reconciler.apply.audit import AuditLog
from reconciler.apply.locks.file import ApplyLock
from reconciler.cli import main as cli_main
from reconciler.common.private_files import private_dir, write_private_text

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "specs" / "example.yaml"
DRIFTED = ROOT / "specs" / "snapshots" / "example-drifted.yaml"


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def one_clear_line(done: subprocess.CompletedProcess[str], *expected: str) -> str:
    """rc 1, no traceback, the message once, naming what it must name."""
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, done.stderr
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_metrics_port_out_of_range() -> None:
    one_clear_line(run("watch", EXAMPLE, "--metrics-port", "99999"), "--metrics-port", "65535")


def test_metrics_port_from_environment_out_of_range() -> None:
    done = run("watch", EXAMPLE, env={"RECONCILE_METRICS_PORT": "70000"})
    one_clear_line(done, "$RECONCILE_METRICS_PORT", "1 to 65535")


def test_metrics_port_in_use(busy_port: int) -> None:
    done = run("watch", EXAMPLE, "--metrics-port", str(busy_port))
    one_clear_line(done, "--metrics-port", str(busy_port), "in use")


def test_metrics_address_not_on_this_host() -> None:
    done = run("watch", EXAMPLE, "--metrics-port", "9", "--metrics-address", "192.0.2.1")
    one_clear_line(done, "--metrics-address", "192.0.2.1")


def test_plan_out_into_a_missing_folder(tmp_path: Path) -> None:
    target = tmp_path / "nonexistent" / "plan.json"
    done = run("plan", EXAMPLE, "--observed", DRIFTED, "--out", target)
    one_clear_line(done, "--out", str(target), "does not exist")
    assert done.stdout == ""  # refused before planning


def test_plan_out_is_a_directory(tmp_path: Path) -> None:
    done = run("plan", EXAMPLE, "--observed", DRIFTED, "--out", tmp_path)
    one_clear_line(done, "--out", str(tmp_path), "is a directory")


def test_observe_output_is_a_directory(tmp_path: Path) -> None:
    one_clear_line(run("observe", EXAMPLE, "-o", tmp_path), "-o", "is a directory")


def test_apply_state_dir_that_cannot_be_made() -> None:
    done = run("apply", EXAMPLE, "--yes", "--state-dir", "/proc/x")
    one_clear_line(done, "--state-dir", "/proc/x")


@pytest.mark.parametrize("flag_value", ["-5", "0", "nan", "soon"])
def test_timeout_must_be_positive(flag_value: str) -> None:
    done = run("apply", EXAMPLE, "--yes", "--timeout", flag_value)
    one_clear_line(done, "--timeout")


def test_apply_missing_plan_file_is_called_a_plan(tmp_path: Path) -> None:
    done = run("apply", tmp_path / "missing.json", "--yes")
    one_clear_line(done, "missing.json", "saved plan")


def test_apply_truncated_plan_is_not_called_yaml(tmp_path: Path) -> None:
    saved = tmp_path / "plan.json"
    assert run("plan", EXAMPLE, "--observed", DRIFTED, "--out", saved).returncode == 0
    saved.write_text(saved.read_text(encoding="utf-8")[:300], encoding="utf-8")
    line = one_clear_line(run("apply", saved, "--yes"), str(saved), "invalid JSON")
    assert "YAML" not in line


def test_apply_foreign_json_is_not_validated_as_a_spec(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"a": 1}), encoding="utf-8")
    one_clear_line(run("apply", other, "--yes"), str(other), "not a saved plan")


def test_version() -> None:
    done = run("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("reconcile ") and done.stdout.split()[1][0].isdigit()


def test_unexpected_error_is_one_line_and_debug_shows_where(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(args: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli_main, "cmd_schema", broken)
    err = io.StringIO()
    with redirect_stderr(err):
        assert cli_main.main(["schema"]) == 1
    assert err.getvalue().count("\n") == 1
    assert "internal error (RuntimeError): boom" in err.getvalue()
    assert "--debug" in err.getvalue()
    with pytest.raises(RuntimeError, match="boom"):
        cli_main.main(["--debug", "schema"])


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_saved_plan_is_private(tmp_path: Path) -> None:
    saved = tmp_path / "plan.json"
    assert run("plan", EXAMPLE, "--observed", DRIFTED, "--out", saved).returncode == 0
    assert _mode(saved) == 0o600


def test_state_dir_and_its_files_are_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with ApplyLock.acquire(state, "cms-fra"):
        assert _mode(state) == 0o700
        assert [_mode(p) for p in state.iterdir()] == [0o600]
    AuditLog(state / "cms-fra.audit.jsonl", "cms-fra", "run1").record(
        node="cms-fra-1", command="status", result="ok", duration=0.1
    )
    assert {p.name: _mode(p) for p in state.iterdir()} == {"cms-fra.audit.jsonl": 0o600}


def test_existing_wide_state_is_narrowed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    log = state / "cms-fra.audit.jsonl"
    log.write_text("", encoding="utf-8")
    log.chmod(0o644)
    private_dir(state)
    AuditLog(log, "cms-fra", "run1").record(
        node="cms-fra-1", command="status", result="ok", duration=0.1
    )
    assert (_mode(state), _mode(log)) == (0o700, 0o600)


def test_private_text_replaces_whole(tmp_path: Path) -> None:
    target = tmp_path / "snapshot.yaml"
    target.write_text("old", encoding="utf-8")
    target.chmod(0o644)
    write_private_text(target, "new")
    assert (target.read_text(encoding="utf-8"), _mode(target)) == ("new", 0o600)
    assert [p.name for p in tmp_path.iterdir()] == ["snapshot.yaml"]


def test_nothing_plannable_stops_at_once_and_says_each_thing_once(tmp_path: Path) -> None:
    # Every node refuses the connection (nothing listens on 127.0.77.x:2299): nothing can be
    # planned and waiting cannot change that, so apply says so and stops, without a settle
    # wait, naming each node once.
    import shutil

    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    spec = tmp_path / "specs" / "example.yaml"
    text = spec.read_text(encoding="utf-8")
    for old, new in (
        ("10.48.36.61", "127.0.77.1"),
        ("mmp_host: 10.48.30.61", "mmp_host: 127.0.77.1"),
        ("10.48.36.118", "127.0.77.2"),
        ("10.48.36.182", "127.0.77.3"),
        ("port: 22\n", "port: 2299\n"),
    ):
        assert old in text
        text = text.replace(old, new)
    spec.write_text(text, encoding="utf-8")
    done = run(
        "apply",
        spec,
        "--yes",
        "--settle-seconds",
        "600",
        "--state-dir",
        tmp_path / "state",
        env={"CMS_MMP_PASSWORD": "not-used-here"},
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr
    assert "Waiting for the cluster to settle" not in done.stdout
    assert "Verdict:" in done.stdout
    for node in ("cms-lon-1", "cms-ams-1", "cms-fra-1"):
        assert len([line for line in done.stderr.splitlines() if node in line]) == 1, done.stderr
    assert done.stdout.count("Held back:") == 1  # the plan said it; the verdict does not repeat
