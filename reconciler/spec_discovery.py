"""Find cluster specs among the paths given on the command line (files or directories)."""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

SPEC_SUFFIXES = (".yaml", ".yml")


def looks_like_spec(path: Path) -> bool:
    """A YAML file whose top level has both `version` and `cluster` keys."""
    try:
        data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YAMLError):
        # Unreadable or broken files are not silently skipped when named directly:
        # discover_specs only uses this for directory members.
        return False
    return isinstance(data, dict) and "version" in data and "cluster" in data


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
