"""Saved plans (`reconcile plan --out plan.json`, `reconcile apply plan.json`).

A saved plan is the plan's full JSON (every step with the facts it depends on)
plus the path and digest of the spec it was made from, so `apply` can re-load
the spec, re-observe and refuse with the exact facts that changed.

A saved plan is read bounded (:data:`reconciler.common.file_limits.PLAN_LIMIT`, a regular
file only); JSON nested deeper than Python can parse is a clear error, not a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reconciler.common.errors import SpecError
from reconciler.common.file_limits import PLAN_LIMIT, read_text_bounded
from reconciler.plan.model import PLAN_FORMAT_VERSION, Plan

SAVED_PLAN_KIND = "cms-reconciler-plan"


def save_plan(plan: Plan, spec_path: Path) -> str:
    """Serialise a plan for `apply plan.json` (stable key order, trailing newline)."""
    document: dict[str, Any] = {
        "kind": SAVED_PLAN_KIND,
        "spec_path": str(spec_path.resolve()),
        "plan": plan.model_dump(mode="json"),
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def read_plan_document(path: Path) -> Any:
    """The JSON value of a saved plan file (any JSON); SpecError naming the file otherwise."""
    return _parse_json(path, read_text_bounded(path, PLAN_LIMIT, "saved plan"))


def _parse_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"{path}:{exc.lineno}:{exc.colno}: not a saved plan (invalid JSON: {exc.msg})"
        ) from None
    except RecursionError:
        raise SpecError(f"{path}: not a saved plan (JSON nested too deeply)") from None
    except ValueError as exc:  # e.g. an integer with too many digits
        raise SpecError(f"{path}: not a saved plan (invalid JSON: {exc})") from None


def is_saved_plan(path: Path) -> bool:
    """``apply`` reads a ``.json`` target as a saved plan (specs are YAML): a missing,
    truncated or foreign JSON file is then reported as a saved plan that cannot be used,
    never validated as a spec."""
    return path.suffix.lower() == ".json"


def load_plan(path: Path) -> tuple[Plan, Path]:
    """Read a saved plan; raises SpecError naming the file on any problem."""
    document = read_plan_document(path)
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
    except RecursionError:
        raise SpecError(f"{path}: invalid saved plan: nested too deeply") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SpecError(f"{path}: invalid saved plan at plan.{where}: {first['msg']}") from exc
    spec_path = document.get("spec_path")
    if not isinstance(spec_path, str) or not spec_path:
        raise SpecError(f"{path}: saved plan has no spec_path")
    return plan, Path(spec_path)
