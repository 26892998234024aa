"""Plan renderers: pure functions from a Plan to text, JSON and Markdown."""

from __future__ import annotations

import json

from reconciler.plan.model import Action, Blocked, Fact, Plan, Step, Upload
from reconciler.plan.render import render_json, render_markdown, render_text

STEPS = (
    Step(
        id="s01",
        node="cms-a",
        action=Action.UPLOAD,
        command=None,
        reason="dbclusterserver.cer is missing on cms-a",
        upload=Upload(
            local_path="/x/dbclusterserver.cer", remote_name="dbclusterserver.cer", sha256="0" * 64
        ),
    ),
    Step(
        id="s02",
        node="cms-b",
        action=Action.REMOVE,
        command="database cluster remove",
        reason="cms-b | is not in the spec",
        destructive=True,
        procedure="remove-extra",
        confirm=True,
        depends_on=(Fact(node="cms-b", key="role", value="replica"),),
    ),
)


def test_text_marks_destructive_steps_and_procedures() -> None:
    text = render_text(Plan(cluster="c1", steps=STEPS, drift=("cms-b is extra",)))
    assert "+ s01  cms-a" in text and "upload dbclusterserver.cer" in text
    assert "! s02  cms-b" in text and "[remove-extra]" in text
    assert "~ cms-b is extra" in text
    assert text.rstrip().endswith("Plan: 2 steps (1 remove, 1 upload), 1 destructive.")


def test_text_without_steps_but_held_back_does_not_claim_convergence() -> None:
    plan = Plan(
        cluster="c1",
        drift=("no master",),
        blocked=(Blocked(node=None, reason="no master: the cluster has lost its majority"),),
    )
    text = render_text(plan)
    assert "No changes" not in text
    assert "x cluster: no master" in text
    assert "1 item(s) held back" in text


def test_text_converged() -> None:
    assert "No changes. The cluster matches the spec." in render_text(Plan(cluster="c1"))


def test_json_shape_and_facts() -> None:
    doc = json.loads(render_json([Plan(cluster="c1", steps=STEPS)]))
    assert doc["changes_present"] is True
    upload, remove = doc["steps"]
    assert upload["command"] is None and upload["file"] == "dbclusterserver.cer"
    assert "procedure" not in upload
    assert remove["procedure"] == "remove-extra" and remove["destructive"] is True
    assert remove["depends_on"] == [{"node": "cms-b", "key": "role", "value": "replica"}]


def test_json_of_several_plans_is_a_list() -> None:
    doc = json.loads(render_json([Plan(cluster="a"), Plan(cluster="b")]))
    assert [d["cluster"] for d in doc] == ["a", "b"]


def test_markdown_combines_clusters_and_escapes_pipes() -> None:
    md = render_markdown([Plan(cluster="a", steps=STEPS), Plan(cluster="b")])
    assert "2 clusters, 1 with changes, 2 steps in all." in md
    assert "### Cluster `a`" in md and "### Cluster `b`" in md
    assert "cms-b \\| is not in the spec" in md
    assert "| s02 | cms-b | `database cluster remove` |" in md
