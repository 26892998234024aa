"""Bad input never hurts (issue 8, point 9): every file the CLI reads, fed what it should refuse.

Each case runs the real CLI and asserts: a non-zero exit, a clear message naming the file,
no traceback. Whatever could hang or grow the process if the check regressed (a FIFO, a
device, apply) runs in a subprocess with a timeout and an address-space limit; the rest runs
in this process. Limits: reconciler/common/file_limits.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.common import file_limits
from reconciler.common.errors import SpecError
from reconciler.common.file_limits import (
    CERT_LIMIT,
    KNOWN_HOSTS_LIMIT,
    PLAN_LIMIT,
    SNAPSHOT_LIMIT,
    SPEC_LIMIT,
    STATUS_TEXT_LIMIT,
    FileReadError,
    read_bounded,
    read_text_bounded,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "specs" / "example.yaml"
FRESH = ROOT / "specs" / "snapshots" / "example-fresh.yaml"
CA = "certs/vngtpRootca.cer"
SERVER_KEY = "keys/dbclusterserver.key"
DEEP = 100_000

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")


# The child limits its own address space (2 GiB) before it runs the CLI: a regression
# that reads /dev/zero whole fails fast instead of growing to the machine's memory.
_CHILD = (
    "import resource, runpy, sys; "
    "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)); "
    "sys.argv = ['reconcile', *sys.argv[1:]]; "
    "runpy.run_module('reconciler.cli', run_name='__main__')"
)


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CHILD, *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def run_here(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The CLI in this process (fast), for input that cannot hang or grow it even if the
    check regressed (no FIFO, no device, no apply: apply configures logging globally)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])  # an exception escaping here fails the test
    return subprocess.CompletedProcess(list(map(str, args)), code, out.getvalue(), err.getvalue())


def refused(proc: subprocess.CompletedProcess[str], path: Path | str, *words: str) -> str:
    """Non-zero exit, the file named on stderr, no traceback; returns stderr."""
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "Traceback" not in output, output
    assert str(path) in proc.stderr, output
    for word in words:
        assert word in proc.stderr, output
    return proc.stderr


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    """A copy of the example spec with its certificates, keys and known_hosts."""
    for sub in ("certs", "keys"):
        shutil.copytree(ROOT / "specs" / sub, tmp_path / sub)
    shutil.copy(ROOT / "specs" / "known_hosts", tmp_path / "known_hosts")
    shutil.copy(EXAMPLE, tmp_path / "spec.yaml")
    return tmp_path


def spec_with(spec_dir: Path, old: str, new: str) -> Path:
    path = spec_dir / "spec.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


# --- the spec ------------------------------------------------------------------------


def test_the_example_spec_is_fine(spec_dir: Path) -> None:
    proc = run_here("validate", spec_dir / "spec.yaml")
    assert proc.returncode == 0, proc.stderr
    proc = run_here("plan", spec_dir / "spec.yaml", "--observed", FRESH)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    "command",
    [["validate"], ["plan", "--observed", str(FRESH)], ["plan"], ["apply", "--yes"]],
    ids=["validate", "plan-offline", "plan-live", "apply"],
)
def test_fifo_as_spec_is_refused_without_opening_it(tmp_path: Path, command: list[str]) -> None:
    path = fifo(tmp_path / "spec.yaml")
    proc = run_cli(command[0], path, *command[1:])
    refused(proc, path, "not a regular file but a FIFO")


@pytest.mark.parametrize("command", [["validate"], ["plan", "--observed", str(FRESH)]])
def test_dev_zero_as_spec_is_refused(command: list[str]) -> None:
    proc = run_cli(command[0], "/dev/zero", *command[1:])
    refused(proc, "/dev/zero", "not a regular file but a character device")


def test_directory_as_spec_file_is_refused_by_apply(tmp_path: Path) -> None:
    target = tmp_path / "specs"
    target.mkdir()
    refused(run_cli("apply", "--yes", target), target, "Is a directory")


def test_directory_is_still_a_spec_directory_for_validate_and_plan(spec_dir: Path) -> None:
    proc = run_here("validate", spec_dir)
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout
    proc = run_here("plan", spec_dir, "--observed", FRESH)
    assert proc.returncode == 0, proc.stderr


def test_empty_directory_is_a_clear_error(tmp_path: Path) -> None:
    proc = run_here("validate", tmp_path)
    refused(proc, tmp_path, "no spec files found")


def test_fifo_in_a_spec_directory_is_skipped_not_opened(spec_dir: Path) -> None:
    fifo(spec_dir / "zz-pipe.yaml")
    proc = run_cli("validate", spec_dir)
    assert proc.returncode == 0, proc.stderr
    assert "zz-pipe" not in proc.stdout + proc.stderr


def test_oversize_spec_is_refused(spec_dir: Path) -> None:
    path = spec_dir / "spec.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text + "#" * (SPEC_LIMIT - len(text.encode()) + 1) + "\n", encoding="utf-8")
    for command in (["validate"], ["plan", "--observed", str(FRESH)]):
        refused(run_here(command[0], path, *command[1:]), path, "too large", "1 MiB")


def test_spec_just_under_the_limit_is_read(spec_dir: Path) -> None:
    path = spec_dir / "spec.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text + "#" * (SPEC_LIMIT - len(text.encode()) - 1) + "\n", encoding="utf-8")
    assert path.stat().st_size == SPEC_LIMIT
    proc = run_here("validate", path)
    assert proc.returncode == 0, proc.stderr


def test_forty_megabyte_spec_is_refused_by_size_before_parsing(spec_dir: Path) -> None:
    path = spec_dir / "spec.yaml"
    line = "  - {name: cms-x, address: 10.48.36.250}\n"
    with path.open("a", encoding="utf-8") as fh:
        fh.write("extra:\n")
        for _ in range(40_000_000 // len(line)):
            fh.write(line)
    assert path.stat().st_size > 40_000_000
    stderr = refused(run_here("validate", path), path, "too large", "refused without parsing")
    assert stderr.count("too large") == 1


def test_yaml_nested_100000_deep_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("version: 1\ncluster: " + "[" * DEEP + "]" * DEEP + "\n", encoding="utf-8")
    for command in (["validate"], ["plan", "--observed", str(FRESH)]):
        stderr = refused(run_here(command[0], path, *command[1:]), path, "nested too deeply")
        assert f"{path}:2:" in stderr  # with its line
        assert "RecursionError" not in stderr


def test_yaml_nesting_through_aliases_is_a_clear_error(tmp_path: Path) -> None:
    lines = ["a0: &a0 " + "[" * 40 + "x" + "]" * 40]
    lines += [f"a{i}: &a{i} " + "[" * 40 + f"*a{i - 1}" + "]" * 40 for i in range(1, 40)]
    path = tmp_path / "aliases.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    refused(run_here("validate", path), path, "nested too deeply")


def test_python_object_tag_is_refused_with_its_line(spec_dir: Path) -> None:
    marker = spec_dir / "marker"
    path = spec_with(
        spec_dir,
        "interface: a\n",
        f'interface: !!python/object/apply:os.system ["touch {marker}"]\n',
    )
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "python/object" in t)
    for command in (["validate"], ["plan", "--observed", str(FRESH)]):
        stderr = refused(run_here(command[0], path, *command[1:]), path, "YAML tag")
        assert f"{path}:{line}:" in stderr
        assert "'!!python/object/apply:os.system' is not allowed" in stderr
        assert "AttributeError" not in stderr
    assert not marker.exists()


@pytest.mark.parametrize("tag", ["!foo", "!!binary", "!!set", "!!timestamp", "!!omap"])
def test_other_non_core_tags_are_refused(spec_dir: Path, tag: str) -> None:
    path = spec_with(spec_dir, "cluster: emea-prod", f"cluster: {tag} emea-prod")
    refused(run_here("validate", path), path, f"YAML tag '{tag}")


def test_core_tags_are_accepted(spec_dir: Path) -> None:
    path = spec_with(spec_dir, "cluster: emea-prod", "cluster: !!str emea-prod")
    proc = run_here("validate", path)
    assert proc.returncode == 0, proc.stderr


# --- certificates, keys, known_hosts ------------------------------------------------


@pytest.mark.parametrize("field", [CA, SERVER_KEY], ids=["certificate", "key"])
def test_fifo_as_certificate_or_key_is_refused(spec_dir: Path, field: str) -> None:
    pipe = fifo(spec_dir / "pipe.pem")
    path = spec_with(spec_dir, field, str(pipe))
    for command in (["validate"], ["plan", "--observed", str(FRESH)]):
        stderr = refused(run_cli(command[0], path, *command[1:]), path, "FIFO")
        assert str(pipe) in stderr


def test_dev_zero_as_certificate_is_refused(spec_dir: Path) -> None:
    path = spec_with(spec_dir, CA, "/dev/zero")
    for command in (["validate"], ["plan", "--observed", str(FRESH)]):
        stderr = refused(run_cli(command[0], path, *command[1:]), path, "character device")
        assert "certificates.ca" in stderr and "/dev/zero" in stderr


def test_oversize_certificate_is_refused(spec_dir: Path) -> None:
    (spec_dir / CA).write_bytes(b"-" * (CERT_LIMIT + 1))
    path = spec_dir / "spec.yaml"
    stderr = refused(run_here("validate", path), path, "too large", "1 MiB")
    assert "certificates.ca" in stderr


def test_oversize_key_is_refused_and_never_shown(spec_dir: Path) -> None:
    key = spec_dir / SERVER_KEY
    secret = key.read_bytes()
    key.write_bytes(secret + b"\n" * (CERT_LIMIT + 1 - len(secret)))
    path = spec_dir / "spec.yaml"
    stderr = refused(run_here("validate", path), path, "too large")
    assert "PRIVATE KEY" not in stderr


def test_fifo_as_known_hosts_is_refused(spec_dir: Path) -> None:
    (spec_dir / "known_hosts").unlink()
    fifo(spec_dir / "known_hosts")
    path = spec_dir / "spec.yaml"
    stderr = refused(run_cli("validate", path), path, "FIFO")
    assert "ssh.known_hosts" in stderr


def test_oversize_known_hosts_is_refused(spec_dir: Path) -> None:
    (spec_dir / "known_hosts").write_bytes(b"#" * (KNOWN_HOSTS_LIMIT + 1))
    path = spec_dir / "spec.yaml"
    stderr = refused(run_here("validate", path), path, "too large", "4 MiB")
    assert "ssh.known_hosts" in stderr


def test_known_hosts_read_by_the_transport_is_bounded(tmp_path: Path) -> None:
    from reconciler.transport.host_keys import KnownHosts

    big = tmp_path / "known_hosts"
    big.write_bytes(b"#" * (KNOWN_HOSTS_LIMIT + 1))
    with pytest.raises(SpecError, match="too large") as info:
        KnownHosts(big, accept_new=False)
    assert str(big) in str(info.value)
    with pytest.raises(SpecError, match="FIFO"):
        KnownHosts(fifo(tmp_path / "pipe"), accept_new=False)
    assert KnownHosts(tmp_path / "missing", accept_new=True).added == []  # missing: empty


def test_certificate_expiry_is_bounded(tmp_path: Path) -> None:
    from reconciler.spec.cert_checks import certificate_expiry

    with pytest.raises(OSError, match="character device"):
        certificate_expiry(Path("/dev/zero"))
    with pytest.raises(OSError, match="FIFO"):
        certificate_expiry(fifo(tmp_path / "pipe"))


# --- snapshots ------------------------------------------------------------------------


def test_fifo_as_snapshot_is_refused(spec_dir: Path, tmp_path: Path) -> None:
    snap = fifo(tmp_path / "observed.yaml")
    refused(run_cli("plan", spec_dir / "spec.yaml", "--observed", snap), snap, "FIFO")


def test_fifo_as_snapshot_in_a_snapshot_directory_is_refused(spec_dir: Path) -> None:
    observed = spec_dir / "observed"
    observed.mkdir()
    snap = fifo(observed / "emea-prod.yaml")
    refused(run_cli("plan", spec_dir / "spec.yaml", "--observed", observed), snap, "FIFO")


def test_dev_zero_as_snapshot_is_refused(spec_dir: Path) -> None:
    proc = run_cli("plan", spec_dir / "spec.yaml", "--observed", "/dev/zero")
    refused(proc, "/dev/zero", "character device")


def test_oversize_snapshot_is_refused(spec_dir: Path, tmp_path: Path) -> None:
    snap = tmp_path / "observed.yaml"
    text = FRESH.read_text(encoding="utf-8")
    snap.write_text(text + "#" * (SNAPSHOT_LIMIT - len(text.encode()) + 1) + "\n")
    proc = run_here("plan", spec_dir / "spec.yaml", "--observed", snap)
    refused(proc, snap, "too large", "16 MiB")


def test_oversize_status_text_in_a_snapshot_names_file_and_node(
    spec_dir: Path, tmp_path: Path
) -> None:
    snap = tmp_path / "observed.yaml"
    text = FRESH.read_text(encoding="utf-8")
    padding = "".join(f"      Garbage line {i:06d} : x\n" for i in range(STATUS_TEXT_LIMIT // 20))
    marker = "  cms-ams-1:\n    status: |\n"
    assert marker in text
    snap.write_text(text.replace(marker, marker + padding), encoding="utf-8")
    proc = run_here("plan", spec_dir / "spec.yaml", "--observed", snap)
    stderr = refused(proc, snap, "status text of node cms-ams-1", "64 KiB")
    assert "nodes.cms-ams-1.status" in stderr
    assert "Garbage line" not in stderr


def test_snapshot_nested_100000_deep_is_a_clear_error(spec_dir: Path, tmp_path: Path) -> None:
    snap = tmp_path / "observed.yaml"
    snap.write_text("nodes: " + "{a: " * DEEP + "x" + "}" * DEEP + "\n", encoding="utf-8")
    proc = run_here("plan", spec_dir / "spec.yaml", "--observed", snap)
    refused(proc, snap, "nested too deeply")


def test_python_tag_in_a_snapshot_is_refused(spec_dir: Path, tmp_path: Path) -> None:
    snap = tmp_path / "observed.yaml"
    snap.write_text("nodes: !!python/object/apply:os.getcwd []\n", encoding="utf-8")
    proc = run_here("plan", spec_dir / "spec.yaml", "--observed", snap)
    refused(proc, snap, "YAML tag")


# --- saved plans ----------------------------------------------------------------------


def test_fifo_as_saved_plan_is_refused(tmp_path: Path) -> None:
    plan = fifo(tmp_path / "plan.json")
    refused(run_cli("apply", plan), plan, "FIFO")


def test_directory_as_saved_plan_is_refused(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.mkdir()
    refused(run_cli("apply", plan), plan, "Is a directory")


def test_oversize_saved_plan_is_refused(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_bytes(b" " * (PLAN_LIMIT + 1))
    refused(run_cli("apply", plan), plan, "too large", "16 MiB")


def test_json_plan_nested_100000_deep_is_a_clear_error(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text('{"kind": "cms-reconciler-plan", "plan": ' + "[" * DEEP + "]" * DEEP + "}")
    stderr = refused(run_cli("apply", plan), plan, "nested too deeply")
    assert "RecursionError" not in stderr


def test_json_plan_with_a_huge_number_is_a_clear_error(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text('{"kind": "cms-reconciler-plan", "plan": ' + "9" * 5000 + "}")
    refused(run_cli("apply", plan), plan)


def test_saved_plan_whose_spec_is_a_fifo_is_refused(tmp_path: Path) -> None:
    spec = fifo(tmp_path / "spec.yaml")
    plan = tmp_path / "plan.json"
    document = {"kind": "cms-reconciler-plan", "spec_path": str(spec), "plan": {}}
    plan.write_text(json.dumps(document))
    refused(run_cli("apply", plan), plan)


# --- password_env (point 8, through the CLI) -------------------------------------------


def test_password_pasted_into_password_env_is_refused_and_not_echoed(spec_dir: Path) -> None:
    path = spec_with(spec_dir, "password_env: CMS_MMP_PASSWORD", "password_env: Tr0ub4dor-3")
    for command in (["validate"], ["plan", "--observed", str(FRESH)]):
        proc = run_here(command[0], path, *command[1:])
        refused(proc, path, "ssh.password_env", "NAME of an environment variable")
        assert "Tr0ub4dor" not in proc.stdout + proc.stderr


# --- read_bounded itself --------------------------------------------------------------


@pytest.mark.timeout(30)
def test_read_bounded_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    pipe = fifo(tmp_path / "pipe")
    with pytest.raises(FileReadError) as info:
        read_bounded(pipe, 10, "spec file")
    assert str(info.value) == (
        f"{pipe}: cannot read spec file: not a regular file but a FIFO (named pipe); "
        "refused without reading it"
    )
    assert not info.value.missing


def test_read_bounded_limit_is_inclusive(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert read_bounded(path, 10, "file") == b"x" * 10
    with pytest.raises(FileReadError, match=r"too large \(10 bytes; the limit for a f is 9"):
        read_bounded(path, 9, "f")


def test_read_bounded_reads_at_most_limit_plus_one_of_a_growing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that grows after the size check is still refused (the read is bounded)."""
    path = tmp_path / "growing"
    path.write_bytes(b"x" * 5)
    small = os.stat(path)
    path.write_bytes(b"x" * 1000)
    real_read = os.read
    asked: list[int] = []

    def read(fd: int, n: int) -> bytes:
        asked.append(n)
        return real_read(fd, n)

    monkeypatch.setattr(file_limits.os, "stat", lambda _name: small)
    monkeypatch.setattr(file_limits.os, "read", read)
    with pytest.raises(FileReadError, match="grew while being read"):
        read_bounded(path, 10, "spec file")
    assert sum(asked) <= 11


def test_read_bounded_missing_and_text(tmp_path: Path) -> None:
    with pytest.raises(FileReadError) as info:
        read_bounded(tmp_path / "nope", 10, "snapshot")
    assert info.value.missing and "No such file or directory" in str(info.value)
    bad = tmp_path / "latin1"
    bad.write_bytes(b"ok\ncaf\xe9\n")
    with pytest.raises(FileReadError, match=r"not valid UTF-8 \(line 2\)"):
        read_text_bounded(bad, 100, "saved plan")
    assert isinstance(info.value, SpecError)
