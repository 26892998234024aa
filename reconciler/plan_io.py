"""Saved plans (`reconcile plan --out plan.json`, `reconcile apply plan.json`).

A saved plan is the plan's full JSON (every step with the facts it depends on)
plus the path and digest of the spec it was made from, so `apply` can re-load
the spec, re-observe and refuse with the exact facts that changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reconciler.errors import SpecError
from reconciler.plan_model import PLAN_FORMAT_VERSION, Plan

SAVED_PLAN_KIND = "cms-reconciler-plan"


def save_plan(plan: Plan, spec_path: Path) -> str:
    """Serialise a plan for `apply plan.json` (stable key order, trailing newline)."""
    document: dict[str, Any] = {
        "kind": SAVED_PLAN_KIND,
        "spec_path": str(spec_path.resolve()),
        "plan": plan.model_dump(mode="json"),
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def load_plan(path: Path) -> tuple[Plan, Path]:
    """Read a saved plan; raises SpecError naming the file on any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read saved plan: {exc.strerror}") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"{path}:{exc.lineno}:{exc.colno}: not a saved plan (invalid JSON: {exc.msg})"
        ) from exc
    if not isinstance(document, dict) or document.get("kind") != SAVED_PLAN_KIND:
        raise SpecError(f'{path}: not a saved plan (expected "kind": "{SAVED_PLAN_KIND}")')
    raw_plan = document.get("plan")
    if isinstance(raw_plan, dict) and raw_plan.get("format_version") != PLAN_FORMAT_VERSION:
        raise SpecError(
            f"{path}: plan format_version {raw_plan.get('format_version')!r} is not supported "
            f"(this reconciler reads {PLAN_FORMAT_VERSION}); make the plan again"
        )
    try:
        plan = Plan.model_validate(raw_plan)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SpecError(f"{path}: invalid saved plan at plan.{where}: {first['msg']}") from exc
    spec_path = document.get("spec_path")
    if not isinstance(spec_path, str) or not spec_path:
        raise SpecError(f"{path}: saved plan has no spec_path")
    return plan, Path(spec_path)
