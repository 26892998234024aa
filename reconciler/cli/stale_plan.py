"""A saved plan gone stale: the facts its steps depend on that differ now, as a table.

`reconcile apply PLAN_JSON` refuses a saved plan when :func:`stale_facts` finds any
(a :class:`~reconciler.common.errors.StalePlanError`), after printing
:func:`render_stale`'s table of what was planned against what is current.
"""

from __future__ import annotations

from reconciler.observe.snapshot_model import Observed
from reconciler.plan.facts import changed_facts
from reconciler.plan.model import Fact, Plan
from reconciler.spec.loader import LoadedSpec


def stale_facts(
    loaded: LoadedSpec, saved: Plan, observed: Observed
) -> list[tuple[Fact, str | None]]:
    """Every fact a saved plan's steps depend on that differs now (deduplicated, plan order)."""
    seen: set[tuple[str, str, str | None]] = set()
    facts: list[Fact] = []
    for step in saved.steps:
        for fact in step.depends_on:
            key = (fact.node, fact.key, fact.value)
            if key not in seen:
                seen.add(key)
                facts.append(fact)
    return list(changed_facts(loaded.spec, observed, facts))


def render_stale(changed: list[tuple[Fact, str | None]]) -> str:
    rows = [("fact", "planned", "current")] + [
        (f"{f.node}.{f.key}", repr(f.value), repr(cur)) for f, cur in changed
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )
