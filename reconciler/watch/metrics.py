"""Prometheus metrics and the ``/healthz`` liveness endpoint of ``reconcile watch``.

One :class:`WatchMetrics` per process holds its own registry (not the global
one, so tests and several loops in one process do not collide). The HTTP
server is prometheus-client's WSGI app for ``/metrics`` behind a tiny router
that adds ``/healthz`` and ``/hooks/git`` (the git webhook,
:mod:`reconciler.watch.webhook_endpoint`; 404 "webhook not configured" without
one), served by the standard library's threading WSGI server in a daemon thread.

Metric names (all prefixed ``cms_reconciler_``), labels in braces:

* ``cluster_state{cluster,state}`` 1 for the current verdict, 0 for the others
* ``cluster_paused{cluster}``, ``spec_valid{cluster}``, ``in_maintenance_window{cluster}``
* ``steps_pending{cluster}`` steps planned but not applied this cycle
* ``steps_applied_total{cluster}``, ``steps_failed_total{cluster}`` counters
* ``cycles_total{cluster,outcome}`` counter (ok / observe_failed / apply_failed / error)
* ``last_successful_cycle_timestamp_seconds{cluster}`` Unix time
* ``observe_duration_seconds{cluster}`` histogram
* ``node_reachable{cluster,node}`` 1/0
* ``certificate_expiry_days{cluster,file}`` days until ``notAfter`` (negative: expired)
* ``applied_revision_info{cluster,revision}`` 1 for the full sha of the git commit the
  cluster was last applied or found converged at (``watch --git``); the previous one's
  series is removed
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

PREFIX = "cms_reconciler"
# Verdicts a cluster can be in; "unknown" until the first successful observation.
CLUSTER_STATES: tuple[str, ...] = (
    "converged",
    "drifted",
    "degraded",
    "no_master",
    "unknown",
)
OBSERVE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)

StartResponse = Callable[..., Any]
Environ = dict[str, Any]
Metric = Gauge | Counter | Histogram


class WatchMetrics:
    """The watch loop's metrics, in a private registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.state = Gauge(
            f"{PREFIX}_cluster_state",
            "1 for the cluster's current verdict, 0 for the other verdicts",
            ["cluster", "state"],
            registry=r,
        )
        self.paused = Gauge(
            f"{PREFIX}_cluster_paused", "1 when policy.paused is set", ["cluster"], registry=r
        )
        self.spec_valid = Gauge(
            f"{PREFIX}_spec_valid",
            "1 when the spec file currently on disk is valid (0: the last valid one is enforced)",
            ["cluster"],
            registry=r,
        )
        self.in_window = Gauge(
            f"{PREFIX}_in_maintenance_window",
            "1 when destructive steps are allowed now (inside a window, or no windows set)",
            ["cluster"],
            registry=r,
        )
        self.pending = Gauge(
            f"{PREFIX}_steps_pending",
            "Steps planned but not applied in the last cycle",
            ["cluster"],
            registry=r,
        )
        self.applied = Counter(
            f"{PREFIX}_steps_applied", "Steps applied successfully", ["cluster"], registry=r
        )
        self.failed = Counter(
            f"{PREFIX}_steps_failed", "Steps that failed", ["cluster"], registry=r
        )
        self.cycles = Counter(
            f"{PREFIX}_cycles", "Watch cycles by outcome", ["cluster", "outcome"], registry=r
        )
        self.last_success = Gauge(
            f"{PREFIX}_last_successful_cycle_timestamp_seconds",
            "Unix time of the last cycle that observed and planned without error",
            ["cluster"],
            registry=r,
        )
        self.observe_duration = Histogram(
            f"{PREFIX}_observe_duration_seconds",
            "Time to observe every node of the cluster",
            ["cluster"],
            buckets=OBSERVE_BUCKETS,
            registry=r,
        )
        self.node_reachable = Gauge(
            f"{PREFIX}_node_reachable",
            "1 when the node's MMP answered the last observation",
            ["cluster", "node"],
            registry=r,
        )
        self.cert_days = Gauge(
            f"{PREFIX}_certificate_expiry_days",
            "Days until the spec's certificate file expires (negative when expired)",
            ["cluster", "file"],
            registry=r,
        )
        self.applied_revision = Gauge(
            f"{PREFIX}_applied_revision_info",
            "1 for the git commit (full sha) the cluster was last applied or found converged at",
            ["cluster", "revision"],
            registry=r,
        )
        self._nodes: dict[str, set[str]] = {}
        self._revisions: dict[str, str] = {}
        self._cert_files: dict[str, set[str]] = {}
        self._series: dict[str, set[tuple[Metric, tuple[str, ...]]]] = {}
        self._lock = threading.Lock()

    def _child(self, metric: Metric, cluster: str, *rest: str) -> Any:
        """``metric.labels(cluster, *rest)``, remembered so the cluster can be forgotten."""
        labels = (cluster, *rest)
        with self._lock:
            self._series.setdefault(cluster, set()).add((metric, labels))
        return metric.labels(*labels)

    # --- updates ---------------------------------------------------------------
    def set_state(self, cluster: str, state: str) -> None:
        states = CLUSTER_STATES if state in CLUSTER_STATES else (*CLUSTER_STATES, state)
        for s in states:
            self._child(self.state, cluster, s).set(1 if s == state else 0)

    def set_flags(self, cluster: str, *, paused: bool, spec_valid: bool, in_window: bool) -> None:
        self._child(self.paused, cluster).set(int(paused))
        self._child(self.spec_valid, cluster).set(int(spec_valid))
        self._child(self.in_window, cluster).set(int(in_window))

    def record_cycle(
        self,
        cluster: str,
        *,
        outcome: str,
        pending: int,
        applied: int,
        failed: int,
        success_time: float | None,
    ) -> None:
        self._child(self.pending, cluster).set(pending)
        self._child(self.applied, cluster).inc(applied)
        self._child(self.failed, cluster).inc(failed)
        self._child(self.cycles, cluster, outcome).inc()
        if success_time is not None:
            self._child(self.last_success, cluster).set(success_time)

    def record_observation(self, cluster: str, duration: float, reachable: dict[str, bool]) -> None:
        self._child(self.observe_duration, cluster).observe(duration)
        with self._lock:
            old = self._nodes.get(cluster, set())
            for node in old - reachable.keys():
                self.node_reachable.remove(cluster, node)
                self._series.get(cluster, set()).discard((self.node_reachable, (cluster, node)))
            self._nodes[cluster] = set(reachable)
        for node, ok in reachable.items():
            self._child(self.node_reachable, cluster, node).set(int(ok))

    def set_certificate_days(self, cluster: str, days: dict[str, float]) -> None:
        with self._lock:
            old = self._cert_files.get(cluster, set())
            for name in old - days.keys():
                self.cert_days.remove(cluster, name)
                self._series.get(cluster, set()).discard((self.cert_days, (cluster, name)))
            self._cert_files[cluster] = set(days)
        for name, value in days.items():
            self._child(self.cert_days, cluster, name).set(value)

    def set_applied_revision(self, cluster: str, sha: str) -> None:
        """The cluster is at commit ``sha``: its series is 1, the previous one's removed."""
        with self._lock:
            old = self._revisions.get(cluster)
            if old is not None and old != sha:
                self.applied_revision.remove(cluster, old)
                self._series.get(cluster, set()).discard((self.applied_revision, (cluster, old)))
            self._revisions[cluster] = sha
        self._child(self.applied_revision, cluster, sha).set(1)

    def forget_cluster(self, cluster: str) -> None:
        """Drop every series of a cluster whose spec file went away."""
        with self._lock:
            series = self._series.pop(cluster, set())
            self._nodes.pop(cluster, None)
            self._cert_files.pop(cluster, None)
            self._revisions.pop(cluster, None)
        for metric, labels in series:
            metric.remove(*labels)


