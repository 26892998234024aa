"""Issue 8: the planner on degraded evidence (partial, misattributed, contradictory captures).

A generator starts from consistent simulated worlds (``scenario_helpers.cases``, re-addressed
with IPv4, IPv6 or host names), prints every node's status text with ``render_status``,
degrades the text of one node X (or swaps two) with ``degrade``, parses the texts with the
real parser and plans with the real planner. Invariants:

A. nothing crashes (parse, plan, every plan renderer);
B. a spelling-only degradation plans the same steps as the undegraded texts;
C. a lossy degradation of X: (i) no cluster-changing or preparing step on X; (ii) no such
   step that the undegraded plan does not have; (iii) when X is a clustered database member,
   no `remove` and no `initialize` at all; (iv) when X is the master, no cluster-changing
   step at all;
D. the degraded plan, run on the true world, never takes a majority away;
E. a node whose steps are held back is named in ``plan.blocked``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from degrade import (
    NO_EXIT_STATUS,
    OBSERVATION_KINDS,
    SPELLING,
    TEXT_KINDS,
    Variant,
    has_me,
    lines_of,
    swap,
    swappable,
    variants,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scenario_helpers import CLIENT_CERTS, DB_CERTS, Case, cases, local_files, spec_dict

from reconciler.common.addresses import normalize_address
from reconciler.observe.snapshot_model import NodeObservation, Observed
from reconciler.observe.status_parser import parse_status
from reconciler.observe.status_render import render_status
from reconciler.plan.model import Action, Plan
from reconciler.plan.planner import plan
from reconciler.plan.render import render_json, render_markdown, render_text
from reconciler.plan.simulation import (
    NO_CERTS,
    SimNode,
    StepRefused,
    UnsafeStep,
    World,
    apply_step,
    observe,
    settle,
)
from reconciler.spec.local_file import LocalFile
from reconciler.spec.model import ClusterSpec

FIXTURES = Path(__file__).parent / "fixtures" / "status"
SETTINGS_SPELLING = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
# One failure is shrunk and reported (shrinking several distinct ones takes a minute while
# the planner still fails them); the explicit examples below show one of each class.
SETTINGS_LOSSY = settings(
    max_examples=240,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    report_multiple_bugs=False,
)
# Steps that prepare, form or change the cluster (uploads are left out: they touch no state).
ACTING = frozenset(
    {
        Action.INITIALIZE,
        Action.JOIN,
        Action.CONNECT,
        Action.REMOVE,
        Action.UPGRADE_SCHEMA,
        Action.CLEAR_ERROR,
        Action.LOCALNODE,
        Action.CERTS,
    }
)
CLUSTER_CHANGING = frozenset(
    {Action.INITIALIZE, Action.JOIN, Action.CONNECT, Action.REMOVE, Action.UPGRADE_SCHEMA}
)
UNREACHABLE = "connection refused (simulated)"
SCHEMES = ("ipv4", "ipv6", "host")


# ----- addresses: the same worlds with IPv4, IPv6 or host names -----
def new_address(address: str, scheme: str) -> str:
    """10.0.0.i (database), 10.0.1.i (client), 10.0.9.i (extra) in another scheme."""
    if scheme == "ipv4" or not address.startswith("10.0."):
        return address
    _, _, group, i = address.split(".")
    if scheme == "ipv6":
        return {"0": f"2001:db8::25{i}", "1": f"2001:db8:1::{i}", "9": f"2001:db8:9::{i}"}[group]
    return {"0": f"cms{i}", "1": f"cb{i}", "9": f"extra{i}"}[group] + ".example.com"


def _command(command: str | None, scheme: str) -> str | None:
    if command is None:
        return None
    head, _, last = command.rpartition(" ")
    return f"{head} {new_address(last, scheme)}"


def readdress(case: Case, scheme: str) -> Case:
    if scheme == "ipv4":
        return case
    data = case.spec.model_dump(mode="json")
    for n in data["nodes"]:
        n["address"] = new_address(n["address"], scheme)
    nodes = tuple(
        replace(
            n,
            key=new_address(n.key, scheme) if n.key == n.address else n.key,
            address=new_address(n.address, scheme),
            running=_command(n.running, scheme),
            last_command=_command(n.last_command, scheme),
        )
        for n in case.world.nodes
    )
    world = World(
        nodes=nodes,
        membership=tuple(new_address(a, scheme) for a in case.world.membership),
        master=new_address(case.world.master, scheme) if case.world.master else None,
    )
    return Case(spec=ClusterSpec.model_validate(data), world=world, local_files=case.local_files)


# ----- one degraded observation -----
@dataclass(frozen=True)
class Example:
    spec: ClusterSpec
    world: World
    local_files: dict[str, LocalFile] | None
    texts: dict[str, str | None]  # key -> rendered status text (None: unreachable)
    files: dict[str, dict[str, str] | None]
    kind: str
    detail: str
    nodes: tuple[str, ...]  # X (and its swap partner)
    degraded: dict[str, str | None] = field(default_factory=dict)
    no_exit: tuple[str, ...] = ()

    @property
    def lossy(self) -> bool:
        return self.kind not in SPELLING

    def observed(self, texts: Mapping[str, str | None], no_exit: tuple[str, ...] = ()) -> Observed:
        nodes: dict[str, NodeObservation] = {}
        for key, text in texts.items():
            if key in no_exit:
                # What the observer records for a node that answered without a usable status.
                nodes[key] = NodeObservation(unreadable=NO_EXIT_STATUS)
            elif text is None:
                nodes[key] = NodeObservation(unreachable=UNREACHABLE)
            else:
                nodes[key] = NodeObservation(
                    raw_status=text, status=parse_status(text), files=self.files[key]
                )
        return Observed(nodes=nodes)

    def __repr__(self) -> str:
        return describe(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis's printer
        printer.text(describe(self))


def truth(world: World, n: SimNode) -> str:
    bits = [n.key, n.address]
    if not n.database:
        bits.append("client")
    if not n.up:
        bits.append("DOWN")
    if n.address == world.master:
        bits.append("MASTER")
    elif n.database and n.clustered:
        bits.append("replica" if n.in_sync else "replica-syncing")
    elif n.clustered:
        bits.append("connected")
    else:
        bits.append("unclustered")
    bits.append(f"if={n.interface}")
    certs = (
        "none" if n.certs == NO_CERTS else "ok" if n.certs in (DB_CERTS, CLIENT_CERTS) else "old"
    )
    bits.append(f"certs={certs}")
    if n.error:
        bits.append(f"error={n.error!r}")
    if n.running:
        bits.append(f"running={n.running!r}")
    return " ".join(bits)


def describe(ex: Example) -> str:
    spec = " ".join(
        f"{n.name}={n.address}" + ("(client)" if n.role == "client" else "") for n in ex.spec.nodes
    )
    pol = ex.spec.policy
    out = [
        f"spec: {spec} master={ex.spec.master} allow_remove={pol.allow_remove} "
        f"allow_master_move={pol.allow_master_move} files={'yes' if ex.local_files else 'no'}",
        "world: " + " | ".join(truth(ex.world, n) for n in ex.world.nodes),
        f"degradation: {ex.kind} on {', '.join(ex.nodes)}: {ex.detail}",
    ]
    for key in ex.nodes:
        if key in ex.no_exit:
            out.append(f"--- {key}: unreachable={NO_EXIT_STATUS!r}")
            continue
        out.append(f"--- {key} degraded text:")
        out.append(ex.degraded.get(key) or "(none)")
    return "\n".join(out)


def _same_spelling(word: str) -> str:
    return normalize_address(word)


def steps_of(p: Plan) -> list[tuple[str, str, str | None]]:
    """(node, action, command) with addresses normalised: a spelling is not a change."""
    out = []
    for s in p.steps:
        command = s.command
        if command is not None and s.action in (Action.JOIN, Action.CONNECT):
            *verb, target = command.split()
            command = " ".join([*verb, _same_spelling(target)])
        out.append((_same_spelling(s.node), s.action.value, command))
    return out


def plan_summary(p: Plan) -> str:
    lines = [f"  {n} {a} {c or ''}" for n, a, c in steps_of(p)] or ["  (no steps)"]
    lines += [f"  blocked[{b.node}]: {b.reason}" for b in p.blocked]
    return "\n".join(lines)


def build(
    case: Case, scheme: str, columns: Mapping[str, int] | None = None
) -> tuple[Case, dict[str, str | None], dict[str, dict[str, str] | None]]:
    """The re-addressed case, every node's rendered status text and file listing."""
    case = readdress(case, scheme)
    observed = observe(case.world)
    texts: dict[str, str | None] = {}
    files: dict[str, dict[str, str] | None] = {}
    for n in case.world.nodes:
        obs = observed.nodes[n.key]
        files[n.key] = obs.files
        if obs.status is None:
            texts[n.key] = None
        else:
            column = (columns or {}).get(n.key, 25)
            wording = "primary" if n.wording == "primary" else "master"
            texts[n.key] = render_status(obs.status, wording=wording, column=column)
    return case, texts, files


