"""The pins in constraints.txt cover what pyproject.toml asks for, and both installs use them.

constraints.txt pins what the container image installs (the runtime dependencies, all they
pull in, tzdata, the build backend); constraints-dev.txt adds the dev tools for the
Makefile's venv. Written by container/update_constraints.py.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
RUNTIME = [*PROJECT["project"]["dependencies"], "tzdata"]
BUILD = PROJECT["build-system"]["requires"]
DEV = PROJECT["project"]["optional-dependencies"]["dev"]


def _pins(name: str) -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for raw in (ROOT / name).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-c "):
            continue
        package, sep, version = line.partition("==")
        assert sep, f"{name}: {line!r} is not pinned with =="
        key = canonicalize_name(package)
        assert key not in pins, f"{name}: {package} pinned twice"
        pins[key] = Version(version)
    return pins


IMAGE = _pins("constraints.txt")
DEV_PINS = _pins("constraints-dev.txt")


def _installed_requirements(req: Requirement) -> list[Requirement]:
    """What the installed distribution of req requires, with req's extras applied."""
    try:
        requires = metadata.distribution(req.name).requires or []
    except metadata.PackageNotFoundError:
        return []
    out = []
    for line in requires:
        sub = Requirement(line)
        extras = req.extras or {""}
        if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras):
            out.append(sub)
    return out


@pytest.mark.parametrize("requirement", RUNTIME + BUILD)
def test_image_requirement_is_pinned_in_constraints_txt(requirement: str) -> None:
    req = Requirement(requirement)
    pin = IMAGE.get(canonicalize_name(req.name))
    assert pin is not None, f"{req.name} is not pinned in constraints.txt"
    assert req.specifier.contains(pin, prereleases=True), f"{req.name}=={pin} is not {req}"


def test_what_the_runtime_dependencies_pull_in_is_pinned() -> None:
    """What the runtime dependencies pull in (as installed here) is pinned too."""
    todo = [Requirement(r) for r in RUNTIME]
    seen: set[str] = set()
    unpinned = []
    while todo:
        req = todo.pop()
        key = canonicalize_name(req.name) + str(sorted(req.extras))
        if key in seen:
            continue
        seen.add(key)
        pin = IMAGE.get(canonicalize_name(req.name))
        if pin is None or not req.specifier.contains(pin, prereleases=True):
            unpinned.append(f"{req} (pinned: {pin})")
        todo += _installed_requirements(req)
    assert not unpinned, "constraints.txt misses or contradicts: " + ", ".join(unpinned)


@pytest.mark.parametrize("requirement", DEV)
def test_dev_requirement_is_pinned(requirement: str) -> None:
    req = Requirement(requirement)
    key = canonicalize_name(req.name)
    pin = DEV_PINS.get(key, IMAGE.get(key))
    assert pin is not None, f"{req.name} is pinned in neither constraints file"
    assert req.specifier.contains(pin, prereleases=True), f"{req.name}=={pin} is not {req}"


def test_dev_constraints_include_the_image_ones_and_repeat_none() -> None:
    lines = (ROOT / "constraints-dev.txt").read_text(encoding="utf-8").splitlines()
    assert "-c constraints.txt" in lines
    assert not IMAGE.keys() & DEV_PINS.keys(), "pinned in both files: keep one pin"


def test_the_image_and_the_makefile_install_with_the_constraints() -> None:
    containerfile = (ROOT / "Containerfile").read_text(encoding="utf-8")
    assert "PIP_CONSTRAINT=/src/constraints.txt" in containerfile
    assert "COPY constraints.txt" in containerfile
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "-c constraints-dev.txt -e '.[dev]'" in makefile
