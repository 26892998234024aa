"""Plan output formats: text (like a Terraform plan), JSON (for tools), Markdown (PR comment).

Pure functions from a Plan to a string; the CLI prints them on stdout. A plan that knows
what it was made from says so under its cluster line (:func:`planned_from`: ``Planned
from 3f2a9c1 'add cms-fra-2'`` for a git commit, ``Planned from the working tree at
3f2a9c1 '...' (modified)`` for a local file). A PR comment can also say, per cluster, what
the change does to the spec (``spec_changes``, :mod:`reconciler.plan.spec_changes`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.plan.model import Action, Plan, Step
from reconciler.source.revision import WORKING_TREE

_SYMBOL = {True: "-/+", False: "+"}


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The documented JSON shape of `reconcile plan --format json`."""
    steps: list[dict[str, Any]] = []
    for step in plan.steps:
        item: dict[str, Any] = {
            "id": step.id,
            "node": step.node,
            "action": step.action.value,
            "command": step.command,
            "reason": step.reason,
            "destructive": step.destructive,
        }
        if step.procedure is not None:
            item["procedure"] = step.procedure
        if step.upload is not None:
            item["file"] = step.upload.remote_name
        if step.backup is not None:
            item["backup"] = step.backup
        item["depends_on"] = [
            {"node": f.node, "key": f.key, "value": f.value} for f in step.depends_on
        ]
        steps.append(item)
    return {
        "format_version": plan.format_version,
        "cluster": plan.cluster,
        "revision": plan.revision,
        "revision_sha": plan.revision_sha,
        "changes_present": plan.changes_present,
        "steps": steps,
        "drift": list(plan.drift),
        "warnings": list(plan.warnings),
        "blocked": [{"node": b.node, "reason": b.reason} for b in plan.blocked],
    }


def render_json(plans: Sequence[Plan]) -> str:
    if len(plans) == 1:
        return json.dumps(plan_to_dict(plans[0]), indent=2) + "\n"
    return json.dumps([plan_to_dict(p) for p in plans], indent=2) + "\n"


def _step_label(step: Step) -> str:
    if step.action is Action.UPLOAD and step.upload is not None:
        return f"upload {step.upload.remote_name}"
    return step.command or step.action.value


def _summary(plan: Plan) -> str:
    if not plan.steps:
        if plan.drift or plan.blocked:
            return (
                f"No steps can be planned now: {len(plan.drift)} difference(s), "
                f"{len(plan.blocked)} item(s) held back (see above)."
            )
        return "No changes. The cluster matches the spec."
    counts = Counter(s.action.value for s in plan.steps)
    parts = ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
    destructive = sum(1 for s in plan.steps if s.destructive)
    return f"Plan: {len(plan.steps)} steps ({parts}), {destructive} destructive."


def planned_from(revision: str) -> str:
    """The header line of a plan made from ``revision`` (:attr:`Plan.revision`)."""
    if revision.startswith(WORKING_TREE):
        return "Planned from the working tree" + revision[len(WORKING_TREE) :]
    return f"Planned from {revision}"


def render_text(plan: Plan) -> str:
    lines = [f"Cluster {plan.cluster}"]
    if plan.revision:
        lines.append(planned_from(plan.revision))
    lines.append("")
    if plan.drift:
        lines.append("Drift (spec vs observed):")
        lines.extend(f"  ~ {d}" for d in plan.drift)
        lines.append("")
    if plan.steps:
        lines.append("Steps, in order (+ change, ! destructive, [procedure]):")
        for step in plan.steps:
            mark = "!" if step.destructive else "+"
            procedure = f"  [{step.procedure}]" if step.procedure else ""
            lines.append(f"  {mark} {step.id}  {step.node:<16} {_step_label(step)}{procedure}")
            lines.append(f"        # {step.reason}")
            if step.destructive:
                lines.append("        # destructive: the node leaves the cluster")
        lines.append("")
    if plan.blocked:
        lines.append("Held back:")
        lines.extend(f"  x {b.node or 'cluster'}: {b.reason}" for b in plan.blocked)
        lines.append("")
    if plan.warnings:
        lines.append("Warnings:")
        lines.extend(f"  ! {w}" for w in plan.warnings)
        lines.append("")
    lines.append(_summary(plan))
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(
    plans: Sequence[Plan],
    spec_changes: Mapping[str, Sequence[str]] | None = None,
    *,
    base: str | None = None,
    removed: Sequence[str] = (),
) -> str:
    """One combined PR comment for one or more clusters; with ``spec_changes`` (cluster ->
    lines), what the change does to each spec since ``base``, above its plan; ``removed``:
    the spec files ``base`` had and the change deletes."""
    total = sum(len(p.steps) for p in plans)
    lines = ["## reconcile plan", ""]
    if len(plans) > 1:
        changed = sum(1 for p in plans if p.steps)
        lines.append(f"{len(plans)} clusters, {changed} with changes, {total} steps in all.")
        lines.append("")
    since = f" since `{_md_escape(base)}`" if base else ""
    if removed:
        lines.append(f"**Spec files removed{since}** (their clusters are left as they are)")
        lines.append("")
        lines.extend(f"- {_md_escape(r)}" for r in removed)
        lines.append("")
    for plan in plans:
        lines.append(f"### Cluster `{plan.cluster}`")
        lines.append("")
        if plan.revision:
            lines.append(_md_escape(planned_from(plan.revision)))
            lines.append("")
        if spec_changes is not None and plan.cluster in spec_changes:
            lines.append(f"**Spec changes{since}**")
            lines.append("")
            lines.extend(f"- {_md_escape(c)}" for c in spec_changes[plan.cluster])
            lines.append("")
        lines.append(_summary(plan))
        lines.append("")
        if plan.steps:
            lines.append("| # | node | command | reason | destructive |")
            lines.append("|---|------|---------|--------|-------------|")
            for s in plan.steps:
                command = f"`{_md_escape(_step_label(s))}`"
                flag = "**yes**" if s.destructive else ""
                node, reason = _md_escape(s.node), _md_escape(s.reason)
                lines.append(f"| {s.id} | {node} | {command} | {reason} | {flag} |")
            lines.append("")
        for title, items in (
            ("Drift", list(plan.drift)),
            ("Held back", [f"{b.node or 'cluster'}: {b.reason}" for b in plan.blocked]),
            ("Warnings", list(plan.warnings)),
        ):
            if items:
                lines.append(f"**{title}**")
                lines.append("")
                lines.extend(f"- {_md_escape(i)}" for i in items)
                lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"
