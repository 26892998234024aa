"""The house rules that the import contract (.importlinter, run by `make test`) does not state.

- every package of reconciler is one of the layers of the contract, so a new package
  cannot sit outside the pipeline unnoticed;
- every package says in its docstring what it owns and what it may import;
- no module is over MAX_LINES lines (reconciler and cmslab);
- cmslab's modules import each other without a circle.
"""

from __future__ import annotations

import ast
import configparser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400


def _contract_layers() -> list[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter", encoding="utf-8")
    return config["importlinter:contract:stages"]["layers"].replace("|", " ").split()


def _packages(root: str) -> list[str]:
    base = ROOT / root
    return sorted(
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in base.rglob("__init__.py")
        if p.parent != base
    )


def _modules(*roots: str) -> list[Path]:
    return sorted(p for root in roots for p in (ROOT / root).rglob("*.py"))


def test_every_top_level_package_is_a_layer() -> None:
    layers = _contract_layers()
    top = [p for p in _packages("reconciler") if p.count(".") == 1]
    assert sorted(top) == sorted(layers), "reconciler's packages and the contract's layers differ"


@pytest.mark.parametrize("package", _packages("reconciler"))
def test_package_says_what_it_owns(package: str) -> None:
    init = ROOT / package.replace(".", "/") / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
    assert doc and len(doc.split()) >= 12, f"{package} has no docstring saying what it owns"


@pytest.mark.parametrize(
    "module", _modules("reconciler", "cmslab"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_module_is_small(module: Path) -> None:
    lines = len(module.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{module.relative_to(ROOT)} has {lines} lines (limit {MAX_LINES})"


def _local_imports(path: Path, package: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.level == 0 and node.module.startswith(package + "."):
                names.add(node.module.split(".")[1])
            elif node.level == 0 and node.module == package:
                names.update(alias.name for alias in node.names)
            elif node.level == 1:
                names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            names.update(
                a.name.split(".")[1] for a in node.names if a.name.startswith(package + ".")
            )
    return names


def test_cmslab_has_no_import_cycle() -> None:
    graph = {p.stem: _local_imports(p, "cmslab") - {p.stem} for p in (ROOT / "cmslab").glob("*.py")}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not cycles, "cmslab import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
