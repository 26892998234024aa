"""Golden planner scenarios: tests/golden/<name>.yaml, one scenario per file.

Each file: `description`, `spec` (inline spec mapping), `observed` (raw status texts, parsed
with reconciler.observe.status_parser, or `unreachable`; optional `files`), optional `local_files`
(spec path -> sha256) and `expect`: the exact steps (node, action, command, destructive,
procedure) plus substrings that must appear in `blocked`, `warnings` and `drift`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from scenario_helpers import Golden, golden_files, load_golden

from reconciler.observe.snapshot_io import load_snapshot
from reconciler.plan.facts import FACT_KEYS, changed_facts, fact_value
from reconciler.plan.model import Action, Plan
from reconciler.plan.planner import plan
from reconciler.spec.model import ClusterSpec

FILES = golden_files()
GOLDEN = Path(__file__).parent / "golden"


def _expected_steps(expect: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (
            s["node"],
            s["action"],
            s.get("command"),
            bool(s.get("destructive", False)),
            s.get("procedure"),
        )
        for s in expect.get("steps") or []
    ]


def _actual_steps(p: Plan) -> list[tuple[Any, ...]]:
    return [(s.node, s.action.value, s.command, s.destructive, s.procedure) for s in p.steps]


def _contains(texts: tuple[str, ...], wanted: list[str], what: str) -> None:
    for needle in wanted:
        assert any(needle in t for t in texts), f"{what} lacks {needle!r}: {texts}"


def test_there_are_enough_golden_scenarios() -> None:
    assert len(FILES) >= 28


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_golden(path: Path) -> None:
    g: Golden = load_golden(path)
    p = plan(g.spec, g.observed, g.local_files)
    assert _actual_steps(p) == _expected_steps(g.expect), g.description
    _contains(tuple(b.reason for b in p.blocked), g.expect.get("blocked_contains") or [], "blocked")
    _contains(p.warnings, g.expect.get("warnings_contains") or [], "warnings")
    _contains(p.drift, g.expect.get("drift_contains") or [], "drift")
    # Step ids are s01, s02, ... and every depends_on fact holds on the observation.
    assert [s.id for s in p.steps] == [f"s{i:02d}" for i in range(1, len(p.steps) + 1)]
    for s in p.steps:
        assert changed_facts(g.spec, g.observed, s.depends_on) == ()
        assert s.reason and s.expect
        assert (s.action is Action.UPLOAD) == (s.upload is not None) == (s.command is None)
        assert s.confirm == (s.action is Action.REMOVE) == s.destructive
    # A plan with no steps and no drift is converged; nothing left unexplained.
    if not p.steps and not p.blocked:
        assert not [w for w in p.warnings if "unreachable" in w]


# ----- the example snapshots for specs/example.yaml -----
REPO = Path(__file__).resolve().parent.parent


def _example_spec() -> ClusterSpec:
    data = YAML(typ="safe").load((REPO / "specs" / "example.yaml").read_text(encoding="utf-8"))
    return ClusterSpec.model_validate(data)


@pytest.mark.parametrize(
    ("snapshot", "expected"),
    [
        (
            "example-fresh.yaml",
            [
                ("cms-lon-1", "localnode"),
                ("cms-lon-1", "certs"),
                ("cms-ams-1", "localnode"),
                ("cms-ams-1", "certs"),
                ("cms-fra-1", "localnode"),
                ("cms-fra-1", "certs"),
                ("cms-lon-1", "initialize"),
                ("cms-ams-1", "join"),
                ("cms-fra-1", "join"),
            ],
        ),
        (
            "example-drifted.yaml",
            [
                ("cms-fra-1", "localnode"),
                ("cms-lon-1", "backup"),
                ("cms-ams-1", "backup"),
                ("cms-ams-1", "remove"),
                ("cms-ams-1", "join"),
                ("cms-fra-1", "join"),
            ],
        ),
    ],
)
def test_example_snapshots(snapshot: str, expected: list[tuple[str, str]]) -> None:
    spec = _example_spec()
    observed = load_snapshot(REPO / "specs" / "snapshots" / snapshot)
    assert set(observed.nodes) == {n.name for n in spec.nodes}
    p = plan(spec, observed)
    assert [(s.node, s.action.value) for s in p.steps] == expected
    joins = {s.command for s in p.steps if s.action is Action.JOIN}
    assert joins <= {"database cluster join 10.48.36.61"}


# ----- facts: the values plans depend on -----
def test_fact_values_of_a_golden_observation() -> None:
    g = load_golden(GOLDEN / "schema-error-replica.yaml")
    values = {
        (node, key): fact_value(g.spec, g.observed, node, key)
        for node in ("cms-lon-1", "cms-fra-1")
        for key in (*FACT_KEYS, "file:vngtpRootca.cer")
    }
    assert values[("cms-lon-1", "role")] == "master"
    assert values[("cms-lon-1", "sync")] == "master"
    assert values[("cms-lon-1", "state")] == "enabled"
    assert values[("cms-fra-1", "role")] == "replica"
    assert values[("cms-fra-1", "sync")] == "in-sync"
    assert values[("cms-fra-1", "state")] == "error"
    assert values[("cms-fra-1", "error")] == "Couldn't upgrade the schema"
    assert values[("cms-fra-1", "master")] == "10.48.36.61"
    assert values[("cms-fra-1", "interface")] == "a"
    assert values[("cms-fra-1", "in_progress")] == "no"
    assert values[("cms-fra-1", "reachable")] == "yes"
    assert values[("cms-fra-1", "certs")] == (
        "dbclusterserver.key,dbclusterserver.cer,dbclusterclient.key,dbclusterclient.cer,"
        "vngtpRootca.cer"
    )
    assert values[("cms-fra-1", "file:vngtpRootca.cer")] is None  # files not listed


def test_fact_values_of_unreachable_and_extra_nodes() -> None:
    g = load_golden(GOLDEN / "extra-node-remove-allowed.yaml")
    assert fact_value(g.spec, g.observed, "10.48.36.250", "role") == "replica"
    assert fact_value(g.spec, g.observed, "10.48.36.250", "sync") == "in-sync"
    u = load_golden(GOLDEN / "unreachable-steady-state.yaml")
    assert fact_value(u.spec, u.observed, "cms-fra-1", "reachable") == "no"
    assert fact_value(u.spec, u.observed, "cms-fra-1", "state") is None
    assert fact_value(u.spec, u.observed, "cms-fra-1", "sync") == "disconnected"
    c = load_golden(GOLDEN / "client-node-connect.yaml")
    assert fact_value(c.spec, c.observed, "cms-cb-1", "role") == "none"
    with pytest.raises(KeyError):
        fact_value(c.spec, c.observed, "cms-cb-1", "colour")


def test_changed_facts_names_exactly_what_changed() -> None:
    before = load_golden(GOLDEN / "master-move.yaml")
    after = load_golden(GOLDEN / "converged-3-node.yaml")
    p = plan(before.spec, before.observed)
    facts = [f for s in p.steps for f in s.depends_on]
    changed = changed_facts(after.spec, after.observed, facts)
    described = {(f.node, f.key, f.value, now) for f, now in changed}
    assert ("cms-fra-1", "master", "10.48.36.118", "10.48.36.61") in described
    assert ("cms-ams-1", "role", "master", "replica") in described
    assert all(f.value != now for f, now in changed)
    assert changed_facts(before.spec, before.observed, facts) == ()
