"""`reconcile validate --format json|github` (issue 13, point 4): every diagnostic with its
file, line, column, severity, field and message, checked against the output's own JSON
Schema (schemas/validate-output.schema.json); GitHub annotations on the right lines."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "schemas" / "validate-output.schema.json").read_text("utf-8"))


def validate(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "validate", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    """A copy of specs/: the example (valid, keys 0644 so two warnings) and a bad one."""
    out = tmp_path / "specs"
    shutil.copytree(ROOT / "specs", out, ignore=shutil.ignore_patterns("snapshots", "lab.yaml"))
    for key in (out / "keys").glob("*.key"):
        key.chmod(0o644)
    text = (out / "example.yaml").read_text(encoding="utf-8")
    assert "master: cms-lon-1" in text
    (out / "bad.yaml").write_text(text.replace("master: cms-lon-1", "master: nowhere"), "utf-8")
    return out


def _line_of(path: Path, needle: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def test_json_lists_every_diagnostic_and_matches_its_schema(specs: Path) -> None:
    done = validate(
        specs / "example.yaml", specs / "bad.yaml", specs / "missing.yaml", "--format", "json"
    )
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    jsonschema.validate(document, SCHEMA)
    by_file = {Path(s["file"]).name: s for s in document["specs"]}
    assert document["valid"] is False
    good, bad, missing = by_file["example.yaml"], by_file["bad.yaml"], by_file["missing.yaml"]
    assert good["valid"] and good["cluster"] == "emea-prod"
    assert {d["severity"] for d in good["diagnostics"]} == {"warning"}
    assert {d["field"] for d in good["diagnostics"]} == {
        "certificates.server.key",
        "certificates.client.key",
    }
    assert not bad["valid"] and bad["cluster"] is None
    [error] = [d for d in bad["diagnostics"] if d["severity"] == "error"]
    assert error["field"] == "master"
    assert error["line"] == _line_of(specs / "bad.yaml", "master: nowhere")
    assert error["column"] >= 1 and "nowhere" in error["message"]
    [unreadable] = missing["diagnostics"]
    assert unreadable["line"] is None and "cannot read" in unreadable["message"]
    assert str(specs) not in unreadable["message"]  # the file is named once, in "file"


def test_json_of_valid_specs_exits_0(specs: Path) -> None:
    done = validate(specs / "example.yaml", "--format", "json")
    assert done.returncode == 0
    jsonschema.validate(json.loads(done.stdout), SCHEMA)


def test_github_annotations_point_at_the_lines(specs: Path) -> None:
    done = validate(specs / "example.yaml", specs / "bad.yaml", "--format", "github")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    master_line = _line_of(specs / "bad.yaml", "master: nowhere")
    [error] = [line for line in lines if line.startswith("::error ")]
    assert f"file={specs / 'bad.yaml'},line={master_line},col=" in error
    assert ",title=master::" in error and "nowhere" in error
    warnings = [line for line in lines if line.startswith("::warning ")]
    assert len(warnings) == 4  # two key-mode warnings in each file
    assert all(",title=certificates." in w and "chmod 600" in w for w in warnings)


def test_github_escapes_what_would_end_a_command() -> None:
    from reconciler.cli.validate_report import github_annotation
    from reconciler.common.diagnostics import Diagnostic, Severity

    d = Diagnostic(Severity.ERROR, "a,b:c.yaml", 3, 4, "nodes[0].name", "50% bad\nsecond")
    assert github_annotation(d) == (
        "::error file=a%2Cb%3Ac.yaml,line=3,col=4,title=nodes[0].name::50%25 bad%0Asecond"
    )
