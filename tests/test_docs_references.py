"""Docs that name code name code that exists (docs that no longer match the code are defects).

Every Markdown file at the root and under docs/ is scanned for
- paths such as ``reconciler/apply/executor.py`` or ``tests/lab/``: the file or folder exists;
- dotted names such as ``reconciler.plan.planner.plan``: the module imports and has the name;
- bare file names such as ``step_outcome.py``: some file of the repository has that name.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([*ROOT.glob("*.md"), *(ROOT / "docs").rglob("*.md")])
TOP = r"(?:reconciler|cmslab|tests|benchmarks|scripts|specs|schemas|deploy|docs)"
PATH = re.compile(rf"(?<![\w./-]){TOP}/[\w./-]*[\w/]")
DOTTED = re.compile(r"(?<![\w./-])(?:reconciler|cmslab)(?:\.[A-Za-z_]\w*)+")
BARE = re.compile(r"(?<![\w./-])([a-z_][a-z0-9_]*\.py)\b")
REPO_FILES = {p.name for p in ROOT.rglob("*.py") if ".venv" not in p.parts}


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def _references(doc: Path) -> list[tuple[int, str, str]]:
    out = []
    for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        out += [(number, "path", m.group(0).rstrip(".")) for m in PATH.finditer(line)]
        out += [(number, "name", m.group(0).rstrip(".")) for m in DOTTED.finditer(line)]
        out += [(number, "file", m.group(1)) for m in BARE.finditer(line)]
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_doc_names_existing_code(doc: Path) -> None:
    stale = []
    for number, kind, ref in _references(doc):
        if kind == "path":
            ok = (ROOT / ref).exists() or "*" in ref
        elif kind == "name":
            ok = _resolves(ref)
        else:
            ok = ref in REPO_FILES
        if not ok:
            stale.append(f"{doc.relative_to(ROOT)}:{number}: {ref}")
    assert not stale, "docs name code that does not exist:\n" + "\n".join(stale)
