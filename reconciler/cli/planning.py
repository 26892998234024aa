"""Planning a loaded spec as every command does it: its files read, its digest recorded.

The plan carries the spec file's digest, so a saved plan is refused when the spec changed
since (``reconcile apply PLAN``), for the offline and the live ``plan`` alike.
"""

from __future__ import annotations

from reconciler.observe.snapshot_model import Observed
from reconciler.plan.model import Plan
from reconciler.plan.planner import plan as make_plan
from reconciler.spec.loader import LoadedSpec, read_local_files, spec_digest


def plan_with_digest(loaded: LoadedSpec, observed: Observed) -> Plan:
    """The plan for ``loaded`` against ``observed``, carrying the spec file's digest."""
    result = make_plan(loaded.spec, observed, read_local_files(loaded))
    return result.model_copy(update={"spec_digest": spec_digest(loaded.path)})
