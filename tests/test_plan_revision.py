"""What a plan was made from, everywhere: the plan header (text, markdown, JSON, saved
plans), the local revision of a spec in a git checkout, a PR's spec changes (`--base`),
the audit log and journal, and `reconcile status`'s last applied revision."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from git_servers import GIT_ENV, git

from reconciler.apply.applied_revision import last_applied, write_applied_revision
from reconciler.apply.audit import AuditLog, Journal, audit_path, journal_path
from reconciler.cli.status_report import RevisionStatus, render_text
from reconciler.cli.status_revision import revision_status
from reconciler.plan.model import Plan
from reconciler.plan.render import plan_to_dict, render_markdown
from reconciler.plan.render import render_text as render_plan
from reconciler.source.git_source import GitSource
from reconciler.spec.loader import load_spec

ROOT = Path(__file__).resolve().parent.parent
FRESH = ROOT / "specs" / "snapshots" / "example-fresh.yaml"
SHA = "3f2a9c1" + "0" * 33


def reconcile(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**__import__("os").environ, **GIT_ENV},
    )


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A git checkout holding the example spec (and its files) in clusters/, one commit."""
    work = tmp_path / "work"
    (work / "clusters").mkdir(parents=True)
    for name in ("example.yaml", "known_hosts"):
        shutil.copy(ROOT / "specs" / name, work / "clusters" / name)
    for name in ("certs", "keys"):
        shutil.copytree(ROOT / "specs" / name, work / "clusters" / name)
    git("init", "-q", "-b", "main", cwd=work)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "add emea-prod", cwd=work)
    return work


def head(work: Path) -> str:
    return git("rev-parse", "HEAD", cwd=work).strip()


def test_the_plan_header_says_what_it_was_made_from(checkout: Path, tmp_path: Path) -> None:
    spec = checkout / "clusters" / "example.yaml"
    plan = reconcile("plan", spec, "--observed", FRESH)
    assert plan.returncode == 0, plan.stderr
    first, second = plan.stdout.splitlines()[:2]
    assert first == "Cluster emea-prod"  # unchanged: the first line names the cluster
    assert second == f"Planned from the working tree at {head(checkout)[:7]} 'add emea-prod'"

    (checkout / "clusters" / "certs" / "vngtpRootca.cer").write_bytes(
        (ROOT / "specs" / "certs" / "vngtpRootca.cer").read_bytes() + b"\n"
    )  # a file the spec names differs from the commit
    plan = reconcile("plan", spec, "--observed", FRESH)
    assert plan.stdout.splitlines()[1].endswith("'add emea-prod' (modified)")

    outside = tmp_path / "outside"
    shutil.copytree(checkout / "clusters", outside)
    plan = reconcile("plan", outside / "example.yaml", "--observed", FRESH)
    assert plan.stdout.splitlines()[1] == "Planned from the working tree"


def test_json_markdown_and_saved_plans_carry_the_revision(checkout: Path) -> None:
    spec = checkout / "clusters" / "example.yaml"
    expected = f"revision: working tree at {head(checkout)[:7]} 'add emea-prod'"
    out = checkout / "plan.json"
    plan = reconcile("plan", spec, "--observed", FRESH, "--format", "json", "--out", out)
    assert json.loads(plan.stdout)["revision"] == expected
    assert json.loads(out.read_text())["plan"]["revision"] == expected
    markdown = reconcile("plan", spec, "--observed", FRESH, "--format", "markdown").stdout
    assert f"Planned from the working tree at {head(checkout)[:7]} 'add emea-prod'" in markdown


def test_render_without_a_revision_is_as_before_and_a_commit_is_named() -> None:
    assert render_plan(Plan(cluster="c1")).startswith("Cluster c1\n\nNo changes.")
    plan = Plan(cluster="c1", revision=f"{SHA[:7]} 'add cms-fra-2'", revision_sha=SHA)
    assert render_plan(plan).startswith("Cluster c1\nPlanned from 3f2a9c1 'add cms-fra-2'\n\n")
    assert plan_to_dict(plan)["revision_sha"] == SHA
    changes = {"c1": ("node added: cms-fra-2 (10.0.0.5, database)",)}
    md = render_markdown([plan], changes, base="origin/main", removed=["old.yaml (cluster x)"])
    assert md.index("**Spec files removed since `origin/main`**") < md.index("### Cluster `c1`")
    assert md.index("Planned from 3f2a9c1") < md.index("**Spec changes since `origin/main`**")
    assert md.index("- node added: cms-fra-2") < md.index("No changes.")


