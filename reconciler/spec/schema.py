"""JSON Schema of the spec file, generated from :class:`reconciler.spec.model.ClusterSpec`.

The checked-in copy is ``schemas/cluster-spec.schema.json`` (editors use it via
the ``# yaml-language-server: $schema=...`` line of a spec); ``make schema``
regenerates it and ``tests/test_schema.py`` fails when it is stale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler.spec.model import ClusterSpec

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:cms-cluster-reconciler:schema:cluster-spec:v1"
SCHEMA_TITLE = "CMS database cluster spec"
SCHEMA_FILE = Path("schemas") / "cluster-spec.schema.json"


def spec_json_schema() -> dict[str, Any]:
    schema = ClusterSpec.model_json_schema()
    schema["$schema"] = SCHEMA_DIALECT
    schema["$id"] = SCHEMA_ID
    schema["title"] = SCHEMA_TITLE
    schema["description"] = (
        "Desired state of one Cisco Meeting Server database cluster, "
        "applied by the cms-cluster-reconciler (`reconcile plan` / `reconcile apply`). "
        "File paths are relative to the spec file."
    )
    return schema


def spec_json_schema_text() -> str:
    """The schema exactly as checked in (sorted keys, 2-space indent, trailing newline)."""
    return json.dumps(spec_json_schema(), indent=2, sort_keys=True) + "\n"


def write_schema(path: Path = SCHEMA_FILE) -> None:
    path.write_text(spec_json_schema_text(), encoding="utf-8")


if __name__ == "__main__":
    import sys

    sys.stdout.write(spec_json_schema_text())
