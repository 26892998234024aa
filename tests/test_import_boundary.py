"""The pure core (parsing, planning, rendering) never reaches I/O libraries.

Static check over the import graph (like kopf's import-linter contract): the
pure modules, and every reconciler module they import transitively, must not
import asyncssh, psycopg, subprocess, socket, watchfiles or asyncio.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "reconciler"
PURE_MODULES = [
    "status_model",
    "status_parser",
    "status_render",
    "spec_model",
    "snapshot_model",
    "plan_model",
    "plan_render",
    "planner",
    "facts",
    "cluster_view",
    "plan_procedures",
    "simulation",
    "watch_decision",
    "maintenance",
    "backoff",
]
FORBIDDEN = {"asyncssh", "psycopg", "subprocess", "socket", "watchfiles", "asyncio", "os"}


def _imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _closure(module: str) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {}
    todo = [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        imported = _imports(current)
        seen[current] = imported
        for name in imported:
            if name.startswith("reconciler."):
                todo.append(name.split(".", 1)[1])
    return seen


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_has_no_io_imports(module: str) -> None:
    assert (PACKAGE / f"{module}.py").exists(), f"pure module reconciler/{module}.py is missing"
    offenders = {
        f"reconciler.{mod} imports {name}"
        for mod, imported in _closure(module).items()
        for name in imported
        if name.split(".")[0] in FORBIDDEN
    }
    assert not offenders, sorted(offenders)
