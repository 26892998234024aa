"""The checked-in JSON Schema is the one generated from the spec model."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.spec.model import ClusterSpec
from reconciler.spec.schema import SCHEMA_DIALECT, spec_json_schema, spec_json_schema_text

REPO = Path(__file__).resolve().parent.parent
CHECKED_IN = REPO / "schemas" / "cluster-spec.schema.json"


def test_checked_in_schema_is_current() -> None:
    assert CHECKED_IN.read_text(encoding="utf-8") == spec_json_schema_text(), (
        "schemas/cluster-spec.schema.json is stale: run `make schema` and commit the result"
    )


def test_schema_metadata_and_shape() -> None:
    schema = spec_json_schema()
    assert schema["$schema"] == SCHEMA_DIALECT
    assert schema["$id"] and schema["title"] == "CMS database cluster spec"
    assert set(schema["properties"]) == set(ClusterSpec.model_fields)
    assert set(schema["required"]) == {
        "version",
        "cluster",
        "master",
        "nodes",
        "certificates",
        "ssh",
    }
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["SshSpec"]["additionalProperties"] is False


def test_schema_text_is_stable_json() -> None:
    text = spec_json_schema_text()
    assert text.endswith("}\n")
    assert json.loads(text) == spec_json_schema()
    assert text == spec_json_schema_text()


def test_example_specs_point_at_the_schema() -> None:
    for name in ("example.yaml", "lab.yaml"):
        first = (REPO / "specs" / name).read_text(encoding="utf-8").splitlines()[0]
        target = first.split("$schema=", 1)[1]
        assert (REPO / "specs" / target).resolve() == CHECKED_IN.resolve()
