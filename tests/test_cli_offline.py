"""The offline CLI end to end, as a PR check runs it: real files, real process exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.plan.saved import load_plan
from reconciler.spec.schema import spec_json_schema_text

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "specs" / "example.yaml"
FRESH = ROOT / "specs" / "snapshots" / "example-fresh.yaml"
DRIFTED = ROOT / "specs" / "snapshots" / "example-drifted.yaml"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_validate_example_ok() -> None:
    proc = run_cli("validate", str(EXAMPLE), "specs/lab.yaml")
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout and "emea-prod" in proc.stdout
    assert "cmslab" in proc.stdout


def test_validate_bad_spec_names_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = EXAMPLE.read_text(encoding="utf-8").replace("master: cms-lon-1", "master: nowhere")
    bad.write_text(text, encoding="utf-8")
    for sub in ("certs", "keys"):
        shutil.copytree(ROOT / "specs" / sub, tmp_path / sub)
    (tmp_path / "known_hosts").write_text("", encoding="utf-8")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("master:"))
    proc = run_cli("validate", str(bad))
    assert proc.returncode == 1
    assert f"{bad}:{line}:" in proc.stderr
    assert "master" in proc.stderr and "nowhere" in proc.stderr
    assert proc.stdout == ""
    planned = run_cli("plan", str(bad), "--observed", str(FRESH))
    assert planned.returncode == 1 and planned.stdout == ""
    assert planned.stderr.count(f"{bad}:{line}:") == 1  # each problem reported once


def test_plan_offline_text_shows_steps_and_summary() -> None:
    proc = run_cli("plan", str(EXAMPLE), "--observed", str(FRESH))
    assert proc.returncode == 0, proc.stderr
    assert "database cluster initialize" in proc.stdout
    assert "database cluster join 10.48.36.61" in proc.stdout
    assert "Plan: 9 steps" in proc.stdout


def test_detailed_exitcode_two_when_changes_present() -> None:
    proc = run_cli("plan", str(EXAMPLE), "--observed", str(DRIFTED), "--detailed-exitcode")
    assert proc.returncode == 2, proc.stderr
    assert "master-move" in proc.stdout


def test_detailed_exitcode_zero_when_converged(tmp_path: Path) -> None:
    converged = tmp_path / "converged.yaml"
    status = {
        "cms-lon-1": ("10.48.36.61", "Connected Master", "'database cluster initialize'"),
        "cms-ams-1": ("10.48.36.118", None, "'database cluster join 10.48.36.61'"),
        "cms-fra-1": ("10.48.36.182", None, "'database cluster join 10.48.36.61'"),
    }
    lines = ["nodes:"]
    for name, (me, _, last) in status.items():
        members = []
        for other in ("10.48.36.61", "10.48.36.118", "10.48.36.182"):
            tag = " (me)" if other == me else ""
            state = "Connected Master" if other == "10.48.36.61" else "Connected Slave ( In Sync )"
            members.append(f"        {other}{tag} : {state}")
        lines += [
            f"  {name}:",
            "    status: |",
            "      Status                : Enabled",
            "      Nodes:",
            *members,
            "      Node in use           : 10.48.36.61",
            "      Interface             : a",
            "      Certificates",
            "      Server Key            : dbclusterserver.key",
            "      Server Certificate    : dbclusterserver.cer",
            "      Client Key            : dbclusterclient.key",
            "      Client Certificate    : dbclusterclient.cer",
            "      CA Certificate        : vngtpRootca.cer",
            f"      Last command          : {last} (Success)",
        ]
    converged.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = run_cli("plan", str(EXAMPLE), "--observed", str(converged), "--detailed-exitcode")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No changes" in proc.stdout


def test_plan_json_has_the_documented_shape() -> None:
    proc = run_cli("plan", str(EXAMPLE), "--observed", str(DRIFTED), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["format_version"] == 1
    assert doc["cluster"] == "emea-prod"
    assert doc["changes_present"] is True
    assert {"drift", "warnings", "blocked", "steps"} <= doc.keys()
    actions = {"upload", "localnode", "certs", "initialize", "join", "connect", "remove"}
    actions |= {"clear_error", "upgrade_schema", "backup"}
    for step in doc["steps"]:
        assert {"id", "node", "action", "command", "reason", "destructive"} <= step.keys()
        assert step["action"] in actions
    removes = [s for s in doc["steps"] if s["action"] == "remove"]
    assert removes and all(s["destructive"] and s["procedure"] for s in removes)
    backups = [s for s in doc["steps"] if s["action"] == "backup"]
    assert [s["backup"] for s in backups] == ["emea-prod-20261126T030000Z"] * 2
    assert doc["steps"].index(backups[-1]) < doc["steps"].index(removes[0])


def test_plan_markdown_is_a_pr_comment() -> None:
    proc = run_cli("plan", str(EXAMPLE), "--observed", str(DRIFTED), "--format", "markdown")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("## reconcile plan")
    assert "| s01 |" in proc.stdout and "**Drift**" in proc.stdout


def test_plan_out_saves_a_plan_that_loads_back(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    code = main(["plan", str(EXAMPLE), "--observed", str(FRESH), "--out", str(out)])
    assert code == 0
    plan, spec_path = load_plan(out)
    assert spec_path == EXAMPLE.resolve()
    assert plan.cluster == "emea-prod" and len(plan.steps) == 9
    assert plan.spec_digest is not None


def test_plan_directory_with_snapshot_directory(tmp_path: Path) -> None:
    snapshots = tmp_path / "observed"
    snapshots.mkdir()
    shutil.copy(DRIFTED, snapshots / "emea-prod.yaml")
    proc = run_cli("plan", "specs/example.yaml", "--observed", str(snapshots))
    assert proc.returncode == 0, proc.stderr
    assert "emea-prod" in proc.stdout


def test_bad_snapshot_is_an_error_with_position(tmp_path: Path) -> None:
    snap = tmp_path / "snap.yaml"
    snap.write_text("nodes:\n  cms-lon-1:\n    stauts: oops\n", encoding="utf-8")
    proc = run_cli("plan", str(EXAMPLE), "--observed", str(snap))
    assert proc.returncode == 1
    assert f"{snap}:3:" in proc.stderr
    assert proc.stdout == ""


def test_unknown_flag_exits_one_not_two() -> None:
    proc = run_cli("plan", str(EXAMPLE), "--no-such-flag")
    assert proc.returncode == 1
    assert "unrecognized arguments" in proc.stderr


def test_missing_spec_file_is_a_clear_error(tmp_path: Path) -> None:
    proc = run_cli("validate", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 1
    assert "nope.yaml" in proc.stderr


def test_schema_command_prints_the_checked_in_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    printed = capsys.readouterr().out
    assert printed == spec_json_schema_text()
    assert printed == (ROOT / "schemas" / "cluster-spec.schema.json").read_text(encoding="utf-8")


def test_directory_reports_a_broken_spec_and_skips_other_yaml(tmp_path: Path) -> None:
    for sub in ("certs", "keys"):
        shutil.copytree(ROOT / "specs" / sub, tmp_path / sub)
    (tmp_path / "known_hosts").write_text("", encoding="utf-8")
    shutil.copy(EXAMPLE, tmp_path / "good.yaml")
    shutil.copy(FRESH, tmp_path / "a-snapshot.yaml")  # valid YAML, not a spec: skipped
    (tmp_path / "broken.yaml").write_text("version: 1\ncluster: [oops\n", encoding="utf-8")
    proc = run_cli("validate", str(tmp_path))
    assert proc.returncode == 1
    assert "OK" in proc.stdout and "good.yaml" in proc.stdout
    assert f"{tmp_path / 'broken.yaml'}:" in proc.stderr  # reported with its position
    assert "a-snapshot.yaml" not in proc.stdout + proc.stderr


def test_database_port_defaults_to_5432_and_is_checked(tmp_path: Path) -> None:
    from reconciler.spec.model import ClusterSpec

    loaded_default = ClusterSpec.model_validate(
        {
            "version": 1,
            "cluster": "c",
            "master": "a",
            "nodes": [{"name": "a", "address": "10.0.0.1"}],
            "certificates": {"ca": "ca", "client": {"cert": "c", "key": "k"}},
            "ssh": {"known_hosts": "kh", "password_env": "P"},
        }
    )
    assert loaded_default.database_port == 5432
    bad = tmp_path / "bad.yaml"
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "master: cms-lon-1", "master: cms-lon-1\ndatabase_port: 70000"
    )
    bad.write_text(text, encoding="utf-8")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("database_port"))
    proc = run_cli("validate", str(bad))
    assert proc.returncode == 1
    assert f"{bad}:{line}:" in proc.stderr and "database_port" in proc.stderr


def test_keys_on_the_nodes_are_checked_as_far_as_they_can_be(tmp_path: Path) -> None:
    """key_on_node: no local key is read or uploaded; validate checks the certificates and
    says what it could not check; the offline plan uploads certificates, never a key."""
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text.replace("key: keys/dbclusterserver.key", "key_on_node: dbclusterserver.key")
    text = text.replace("key: keys/dbclusterclient.key", "key_on_node: dbclusterclient.key")
    assert "key_on_node: dbclusterclient.key" in text
    spec = tmp_path / "example.yaml"
    spec.write_text(text, encoding="utf-8")
    shutil.copytree(ROOT / "specs" / "certs", tmp_path / "certs")
    (tmp_path / "known_hosts").write_text("", encoding="utf-8")
    proc = run_cli("validate", str(spec))
    assert proc.returncode == 0, proc.stderr
    assert "2 key(s) live on the nodes" in proc.stdout
    assert "whether each key matches is checked by its node" in proc.stdout
    assert "key" not in proc.stderr.replace("known_hosts", "")  # no key-mode warnings
    unlisted = run_cli("plan", str(spec), "--observed", str(FRESH))
    assert unlisted.returncode == 0, unlisted.stderr
    assert "its file listing was not seen, so key(s) dbclusterserver.key" in unlisted.stdout
    snapshot = FRESH.read_text(encoding="utf-8").replace(
        "    status: |",
        "    files: {dbclusterserver.key: '"
        + "a" * 64
        + "', dbclusterclient.key: '"
        + "b" * 64
        + "'}\n    status: |",
    )
    listed = tmp_path / "listed.yaml"
    listed.write_text(snapshot, encoding="utf-8")
    planned = run_cli("plan", str(spec), "--observed", str(listed), "--format", "json")
    assert planned.returncode == 0, planned.stderr
    steps = json.loads(planned.stdout)["steps"]
    uploaded = [s["command"] for s in steps if s["action"] == "upload"]
    assert uploaded and not any(".key" in str(u) for u in uploaded)
    certs = [s["command"] for s in steps if s["action"] == "certs"]
    assert certs and all("dbclusterserver.key" in c for c in certs)
