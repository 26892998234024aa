"""Staying converged: the watch loop, its decision, supervisor, triggers, windows, backoff, metrics.

Owns: re-planning when a spec changes or a timer fires, deciding whether to heal or
only report (mode, maintenance windows, backoff), one loop per cluster, the
Prometheus metrics, and following a git repository (``watch --git``: the fetch loop,
the webhook, the signature gate, the checkouts the loops read). May import ``apply``,
``source`` and everything below them.
"""