# --- liveness ------------------------------------------------------------------
@dataclass
class HealthState:
    """Liveness: every watched cluster's loop has made progress recently.

    ``beat`` is called at the start and end of every cycle and after every
    applied step. Healthy when each registered loop beat within ``stale_after``
    seconds (a loop that started but never beat counts from its registration).
    The supervisor itself is a registered loop too, so a process watching no
    valid cluster is healthy as long as it runs.
    """

    stale_after: float
    clock: Callable[[], float] = time.monotonic
    _beats: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def beat(self, name: str) -> None:
        with self._lock:
            self._beats[name] = self.clock()

    def forget(self, name: str) -> None:
        with self._lock:
            self._beats.pop(name, None)

    def check(self) -> tuple[bool, list[str]]:
        """(healthy, one line per loop: name, seconds since its last beat, ok/stale)."""
        now = self.clock()
        with self._lock:
            beats = dict(self._beats)
        if not beats:
            return False, ["no loop has started"]
        lines: list[str] = []
        healthy = True
        for name in sorted(beats):
            age = now - beats[name]
            ok = age <= self.stale_after
            healthy = healthy and ok
            lines.append(f"{name}: last cycle activity {age:.1f}s ago ({'ok' if ok else 'stale'})")
        return healthy, lines


# --- HTTP ----------------------------------------------------------------------
class _QuietHandler(WSGIRequestHandler):
    timeout = 30  # a client that stops sending (a webhook body) frees its thread

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: the watch loop's own logs are the output."""


WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]
WEBHOOK_PATH = "/hooks/git"


def make_app(metrics: WatchMetrics, health: HealthState, webhook: WsgiApp | None = None) -> WsgiApp:
    """WSGI app: ``/metrics`` (prometheus-client), ``/healthz``, ``/hooks/git`` (``webhook``;
    404 when there is none), ``/`` (index), else 404."""
    prometheus_app = make_wsgi_app(metrics.registry)
    index = "reconcile watch: /metrics /healthz" + (f" {WEBHOOK_PATH}" if webhook else "")

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            result: Iterable[bytes] = prometheus_app(environ, start_response)
            return result
        if path == "/healthz":
            healthy, lines = health.check()
            body = ("ok\n" if healthy else "stale\n") + "\n".join(lines) + "\n"
            status = "200 OK" if healthy else "503 Service Unavailable"
            return text_response(start_response, status, body)
        if path == WEBHOOK_PATH:
            if webhook is None:
                return text_response(start_response, "404 Not Found", "webhook not configured\n")
            return webhook(environ, start_response)
        if path == "/":
            return text_response(start_response, "200 OK", index + "\n")
        return text_response(start_response, "404 Not Found", "not found\n")

    return app


def text_response(start_response: StartResponse, status: str, body: str) -> Iterator[bytes]:
    """A plain-text answer (also the webhook's)."""
    data = body.encode("utf-8")
    start_response(
        status,
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))],
    )
    yield data


class MetricsServer:
    """The HTTP server in a daemon thread; ``port`` is the bound port (useful with 0)."""

    def __init__(
        self,
        host: str,
        port: int,
        metrics: WatchMetrics,
        health: HealthState,
        webhook: WsgiApp | None = None,
    ) -> None:
        class _Server(ThreadingWSGIServer):
            address_family = _family(host)

        app = make_app(metrics, health, webhook)
        self._httpd = make_server(host, port, app, _Server, handler_class=_QuietHandler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="metrics-http", daemon=True
        )

    @property
    def port(self) -> int:
        port: int = self._httpd.server_port
        return port

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def start_metrics_server(
    metrics: WatchMetrics,
    health: HealthState,
    *,
    host: str = "0.0.0.0",
    port: int = 9464,
    webhook: WsgiApp | None = None,
) -> MetricsServer:
    """Bind and serve; raises OSError when the port is taken."""
    return MetricsServer(host, port, metrics, health, webhook).start()