def test_a_pull_requests_plan_says_what_the_change_does_to_each_spec(checkout: Path) -> None:
    folder = checkout / "clusters"
    spec = folder / "example.yaml"
    base = head(checkout)
    shutil.copy(spec, folder / "other.yaml")
    (folder / "other.yaml").write_text(spec.read_text().replace("emea-prod", "emea-old"))
    git("add", "-A", cwd=checkout)
    git("commit", "-q", "-m", "emea-old", cwd=checkout)
    base = head(checkout)
    (folder / "other.yaml").unlink()
    text = spec.read_text().replace("master: cms-lon-1", "master: cms-ams-1")
    text = text.replace("  - {name: cms-fra-1, address: 10.48.36.182}\n", "")
    text = text.replace(
        "  allow_remove: false", "  allow_remove: false\n  allow_unsafe_topology: true"
    )
    spec.write_text(text.replace("interface: a", "interface: b"))
    shutil.copy(spec, folder / "new.yaml")
    (folder / "new.yaml").write_text(spec.read_text().replace("emea-prod", "emea-new"))
    md = reconcile("plan", folder, "--observed", checkout, "--format", "markdown", "--base", base)
    # no snapshot for the clusters in that folder: an error, before --base is looked at
    assert md.returncode == 1
    snapshots = checkout / "snapshots"
    snapshots.mkdir()
    for cluster in ("emea-prod", "emea-new"):
        shutil.copy(FRESH, snapshots / f"{cluster}.yaml")
    md = reconcile("plan", folder, "--observed", snapshots, "--format", "markdown", "--base", base)
    assert md.returncode == 0, md.stderr
    out = md.stdout
    assert "**Spec files removed since" in out and "- clusters/other.yaml (cluster emea-old)" in out
    prod = out[out.index("### Cluster `emea-prod`") :]
    for line in (
        "- node removed: cms-fra-1 (10.48.36.182, database)",
        "- master changed: cms-lon-1 -> cms-ams-1",
        "- clustering interface changed: a -> b",
        "- policy: allow_unsafe_topology false -> true",
    ):
        assert line in prod, out
    assert "- new spec: cluster emea-new, 2 node(s) (cms-lon-1, cms-ams-1), master cms-ams-1" in out
    assert prod.index("**Spec changes since") < prod.index("Plan:")

    wrong = reconcile("plan", folder, "--observed", snapshots, "--base", base)
    assert (
        wrong.returncode == 1
        and wrong.stderr == "error: --base is for --format markdown (a pull request's comment)\n"
    )
    bad = reconcile("plan", spec, "--observed", FRESH, "--format", "markdown", "--base", "nope")
    assert bad.returncode == 1 and "--base nope: not a commit in" in bad.stderr


def test_every_audit_and_journal_record_names_the_revision(tmp_path: Path) -> None:
    audit = AuditLog(audit_path(tmp_path, "lab"), "lab", "r1", SHA)
    audit.record(node="n1", command="database cluster join 10.0.0.1", result="ok", duration=1)
    audit.record(node="n2", command="upload ca.pem", result="failed", duration=0.1)
    journal = Journal(journal_path(tmp_path, "lab"), "lab", "r1", "revision: working tree")
    journal.mark("started", step="s01", node="n1", command="database cluster remove")
    assert [e["revision"] for e in audit.entries()] == [SHA, SHA]
    assert journal.entries()[0]["revision"] == "revision: working tree"
    found = last_applied(tmp_path, "lab")
    assert found is not None and found.revision == SHA and found.how == "failed"


def test_status_says_whether_the_spec_and_the_branch_head_are_applied(
    checkout: Path, tmp_path: Path
) -> None:
    spec = checkout / "clusters" / "example.yaml"
    state = tmp_path / "state"
    loaded = load_spec(spec)
    first = head(checkout)
    nothing = revision_status(loaded, state)
    assert nothing.last_applied is None and nothing.spec_applied.startswith("unknown: nothing")
    described = f"revision: working tree at {first[:7]} 'add emea-prod'"
    AuditLog(audit_path(state, "emea-prod"), "emea-prod", "r1", described).record(
        node="cms-lon-1", command="database cluster localnode a", result="ok", duration=0.2
    )
    status = revision_status(loaded, state)
    assert status.last_applied == described and status.spec_applied.startswith("yes: ")

    (checkout / "README.md").write_text("not a spec\n")
    git("add", "-A", cwd=checkout)
    git("commit", "-q", "-m", "docs", cwd=checkout)
    status = revision_status(load_spec(spec), state)
    assert status.spec_applied == (
        f"yes: the spec and its files did not change since {first[:7]}, the last applied"
    )
    spec.write_text(spec.read_text().replace("interface: a", "interface: b"))
    assert revision_status(load_spec(spec), state).spec_applied.startswith("unknown: the spec")
    git("commit", "-q", "-am", "interface b", cwd=checkout)
    assert revision_status(load_spec(spec), state).spec_applied.startswith(
        f"no: {head(checkout)[:7]} changes the spec"
    )

    # A watch --git clone in the state directory: is the branch head it fetched applied?
    source = GitSource(f"file://{checkout}", "main", "clusters", state / "git")
    source.checkout(source.fetch())
    write_applied_revision(state, "emea-prod", source.revision(head(checkout)), "converged")
    in_clone = source.checkouts / head(checkout) / "clusters" / "example.yaml"
    status = revision_status(load_spec(in_clone), state)
    assert status.last_applied == f"{head(checkout)[:7]} 'interface b'"
    assert status.last_applied_how == "converged"
    assert (
        status.branch == f"main at {head(checkout)[:7]} 'interface b' (last fetched by watch --git)"
    )
    assert status.branch_applied == f"yes: {head(checkout)[:7]} is the last applied revision"
    assert status.spec == f"{head(checkout)[:7]} 'interface b' (a checkout of watch --git)"
    assert status.spec_applied == status.branch_applied
    text = render_text_of(status)
    assert "  last applied: " in text and "  branch:       main at" in text


def render_text_of(status: RevisionStatus) -> str:
    from reconciler.cli.status_report import NodeRow, StatusReport
    from reconciler.plan.verdict import ClusterVerdict, Verdict

    row = NodeRow("cms-lon-1", "10.48.36.61", True, None, "master", None, "a", None, None)
    report = StatusReport(
        "emea-prod", None, (row,), ClusterVerdict(Verdict.CONVERGED, ()), (), None, None, status
    )
    return render_text(report)
