"""Observed facts: the compare-and-set values plan steps depend on.

Pure. A fact is ``(node, key, value)``; ``node`` is a spec node name, or the member
address for a cluster member the spec does not list. Every value is a string or None,
computed from one :class:`Observed` snapshot (and the spec, for the reference view and
the address-to-node mapping, see :mod:`reconciler.plan.cluster_view`).

Keys (value when the node is unreachable: ``reachable`` = ``no``, every other key None).
A value whose line the status did not show is ``unknown`` (never None, which means
"`none`"), so a step planned on a value is never run on a reading that lost the line:

``reachable``   ``yes`` | ``no`` — the node's status could be read.
``state``       the `Status` line: ``enabled`` | ``disabled`` | ``error`` | ``unknown``.
``role``        ``master`` | ``replica`` (a database member) | ``client`` (connected, not a
                member) | ``none`` (not clustered, on positive evidence); ``unknown`` when the
                view has a gap (:mod:`reconciler.observe.status_evidence`) or unrecognised text.
``master``      address of the connected master this node sees (as printed), None if none;
                ``unknown`` when the `Nodes:` block was not read whole.
``interface``   the `Interface` value (``a``..``d``), None when `none`.
``certs``       the five certificate file names comma-joined in the order server key, server
                certificate, client key, client certificate, CA certificate (``none`` if unset);
                ``unknown`` when a certificate line is missing.
``sync``        how the reference view (the master's own status) shows this node:
                ``master`` | ``in-sync`` | ``syncing`` | ``disconnected`` | ``unknown``;
                None when it is not a member or there is no master.
``error``       the text of the `ERROR` line, None when there is none (``unknown`` when
                neither an `ERROR` nor a `Status` line was shown).
``in_progress`` ``yes`` while `Last command` shows ``(In progress)``, ``no`` for a finished or
                no command, ``unknown`` when the line is missing or unreadable.
``file:<name>`` sha256 of file ``<name>`` in the node's SFTP root; None when absent or when
                the files were not listed.

:func:`changed_facts` re-reads a list of facts against a new observation and returns those
whose value differs: the executor uses it before each step, and `apply plan.json` for the
whole saved plan, to say exactly what changed.
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.observe.snapshot_model import NodeObservation, Observed
from reconciler.observe.status_evidence import UNKNOWN, error_known, in_progress, missing
from reconciler.observe.status_model import CERTIFICATE_LINES, Certificates, Line
from reconciler.plan.cluster_view import ClusterView, NodeView, build_view
from reconciler.plan.model import Fact
from reconciler.spec.model import ClusterSpec

FACT_KEYS = (
    "reachable",
    "state",
    "role",
    "master",
    "interface",
    "certs",
    "sync",
    "error",
    "in_progress",
)
FILE_PREFIX = "file:"


def certs_value(certs: Certificates | tuple[str | None, ...]) -> str:
    names = (
        certs
        if isinstance(certs, tuple)
        else (
            certs.server_key,
            certs.server_cert,
            certs.client_key,
            certs.client_cert,
            certs.ca_cert,
        )
    )
    return ",".join(n if n is not None else "none" for n in names)


def _node_view(view: ClusterView, node: str) -> NodeView | None:
    return view.node(node) or view.by_address(node)


def _value(view: ClusterView, observed: Observed, node: str, key: str) -> str | None:
    nv = _node_view(view, node)
    obs: NodeObservation = nv.observation if nv is not None else observed.get(node)
    if key == "reachable":
        return "yes" if obs.reachable else "no"
    if key == "sync":
        return nv.sync if nv is not None else None
    status = obs.status if obs.reachable else None
    if status is None:
        return None
    if key == "state":
        return status.state.value
    if key == "role":
        return nv.role if nv is not None else None
    if key == "master":
        if Line.NODES not in status.shown or status.incomplete:
            return UNKNOWN
        return status.master.address if status.master is not None else None
    if key == "interface":
        return status.interface if Line.INTERFACE in status.shown else UNKNOWN
    if key == "certs":
        if missing(status, CERTIFICATE_LINES):
            return UNKNOWN
        return certs_value(status.certificates)
    if key == "error":
        return status.error if error_known(status) else UNKNOWN
    if key == "in_progress":
        running = in_progress(status)
        return UNKNOWN if running is None else ("yes" if running else "no")
    if key.startswith(FILE_PREFIX):
        if obs.files is None:
            return None
        return obs.files.get(key[len(FILE_PREFIX) :])
    raise KeyError(f"unknown fact key {key!r}")


def fact_value(spec: ClusterSpec, observed: Observed, node: str, key: str) -> str | None:
    """The current value of one fact (see the module docstring for the keys)."""
    return _value(build_view(spec, observed), observed, node, key)


def facts_from_view(
    view: ClusterView, observed: Observed, pairs: Iterable[tuple[str, str]]
) -> tuple[Fact, ...]:
    """Facts for (node, key) pairs from an already-built view (the planner's fast path)."""
    return tuple(Fact(node=n, key=k, value=_value(view, observed, n, k)) for n, k in pairs)


def changed_facts(
    spec: ClusterSpec, observed: Observed, facts: Iterable[Fact]
) -> tuple[tuple[Fact, str | None], ...]:
    """(fact, current value) for each fact whose value differs in ``observed``."""
    view = build_view(spec, observed)
    changed: list[tuple[Fact, str | None]] = []
    for fact in facts:
        current = _value(view, observed, fact.node, fact.key)
        if current != fact.value:
            changed.append((fact, current))
    return tuple(changed)
