"""Master acceptance: which claimed master the planner may act on, and what contradicts it.

Pure. Of the distinct connected masters the readable views claim, one is **accepted** only
when it is the only one claimed and:

* its own view could be read (else ``problem``: its own view is needed);
* its own view is complete — every line, the interface and certificates too (else
  ``problem``: the view is incomplete);
* its own view shows itself `Connected Master` (else a **contradiction**, with every
  clustered view's claim);
* it shows more than half of its members connected (A1; else a stale claim); and
* no usable view contradicts it: a member the master shows connected that does not follow
  it, or says it is not clustered; a member that follows it while the master shows it
  disconnected; a member that follows it while its `Node in use` names another node.

When the one claimed master is not accepted, ``problem`` or ``contradictions`` say why, and
the planner plans nothing (:mod:`reconciler.plan.holds`). No claimed master, or more than
one (split brain), is not judged here: there is no accepted master.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from reconciler.common.addresses import same_address
from reconciler.common.majority import has_majority
from reconciler.observe.status_evidence import certificates_gap, interface_gap
from reconciler.observe.status_model import ClusterStatus, Member, MemberRole

if TYPE_CHECKING:  # cluster_view builds the views and calls this module
    from reconciler.plan.cluster_view import NodeView


class Acceptance(NamedTuple):
    master: str | None  # the accepted master's address as printed
    problem: str | None  # why the one claimed master could not be judged
    contradictions: tuple[str, ...]  # views that disagree about the master


def accept_master(masters: Sequence[str], views: Sequence[NodeView]) -> Acceptance:
    """Judge the claimed masters against the views (see the module docstring)."""
    master: str | None = None
    problem: str | None = None
    contradictions: list[str] = []
    if len(masters) != 1:
        return Acceptance(master, problem, ())
    claimed = masters[0]
    mv = next((v for v in views if same_address(v.address, claimed)), None)
    label = f"{mv.key} ({claimed})" if mv is not None and mv.key != claimed else claimed
    mst = mv.status if mv is not None else None
    me = mst.me if mst is not None else None
    if mv is None or mst is None:
        why = mv.observation.why_not if mv is not None else "not observed"
        problem = f"the master {label} cannot be observed ({why}): its own view is needed"
    elif mv.gaps or interface_gap(mst) or certificates_gap(mst):
        gaps = [*mv.gaps, *(g for g in (interface_gap(mst), certificates_gap(mst)) if g)]
        problem = f"the master {label}'s own status is incomplete: " + "; ".join(gaps)
    elif me is None or me.role is not MemberRole.MASTER or not me.connected:
        shown = me.raw if me is not None else "no `(me)` line"
        claims = [_claim(v) for v in views if v.status is not None and v.clustered]
        contradictions.append(
            f"{label} is named master, but its own status shows it `{shown}` ("
            + "; ".join(claims)
            + ")"
        )
    else:
        up = sum(1 for m in mst.members if m.connected)
        if not has_majority(up, len(mst.members)):
            contradictions.append(
                f"{label} shows itself `{me.raw}`, but its own view shows only {up} of "
                f"{len(mst.members)} members connected, and a master needs more than half "
                "(A1): a stale claim"
            )
        contradictions.extend(_disagreements(mv, views))
        if not contradictions:
            master = claimed
    return Acceptance(master, problem, tuple(contradictions))


def _member_line(status: ClusterStatus, address: str) -> Member | None:
    return next((m for m in status.members if same_address(m.address, address)), None)


def _claim(nv: NodeView) -> str:
    """What one view says about the master, for a contradiction message."""
    st = nv.status
    assert st is not None
    if st.master is None:
        return f"{nv.key} sees no master"
    if st.master.is_me:
        return f"{nv.key} says it is the master"
    return f"{nv.key} follows {st.master.address}"


def _disagreements(master: NodeView, views: Sequence[NodeView]) -> list[str]:
    """Usable views that contradict the master's own view (see the module docstring)."""
    mst = master.status
    assert mst is not None
    found: list[str] = []
    for nv in views:
        st = nv.status
        if nv.key == master.key or st is None or not nv.usable:
            continue
        shown = _member_line(mst, nv.address)
        seen = st.master
        follows = seen is not None and same_address(seen.address, master.address)
        own = _member_line(st, master.address)
        own_text = f"`{own.raw}`" if own is not None else "not at all"
        if shown is not None and shown.connected:
            if nv.unclustered:
                found.append(
                    f"{master.key} shows {nv.key} `{shown.raw}`, but {nv.key}'s own status "
                    "says it is not clustered"
                )
            elif nv.clustered and not follows:
                found.append(
                    f"{master.key} shows {nv.key} `{shown.raw}`, but {nv.key} shows "
                    f"{master.key} {own_text} ({_claim(nv)})"
                )
        elif shown is not None and follows:
            found.append(
                f"{nv.key} shows {master.key} {own_text}, but {master.key} shows {nv.key} "
                f"`{shown.raw}`"
            )
        if (
            follows
            and st.node_in_use is not None
            and not same_address(st.node_in_use, master.address)
        ):
            found.append(
                f"{nv.key} shows {master.key} as its master but its `Node in use` is "
                f"{st.node_in_use}"
            )
    return found
