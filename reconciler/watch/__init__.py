"""Staying converged: the watch loop, its decision, supervisor, triggers, windows, backoff, metrics.

Owns: re-planning when a spec changes or a timer fires, deciding whether to heal or
only report (mode, maintenance windows, backoff), one loop per cluster, and the
Prometheus metrics. May import ``apply`` and everything below it.
"""
