"""The metrics/health HTTP server, read with a real HTTP client (urllib) on 127.0.0.1."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.watch.metrics import HealthState, MetricsServer, WatchMetrics, start_metrics_server


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def served(clock: ManualClock) -> Iterator[tuple[WatchMetrics, HealthState, MetricsServer]]:
    metrics = WatchMetrics()
    health = HealthState(stale_after=30, clock=clock)
    server = start_metrics_server(metrics, health, host="127.0.0.1", port=0)
    try:
        yield metrics, health, server
    finally:
        server.close()


def get(server: MetricsServer, path: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{server.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_over_http(
    served: tuple[WatchMetrics, HealthState, MetricsServer],
) -> None:
    metrics, _, server = served
    metrics.set_state("lon", "drifted")
    metrics.set_flags("lon", paused=True, spec_valid=False, in_window=True)
    metrics.record_cycle(
        "lon", outcome="ok", pending=3, applied=2, failed=1, success_time=1_700_000_000.0
    )
    metrics.record_cycle("lon", outcome="ok", pending=1, applied=1, failed=0, success_time=None)
    metrics.record_observation("lon", 0.42, {"cms1": True, "cms2": False})
    metrics.set_certificate_days("lon", {"certs/ca.pem": 364.5, "certs/client.pem": -2.0})

    status, body = get(server, "/metrics")
    assert status == 200
    got = samples(body)
    lon = (("cluster", "lon"),)
    assert got[("cms_reconciler_cluster_state", (("cluster", "lon"), ("state", "drifted")))] == 1
    assert got[("cms_reconciler_cluster_state", (("cluster", "lon"), ("state", "converged")))] == 0
    assert got[("cms_reconciler_cluster_paused", lon)] == 1
    assert got[("cms_reconciler_spec_valid", lon)] == 0
    assert got[("cms_reconciler_in_maintenance_window", lon)] == 1
    assert got[("cms_reconciler_steps_pending", lon)] == 1
    assert got[("cms_reconciler_steps_applied_total", lon)] == 3
    assert got[("cms_reconciler_steps_failed_total", lon)] == 1
    assert got[("cms_reconciler_cycles_total", (("cluster", "lon"), ("outcome", "ok")))] == 2
    assert got[("cms_reconciler_last_successful_cycle_timestamp_seconds", lon)] == 1_700_000_000
    assert got[("cms_reconciler_observe_duration_seconds_count", lon)] == 1
    assert got[("cms_reconciler_observe_duration_seconds_sum", lon)] == pytest.approx(0.42)
    assert got[("cms_reconciler_node_reachable", (("cluster", "lon"), ("node", "cms1")))] == 1
    assert got[("cms_reconciler_node_reachable", (("cluster", "lon"), ("node", "cms2")))] == 0
    key = ("cms_reconciler_certificate_expiry_days", (("cluster", "lon"), ("file", "certs/ca.pem")))
    assert got[key] == 364.5


def test_nodes_and_files_no_longer_in_the_spec_disappear(
    served: tuple[WatchMetrics, HealthState, MetricsServer],
) -> None:
    metrics, _, server = served
    metrics.record_observation("lon", 0.1, {"cms1": True, "cms2": True})
    metrics.record_observation("lon", 0.1, {"cms1": True})
    metrics.set_certificate_days("lon", {"a.pem": 10.0, "b.pem": 20.0})
    metrics.set_certificate_days("lon", {"b.pem": 19.0})
    got = samples(get(server, "/metrics")[1])
    nodes = {dict(k[1])["node"] for k in got if k[0] == "cms_reconciler_node_reachable"}
    files = {dict(k[1])["file"] for k in got if k[0] == "cms_reconciler_certificate_expiry_days"}
    assert nodes == {"cms1"}
    assert files == {"b.pem"}


def test_forget_cluster_removes_its_series_only(
    served: tuple[WatchMetrics, HealthState, MetricsServer],
) -> None:
    metrics, _, server = served
    for cluster in ("lon", "par"):
        metrics.set_state(cluster, "converged")
        metrics.record_cycle(cluster, outcome="ok", pending=0, applied=1, failed=0, success_time=1)
        metrics.record_observation(cluster, 0.1, {"n1": True})
    metrics.forget_cluster("lon")
    got = samples(get(server, "/metrics")[1])
    clusters = {dict(labels).get("cluster") for _, labels in got}
    assert "lon" not in clusters
    assert "par" in clusters


def test_healthz_reflects_recent_cycles(
    served: tuple[WatchMetrics, HealthState, MetricsServer], clock: ManualClock
) -> None:
    _, health, server = served
    status, body = get(server, "/healthz")
    assert status == 503
    assert "no loop has started" in body

    health.beat("supervisor")
    health.beat("cluster lon")
    status, body = get(server, "/healthz")
    assert status == 200
    assert body.startswith("ok")

    clock.now += 20
    health.beat("supervisor")
    clock.now += 15  # "cluster lon" is now 35 s old, the limit is 30
    status, body = get(server, "/healthz")
    assert status == 503
    assert "cluster lon: last cycle activity 35.0s ago (stale)" in body

    health.forget("cluster lon")  # its spec file was removed
    assert get(server, "/healthz")[0] == 200


def test_unknown_path_is_404_and_index_lists_endpoints(
    served: tuple[WatchMetrics, HealthState, MetricsServer],
) -> None:
    _, _, server = served
    assert get(server, "/nope")[0] == 404
    status, body = get(server, "/")
    assert status == 200
    assert "/metrics" in body and "/healthz" in body


def test_port_in_use_is_an_error(
    served: tuple[WatchMetrics, HealthState, MetricsServer], clock: ManualClock
) -> None:
    _, _, server = served
    with pytest.raises(OSError):
        start_metrics_server(
            WatchMetrics(),
            HealthState(stale_after=1, clock=clock),
            host="127.0.0.1",
            port=server.port,
        )