def make_example(
    case: Case,
    texts: dict[str, str | None],
    files: dict[str, dict[str, str] | None],
    kind: str,
    nodes: tuple[str, ...],
    variant: Variant | None = None,
) -> Example:
    degraded = dict(texts)
    no_exit: tuple[str, ...] = ()
    detail = ""
    if kind == "swap":
        degraded = swap(texts, nodes[0], nodes[1])
        detail = f"texts of {nodes[0]} and {nodes[1]} exchanged"
    elif kind == "no_exit_status":
        no_exit = nodes
        detail = "the status command ended without an exit status"
    else:
        assert variant is not None
        degraded[nodes[0]] = variant.text
        detail = variant.detail
    return Example(
        spec=case.spec,
        world=case.world,
        local_files=case.local_files,
        texts=texts,
        files=files,
        kind=kind,
        detail=detail,
        nodes=nodes,
        degraded={k: degraded[k] for k in nodes},
        no_exit=no_exit,
    )


@st.composite
def examples(draw: st.DrawFn, spelling: bool) -> Example:
    # cases() keeps a member up; a fresh world can be all down (rare): nothing to degrade.
    case = draw(cases().filter(lambda c: any(n.up for n in c.world.nodes)))
    scheme = draw(st.sampled_from(SCHEMES))
    columns = {n.key: draw(st.sampled_from([21, 25, 27])) for n in case.world.nodes}
    case, texts, files = build(case, scheme, columns)
    return draw(examples_from_texts(case, texts, files, spelling))


