"""The AMAS guide's own code, run as written on amas-otel's names (examples/guide_integration.py)."""

from __future__ import annotations

import json
import subprocess

from tests.conftest import PYTHON, REPO, free_port, python_env
from tests.support.health_servers import StatusHTTPServer


def test_guide_integration_example_runs_unchanged() -> None:
    payment_api = StatusHTTPServer(200)
    try:
        proc = subprocess.run(
            [PYTHON, "-m", "examples.guide_integration"],
            cwd=REPO,
            env=python_env(
                PAYMENT_API_URL=payment_api.url,
                PROMETHEUS_HOST="127.0.0.1",
                PROMETHEUS_PORT=str(free_port()),
                OTEL_TRACES_EXPORTER="none",
                OTEL_LOGS_EXPORTER="none",
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        payment_api.close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert 'result: {"id": "req-1", "processed": true}' in out
    assert "failed as expected: external API refused the connection" in out
    logs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    processing = [r for r in logs if r.get("event") == "Processing request"]
    assert [(r["correlation_id"], r["request_id"]) for r in processing] == [("corr-1", "req-1"), ("corr-2", "req-2")]
    (failed,) = [r for r in logs if r.get("event") == "Request processing failed"]
    assert failed["level"] == "error" and failed["correlation_id"] == "corr-2"
    assert any(r.get("event_name") == "amas.audit.authentication" for r in logs)

    health = json.loads(out[out.index("health: ") + len("health: "): out.index("Circuit breaker state:")])
    assert health["status"] == "healthy", health
    assert health["checks"]["my_service"]["details"]["uptime"] >= 0
    assert health["checks"]["payment_api"]["details"]["payments_ok"] is True
    assert health["checks"]["custom"]["status"] == "healthy"
    assert "Circuit breaker state: closed" in out
    stats = json.loads(out[out.index("Statistics: ") + len("Statistics: "):].splitlines()[0])
    assert (stats["successes"], stats["failures"]) == (1, 1)
    assert 'http_server_request_duration_seconds{http_request_method="POST",http_response_status_code="200",http_route="/process"} count=1' in out
    assert 'amas_errors_total{amas_component="my_service",error_type="processing_error"} 1' in out
    assert 'amas_breaker_state{amas_breaker_name="external_api",amas_breaker_state="closed"} 1' in out


def test_guide_troubleshooting_prints_plain_states() -> None:
    """The guide's f-strings: ``f"Circuit breaker state: {breaker.state}"``, ``f"{result.status} - …"``."""
    from amas_otel.breaker import CircuitState
    from amas_otel.health import HealthStatus

    assert f"Circuit breaker state: {CircuitState.OPEN}" == "Circuit breaker state: open"
    assert f"Database health: {HealthStatus.DEGRADED}" == "Database health: degraded" and str(HealthStatus.HEALTHY) == "healthy"
    assert CircuitState("half_open") is CircuitState.HALF_OPEN and HealthStatus.UNHEALTHY == "unhealthy"
