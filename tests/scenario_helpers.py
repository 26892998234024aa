"""Shared helpers for the planner tests: specs, local files, golden files, random worlds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from ruamel.yaml import YAML

from reconciler.observe.snapshot_model import NodeObservation, Observed
from reconciler.observe.status_model import CommandResult
from reconciler.observe.status_parser import parse_status
from reconciler.plan.model import Plan, Step
from reconciler.plan.planner import plan
from reconciler.plan.simulation import (
    NO_CERTS,
    SCHEMA_ERROR,
    SimNode,
    World,
    apply_step,
    observe,
    settle,
)
from reconciler.spec.local_file import LocalFile
from reconciler.spec.model import ClusterSpec

GOLDEN_DIR = Path(__file__).parent / "golden"

CERTS_BLOCK = {
    "ca": "certs/ca.cer",
    "server": {"cert": "certs/server.cer", "key": "certs/server.key"},
    "client": {"cert": "certs/client.cer", "key": "certs/client.key"},
}
DB_CERTS = ("server.key", "server.cer", "client.key", "client.cer", "ca.cer")
CLIENT_CERTS = (None, None, "client.key", "client.cer", "ca.cer")
NEW = {
    "certs/server.key": "11" * 32,
    "certs/server.cer": "22" * 32,
    "certs/client.key": "33" * 32,
    "certs/client.cer": "44" * 32,
    "certs/ca.cer": "55" * 32,
}
OLD_SHA = "ee" * 32


def spec_dict(
    nodes: list[dict[str, Any]], master: str, policy: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "version": 1,
        "cluster": "test",
        "interface": "a",
        "master": master,
        "nodes": nodes,
        "certificates": CERTS_BLOCK,
        "ssh": {"known_hosts": "known_hosts"},
        "policy": dict(policy or {}),
    }


def local_files(spec_paths: Mapping[str, str] = NEW) -> dict[str, LocalFile]:
    return {
        path: LocalFile(
            spec_path=path,
            local_path=f"/spec/{path}",
            remote_name=path.rsplit("/", 1)[-1],
            sha256=sha,
        )
        for path, sha in spec_paths.items()
    }


def step_tuple(step: Step) -> tuple[str, str, str | None, bool, str | None]:
    return (step.node, step.action.value, step.command, step.destructive, step.procedure)


def step_tuples(p: Plan) -> list[tuple[str, str, str | None, bool, str | None]]:
    return [step_tuple(s) for s in p.steps]


# ----- golden files -----
@dataclass(frozen=True)
class Golden:
    name: str
    description: str
    spec: ClusterSpec
    observed: Observed
    local_files: dict[str, LocalFile] | None
    expect: dict[str, Any]


def golden_files() -> list[Path]:
    return sorted(GOLDEN_DIR.glob("*.yaml"))


def load_golden(path: Path) -> Golden:
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    nodes: dict[str, NodeObservation] = {}
    for name, entry in (data["observed"].get("nodes") or {}).items():
        files = entry.get("files")
        if "unreachable" in entry:
            nodes[str(name)] = NodeObservation(unreachable=str(entry["unreachable"]))
        else:
            text = str(entry["status"])
            nodes[str(name)] = NodeObservation(
                raw_status=text,
                status=parse_status(text),
                files={str(k): str(v) for k, v in files.items()} if files is not None else None,
            )
    lf = data.get("local_files")
    return Golden(
        name=path.stem,
        description=str(data["description"]),
        spec=ClusterSpec.model_validate(data["spec"]),
        observed=Observed(nodes=nodes),
        local_files=local_files({str(k): str(v) for k, v in lf.items()}) if lf else None,
        expect=data["expect"],
    )


# ----- random worlds for property tests -----
@dataclass(frozen=True)
class Case:
    spec: ClusterSpec
    world: World
    local_files: dict[str, LocalFile] | None

    def plan(self, world: World | None = None) -> Plan:
        return plan(self.spec, observe(world or self.world), self.local_files)


def run(world: World, steps: tuple[Step, ...] | list[Step]) -> World:
    for s in steps:
        world = apply_step(world, s)
    return world


@st.composite
def node_config(draw: st.DrawFn, database: bool, clustered: bool, files_listed: bool) -> SimNode:
    """Interface, certificate names and files of one node (address and key filled in later)."""
    right = DB_CERTS if database else CLIENT_CERTS
    wrong = ("old.key", "old.cer", "client.key", "client.cer", "ca.cer") if database else right
    options = [right, right, right, wrong] if clustered else [right, wrong, NO_CERTS]
    certs = draw(st.sampled_from(options))
    interface = draw(st.sampled_from(["a", "a", "a", "b"] if clustered else ["a", "b", None]))
    files: tuple[tuple[str, str], ...] | None = None
    if files_listed:
        names = {path.rsplit("/", 1)[-1]: sha for path, sha in NEW.items()}
        if not database:
            names = {k: v for k, v in names.items() if not k.startswith("server")}
        listing: dict[str, str] = {}
        for name, sha in names.items():
            kind = draw(st.sampled_from(["same", "same", "absent", "old"]))
            if kind == "same":
                listing[name] = sha
            elif kind == "old":
                listing[name] = OLD_SHA
        # Names in use on a clustered node exist in its root.
        for name in certs:
            if name is not None and name not in listing and (clustered or name.startswith("old")):
                listing[name] = OLD_SHA
        files = tuple(sorted(listing.items()))
    return SimNode(
        key="",
        address="",
        database=database,
        interface=interface,
        certs=certs,
        files=files,
        clustered=False,
        wording=draw(st.sampled_from(["master", "primary"])),
    )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    n_db = draw(st.sampled_from([3, 5]))
    n_client = draw(st.integers(0, 1))
    n_extra = draw(st.integers(0, 1))
    master_i = draw(st.integers(0, n_db - 1))
    policy = {
        "allow_remove": draw(st.booleans()),
        "allow_master_move": draw(st.sampled_from([True, True, True, False])),
    }
    with_files = draw(st.booleans())
    spec_nodes: list[dict[str, Any]] = [
        {"name": f"n{i + 1}", "address": f"10.0.0.{i + 1}"} for i in range(n_db)
    ]
    spec_nodes += [
        {"name": f"c{i + 1}", "address": f"10.0.1.{i + 1}", "role": "client"}
        for i in range(n_client)
    ]
    spec = ClusterSpec.model_validate(spec_dict(spec_nodes, f"n{master_i + 1}", policy))
    kind = draw(st.sampled_from(["fresh", "clustered", "clustered"]))

    db_keys = [n["name"] for n in spec_nodes if "role" not in n]
    members: list[str] = []
    if kind == "clustered":
        chosen = draw(st.lists(st.sampled_from(db_keys), min_size=1, unique=True))
        members = [k for k in db_keys if k in chosen]
    extra_members = [f"10.0.9.{i + 1}" for i in range(n_extra)] if kind == "clustered" else []

    nodes: list[SimNode] = []
    for entry in spec_nodes:
        database = "role" not in entry
        clustered = entry["name"] in members or (
            not database and kind == "clustered" and draw(st.booleans())
        )
        cfg = draw(node_config(database, clustered, with_files))
        nodes.append(replace(cfg, key=entry["name"], address=entry["address"], clustered=clustered))
    for address in extra_members:
        cfg = draw(node_config(True, True, False))
        nodes.append(replace(cfg, key=address, address=address, clustered=True))

    member_addresses = [n.address for n in nodes if n.database and n.clustered]
    master = draw(st.sampled_from(member_addresses)) if member_addresses else None
    out: list[SimNode] = []
    for n in nodes:
        n = replace(n, wal=10 if n.address == master else draw(st.integers(5, 10)))
        # The first spec member is always up: a cluster whose every member is unreachable is
        # invisible to the planner (docs/planner.md, "Limits").
        first = bool(members) and n.key == members[0]
        n = replace(n, up=first or draw(st.sampled_from([True] * 8 + [False])))
        trouble = draw(st.sampled_from(["none"] * 16 + ["sync", "schema", "running", "error"]))
        if trouble == "sync" and n.clustered and n.database and n.address != master:
            n = replace(n, in_sync=False)
        elif trouble == "schema" and n.clustered and n.database:
            n = replace(
                n,
                error=SCHEMA_ERROR,
                schema_pending=True,
                last_command="database cluster upgrade_schema",
                last_result=CommandResult.FAILED,
            )
        elif trouble == "running":
            n = replace(n, running="database cluster join 10.0.0.1")
        elif trouble == "error" and not n.clustered:
            n = replace(
                n,
                error="Couldn't join the cluster",
                last_command="database cluster join 10.0.0.1",
                last_result=CommandResult.FAILED,
            )
        elif not n.clustered and draw(st.booleans()):
            n = replace(n, last_command="database cluster remove")
        out.append(n)
    world = settle(World(nodes=tuple(out), membership=tuple(member_addresses), master=master))
    return Case(spec=spec, world=world, local_files=local_files() if with_files else None)