@st.composite
def examples_from_texts(
    draw: st.DrawFn,
    case: Case,
    texts: dict[str, str | None],
    files: dict[str, dict[str, str] | None],
    spelling: bool,
) -> Example:
    up = [k for k, t in texts.items() if t is not None]
    x = draw(st.sampled_from(up))
    text = texts[x]
    assert text is not None
    by_kind = {kind: vs for kind, vs in variants(text).items() if (kind in SPELLING) is spelling}
    if spelling:
        kind = draw(st.sampled_from(sorted(by_kind)))  # tight_labels always applies
        return make_example(case, texts, files, kind, (x,), draw(st.sampled_from(by_kind[kind])))
    partners = [k for k in up if swappable(texts, x, k)]
    kinds = sorted(by_kind) + ["no_exit_status"] + (["swap"] if partners else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "no_exit_status":
        return make_example(case, texts, files, kind, (x,))
    if kind == "swap":
        return make_example(case, texts, files, kind, (x, draw(st.sampled_from(partners))))
    return make_example(case, texts, files, kind, (x,), draw(st.sampled_from(by_kind[kind])))


# ----- invariants -----
@dataclass
class Checked:
    ex: Example
    before: Plan
    after: Plan
    violations: dict[str, list[str]]

    def message(self, *invariants: str) -> str:
        broken = [f"invariant {k} violated: " + "; ".join(self.violations[k]) for k in invariants]
        return "\n".join(
            [
                *broken,
                describe(self.ex),
                "undegraded plan:",
                plan_summary(self.before),
                "degraded plan:",
                plan_summary(self.after),
            ]
        )


def _render_all(p: Plan) -> None:
    render_text(p)
    render_json([p])
    render_markdown([p])


def check(ex: Example) -> Checked:
    """Plan the undegraded and the degraded texts; every invariant's violations."""
    v: dict[str, list[str]] = {k: [] for k in ("A", "B", "Ci", "Cii", "Ciii", "Civ", "D", "E")}
    before = plan(ex.spec, ex.observed(ex.texts), ex.local_files)
    degraded_texts = {**ex.texts, **ex.degraded}
    try:
        observed = ex.observed(degraded_texts, ex.no_exit)
        after = plan(ex.spec, observed, ex.local_files)
        _render_all(after)
    except Exception as exc:  # invariant A
        raise AssertionError(f"A: crashed: {exc!r}\n{describe(ex)}") from exc
    checked = Checked(ex, before, after, v)
    old, new = steps_of(before), steps_of(after)
    if not ex.lossy:
        if old != new:
            v["B"].append("a spelling-only change changed the steps")
        return checked

    acting_new = [s for s in new if Action(s[1]) in ACTING]
    on_x = [s for s in acting_new if s[0] in ex.nodes]
    if on_x:
        v["Ci"].append(f"steps on the degraded node: {on_x}")
    # A join may name another master than before (a move held back joins the current,
    # accepted master): compared by (node, action), a degraded view adds no acting step.
    extra = [s for s in acting_new if s[:2] not in {o[:2] for o in old}]
    if extra:
        v["Cii"].append(f"steps the undegraded plan does not have: {extra}")
    world = ex.world
    xs = [world.node(k) for k in ex.nodes]
    if any(n.database and n.clustered for n in xs):
        bad = [s for s in new if s[1] in (Action.REMOVE.value, Action.INITIALIZE.value)]
        if bad:
            v["Ciii"].append(f"{bad} although a degraded node is a clustered member")
    if any(n.address == world.master for n in xs):
        bad = [s for s in new if Action(s[1]) in CLUSTER_CHANGING]
        if bad:
            v["Civ"].append(f"{bad} although the master's view is degraded")

    had_majority = world.has_majority
    for step in after.steps:
        try:
            world = apply_step(world, step)
        except UnsafeStep as exc:
            v["D"].append(f"{step.id} {step.node} {step.command}: unsafe: {exc}")
            break
        except StepRefused:
            break  # the MMP refuses: the plan stops there
        if world.membership and had_majority and not world.has_majority:
            v["D"].append(f"after {step.id} {step.node} {step.command!r} the majority is lost")
            break

    for key in ex.nodes:
        if any(s[0] == key for s in old) and not any(
            b.node == key or key in b.reason for b in after.blocked
        ):
            v["E"].append(f"{key} had steps and is not named in plan.blocked")
    return checked


def assert_invariants(ex: Example) -> None:
    c = check(ex)
    assert not c.violations["B"], c.message("B")
    assert not c.violations["D"], c.message("D")
    assert not c.violations["Civ"], c.message("Civ")
    assert not c.violations["Ciii"], c.message("Ciii")
    assert not c.violations["Ci"], c.message("Ci")
    assert not c.violations["Cii"], c.message("Cii")
    assert not c.violations["E"], c.message("E")


@SETTINGS_SPELLING
@given(examples(spelling=True))
def test_spelling_only_degradations_plan_the_same_steps(ex: Example) -> None:
    assert_invariants(ex)


@SETTINGS_LOSSY
@given(examples(spelling=False))
def test_lossy_degradations_hold_the_node_back(ex: Example) -> None:
    assert_invariants(ex)


# ----- explicit examples: healthy, fresh, certificate rotation -----
def _node(key: str, address: str, **kw: Any) -> SimNode:
    return SimNode(key=key, address=address, interface="a", certs=DB_CERTS, **kw)


def scenario(name: str) -> Case:
    if name == "healthy":  # IPv6
        addresses = [f"2001:db8::25{i}" for i in (1, 2, 3)]
    elif name == "fresh":  # host names
        addresses = [f"cms{i}.example.com" for i in (1, 2, 3)]
    else:  # rotation, IPv4
        addresses = [f"10.0.0.{i}" for i in (1, 2, 3)]
    keys = ["n1", "n2", "n3"]
    spec = ClusterSpec.model_validate(
        spec_dict([{"name": k, "address": a} for k, a in zip(keys, addresses, strict=True)], "n1")
    )
    if name == "fresh":
        nodes = [
            SimNode(key=k, address=a, interface=None, certs=NO_CERTS)
            for k, a in zip(keys, addresses, strict=True)
        ]
        world = World(nodes=tuple(nodes))
    else:
        nodes = [
            _node(
                k,
                a,
                clustered=True,
                wal=10,
                wording="primary" if k == "n2" else "master",
                last_command="database cluster initialize"
                if k == "n1"
                else f"database cluster join {addresses[0]}",
            )
            for k, a in zip(keys, addresses, strict=True)
        ]
        if name == "rotation":
            nodes[2] = replace(nodes[2], certs=("old.key", "old.cer", *DB_CERTS[2:]))
        world = settle(World(nodes=tuple(nodes), membership=tuple(addresses), master=addresses[0]))
    return Case(spec=spec, world=world, local_files=local_files())


def _representatives(vs: list[Variant], text: str) -> list[Variant]:
    if vs[0].kind != "cut":
        return vs[:1]
    n = len(lines_of(text))
    wanted = {f"cut after line {k} " for k in (1, 3, n - 1)}
    return [v for v in vs if any(v.detail.startswith(w) for w in wanted)]


def explicit_examples() -> list[Any]:
    out: list[Any] = []
    for name in ("healthy", "fresh", "rotation"):
        case, texts, files = build(scenario(name), "ipv4")
        for x in ("n1", "n3"):
            text = texts[x]
            assert text is not None
            for kind, vs in variants(text).items():
                for v in _representatives(vs, text):
                    ex = make_example(case, texts, files, kind, (x,), v)
                    out.append(pytest.param(ex, id=f"{name}-{x}-{kind}-{v.detail[:24]}"))
            ex = make_example(case, texts, files, "no_exit_status", (x,))
            out.append(pytest.param(ex, id=f"{name}-{x}-no_exit_status"))
        for a, b in (("n1", "n3"), ("n2", "n3")):
            if swappable(texts, a, b):
                ex = make_example(case, texts, files, "swap", (a, b))
                out.append(pytest.param(ex, id=f"{name}-swap-{a}-{b}"))
    return out


@pytest.mark.parametrize("ex", explicit_examples())
def test_explicit_degradation(ex: Example) -> None:
    c = check(ex)
    failed = [k for k, msgs in c.violations.items() if msgs]
    assert not failed, c.message(*failed)


def test_explicit_examples_cover_every_degradation_class() -> None:
    kinds = {p.values[0].kind for p in explicit_examples()}
    assert kinds >= {*TEXT_KINDS, *OBSERVATION_KINDS}


def test_undegraded_explicit_scenarios_plan_as_today() -> None:
    """The starting points themselves: converged, a fresh build, a rotation with `remove`."""
    plans = {}
    for name in ("healthy", "fresh", "rotation"):
        case, texts, files = build(scenario(name), "ipv4")
        ex = make_example(case, texts, files, "no_exit_status", ())
        plans[name] = plan(case.spec, ex.observed(texts), case.local_files)
    assert steps_of(plans["healthy"]) == []
    assert Action.INITIALIZE in {s.action for s in plans["fresh"].steps}
    assert ("n3", "remove", "database cluster remove") in steps_of(plans["rotation"])


# ----- the published capture of FAQ 238 (reconstructed from the facts file) -----
FAQ_ADDRESSES = ("10.0.0.11", "10.0.0.12", "10.0.0.13")


def faq_views() -> dict[str, str]:
    """The healthy partial capture (seen on n2) as each of the three nodes prints it."""
    text = (FIXTURES / "faq238_healthy_partial.txt").read_text(encoding="utf-8")
    assert has_me(text)
    out: dict[str, str] = {}
    for i, address in enumerate(FAQ_ADDRESSES, start=1):
        lines = []
        for line in text.replace(" (me)", "").splitlines():
            if line.strip().startswith(address + " "):
                line = line.replace(address, address + " (me)", 1)
            lines.append(line)
        out[f"n{i}"] = "\n".join(lines) + "\n"
    assert out["n2"] == text
    return out


def faq_spec() -> ClusterSpec:
    nodes = [{"name": f"n{i}", "address": a} for i, a in enumerate(FAQ_ADDRESSES, start=1)]
    return ClusterSpec.model_validate(spec_dict(nodes, "n1"))


def _observed(texts: Mapping[str, str | None]) -> Observed:
    return Observed(
        nodes={
            k: NodeObservation(raw_status=t, status=parse_status(t))
            if t is not None
            else NodeObservation(unreachable=UNREACHABLE)
            for k, t in texts.items()
        }
    )


@pytest.mark.parametrize("files", [False, True], ids=["no-local-files", "local-files"])
def test_faq238_healthy_partial_capture_plans_nothing_and_says_what_is_unknown(
    files: bool,
) -> None:
    p = plan(faq_spec(), _observed(faq_views()), local_files() if files else None)
    _render_all(p)
    assert steps_of(p) == [], plan_summary(p)
    said = [(b.node, b.reason) for b in p.blocked] + [(None, w) for w in p.warnings]
    for name in ("n1", "n2", "n3"):
        about = " ".join(r for node, r in said if node == name or name in r).lower()
        assert about, f"{name} is not named in blocked or warnings:\n{plan_summary(p)}"
        assert "interface" in about and "certificate" in about, (
            f"{name}: the unknown interface/certificates are not reported:\n{plan_summary(p)}"
        )


def test_faq238_minority_node_alone_plans_nothing() -> None:
    text = (FIXTURES / "faq238_minority_node.txt").read_text(encoding="utf-8")
    p = plan(faq_spec(), _observed({"n1": None, "n2": None, "n3": text}), local_files())
    _render_all(p)
    assert steps_of(p) == [], plan_summary(p)
