"""The operator's /healthz, /readyz and /metrics over real HTTP on a loopback port."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

import pytest

from arcx_operator.observability import Health, JsonFormatter, Metrics, serve


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.fixture
def endpoint() -> tuple[int, Metrics, Health, list[float]]:
    clock = [1000.0]
    metrics, health = Metrics(), Health(stale_after_s=60, clock=lambda: clock[0])
    server = serve("127.0.0.1", 0, metrics, health)
    yield server.server_address[1], metrics, health, clock
    server.shutdown()


def test_readiness_and_liveness(endpoint: tuple[int, Metrics, Health, list[float]]) -> None:
    port, _, health, clock = endpoint
    assert _get(port, "/readyz")[0] == 503
    health.ready.set()
    assert _get(port, "/readyz")[0] == 200
    assert _get(port, "/healthz")[0] == 200
    health.leading.set()
    clock[0] += 61
    assert _get(port, "/healthz") == (503, "reconcile loop stalled\n")
    health.heartbeat()
    assert _get(port, "/healthz")[0] == 200
    assert _get(port, "/nope")[0] == 404


def test_metrics_count_jobs_by_phase(endpoint: tuple[int, Metrics, Health, list[float]]) -> None:
    port, metrics, _, _ = endpoint
    metrics.set_phase("ns/a", "Running")
    metrics.set_phase("ns/b", "Running")
    metrics.set_phase("ns/c", "Failed")
    metrics.set_phase("ns/b", "Succeeded")
    metrics.set_phase("ns/c", None)
    metrics.reconciles.labels(result="ok").inc(3)
    metrics.errors.labels(stage="api").inc()
    code, text = _get(port, "/metrics")
    assert code == 200
    assert 'arcx_operator_jobs{phase="Running"} 1.0' in text
    assert 'arcx_operator_jobs{phase="Succeeded"} 1.0' in text
    assert 'arcx_operator_jobs{phase="Failed"} 0.0' in text
    assert 'arcx_operator_reconciles_total{result="ok"} 3.0' in text
    assert 'arcx_operator_errors_total{stage="api"} 1.0' in text


def test_json_logs_carry_extra_fields() -> None:
    record = logging.LogRecord(
        "arcx_operator", logging.INFO, __file__, 1, "created JobSet", None, None
    )
    record.job = "ns/a"
    out = json.loads(JsonFormatter().format(record))
    assert out["message"] == "created JobSet" and out["job"] == "ns/a" and out["level"] == "INFO"
