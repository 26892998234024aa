"""Find cluster specs among the paths given on the command line (files or directories)."""

from __future__ import annotations

from pathlib import Path

from reconciler.common.errors import SpecError
from reconciler.spec.yaml_file import load_yaml_data

SPEC_SUFFIXES = (".yaml", ".yml")


def looks_like_spec(path: Path) -> bool:
    """A directory member is taken as a spec when its top level has `version` or `cluster`.

    A file that cannot be read or parsed is taken too, so that loading it reports the
    problem with its line and column instead of the file being skipped in silence; other
    YAML files (snapshots, CI configs) are left alone. It is read as a spec is: bounded
    (a huge or special file is taken and then refused by the loader), plain data only.
    """
    try:
        data = load_yaml_data(path)
    except SpecError:
        return True
    return isinstance(data, dict) and ("version" in data or "cluster" in data)


def discover_specs(paths: list[Path]) -> list[Path]:
    """Files are taken as given; directories contribute their spec files (sorted, no recursion)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                p
                for p in sorted(path.iterdir())
                if p.is_file() and p.suffix in SPEC_SUFFIXES and looks_like_spec(p)
            )
        else:
            found.append(path)
    return found
