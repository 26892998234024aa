"""Identity: whether a node's view can be attributed to the spec node it was read from.

Pure. A view that cannot be attributed is a **gap** of its node (held back, and every
cluster-changing step with it). Only clustered views are checked: a view that lists no
members carries no address. A clustered view's `(me)` line must be the spec node's own
address after normalisation (:func:`reconciler.common.addresses.same_address`):

* a database node with no `(me)` line is held back (a member whose own line is missing and
  a Call Bridge connected as a client look the same); a client with none is fine;
* a `(me)` that is a host name where the spec gives an address (or the reverse) is not
  matched (only a resolution that can be shown could): the spec should give the address
  the status prints;
* a `(me)` that names another address means the node's MMP answers as another host:
  check `mmp_host`.

:func:`view_gaps` is every gap of one view: the lines of
:func:`reconciler.observe.status_evidence.base_gaps`, then the identity.
"""

from __future__ import annotations

from reconciler.common.addresses import is_ip_address, same_address
from reconciler.observe.snapshot_model import NodeObservation
from reconciler.observe.status_evidence import Clustering, base_gaps, clustering
from reconciler.observe.status_model import ClusterStatus
from reconciler.spec.model import NodeRole


def identity_gap(
    key: str, address: str, role: NodeRole | None, status: ClusterStatus
) -> str | None:
    """Why the view cannot be attributed to this node (None: it can, or it cannot be checked).

    A view that lists no members carries no address, so only clustered views are checked.
    """
    if clustering(status) is not Clustering.YES or not status.members:
        return None
    me = status.me
    if me is None:
        if role is NodeRole.CLIENT:
            return None
        return (
            f"its status marks no member `(me)`: it cannot be told whether {key} is a member "
            "whose own line is missing or a Call Bridge connected as a client"
        )
    if same_address(me.address, address):
        return None
    if is_ip_address(me.address) != is_ip_address(address):
        return (
            f"the spec names it {address} but its status prints itself as {me.address}; a host "
            "name and an address are matched only by a resolution that can be shown: give the "
            "address its status prints in the spec"
        )
    return f"{key}'s MMP answers as {me.address}: check `mmp_host`"


def view_gaps(
    key: str, address: str, role: NodeRole | None, obs: NodeObservation
) -> tuple[str, ...]:
    """Why the view of ``obs`` cannot be used for any decision (empty: it can)."""
    status = obs.status if obs.reachable else None
    if status is None:
        return ()
    gaps = list(base_gaps(status))
    who = identity_gap(key, address, role, status)
    if who is not None:
        gaps.append(who)
    return tuple(gaps)
