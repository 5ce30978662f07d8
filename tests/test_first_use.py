"""Safe before configure(): every entry point a user can reach first configures amas-otel on its first use.

Each test runs a fresh interpreter that never calls ``amas_otel.configure()`` and
asserts on what it really wrote: redacted log lines, audit records, the
Prometheus scrape, exported spans.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYTHON, free_port, python_env

SECRETS = ("hunter2", "sk-live-123")


def run_child(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with the embedded defaults on free loopback ports."""
    settings = {
        "PROMETHEUS_HOST": "127.0.0.1",
        "PROMETHEUS_PORT": str(free_port()),
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        **env,
    }
    proc = subprocess.run(
        [PYTHON, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=python_env(**settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_get_logger_redacts_before_configure(tmp_path: Path) -> None:
    proc = run_child(
        """
        from amas_otel.logging import get_logger
        get_logger("svc").info("login", password="hunter2", api_key="sk-live-123", user="ann")
        """,
        tmp_path,
    )
    (line,) = [r for r in json_lines(proc.stdout) if r.get("event") == "login"]
    assert line["password"].startswith("[REDACTED") and line["api_key"].startswith("[REDACTED")
    assert line["user"] == "ann" and line["logger"] == "svc"
    assert not any(secret in proc.stdout + proc.stderr for secret in SECRETS)


def test_security_logger_writes_audit_records_before_configure(tmp_path: Path) -> None:
    proc = run_child(
        """
        from amas_otel.logging import security_logger
        security_logger.log_authentication("user123", success=False, ip_address="192.168.1.1", password="hunter2")
        security_logger.log_authorization("user123", "admin_panel", "read", granted=True)
        """,
        tmp_path,
    )
    records = {r.get("event_name"): r for r in json_lines(proc.stdout)}
    auth = records["amas.audit.authentication"]
    assert auth["amas.audit.user"] == "user123" and auth["amas.audit.outcome"] == "failure"
    assert auth["password"].startswith("[REDACTED")
    assert records["amas.audit.authorization"]["amas.audit.outcome"] == "granted"
    assert "hunter2" not in proc.stdout


def test_get_metrics_service_configures_the_embedded_endpoint(tmp_path: Path) -> None:
    port = free_port()
    proc = run_child(
        f"""
        import urllib.request
        from amas_otel.metrics import get_metrics_service
        from amas_otel.sdk import is_configured
        get_metrics_service().record_http_request("GET", "/api/users/{{user_id}}", 200, 0.05)
        print("configured", is_configured())
        print(urllib.request.urlopen("http://127.0.0.1:{port}/metrics", timeout=5).read().decode())
        """,
        tmp_path,
        PROMETHEUS_PORT=str(port),
    )
    assert "configured True" in proc.stdout
    assert 'http_server_request_duration_seconds_count{http_request_method="GET"' in proc.stdout
    assert 'http_route="/api/users/{user_id}"' in proc.stdout


def test_circuit_breaker_service_reports_states_before_configure(tmp_path: Path) -> None:
    proc = run_child(
        """
        from amas_otel.breaker import get_circuit_breaker_service
        from amas_otel.metrics import get_metrics_service
        breaker = get_circuit_breaker_service().create_breaker("external_api")
        breaker.call(lambda: "ok")
        print(get_metrics_service().get_metrics("prometheus"))
        """,
        tmp_path,
    )
    assert 'amas_breaker_state{amas_breaker_name="external_api",amas_breaker_state="closed"' in proc.stdout
    assert 'amas_breaker_calls_total{amas_breaker_name="external_api",amas_breaker_outcome="success"' in proc.stdout


def test_health_service_reports_and_logs_before_configure(tmp_path: Path) -> None:
    proc = run_child(
        """
        import asyncio
        from amas_otel.health import add_health_check, check_health
        from amas_otel.metrics import get_metrics_service
        add_health_check("queue", lambda: {"status": "unhealthy", "message": "token=sk-live-123 rejected"})
        print("status", asyncio.run(check_health(fresh=True))["status"])
        print(get_metrics_service().get_metrics("prometheus"))
        """,
        tmp_path,
    )
    assert "status unhealthy" in proc.stdout
    assert (
        'amas_health_check_status{amas_health_check_critical="true",amas_health_check_name="queue",'
        'amas_health_check_result="unhealthy"' in proc.stdout
    )
    (changed,) = [r for r in json_lines(proc.stdout) if r.get("event") == "health check status changed"]
    assert changed["amas.health.check.result"] == "unhealthy" and changed["amas.health.check.critical"] is True
    assert "rejected" in changed["amas.health.check.message"] and "sk-live-123" not in proc.stdout


def test_instrument_app_alone_serves_the_route_histogram(tmp_path: Path) -> None:
    proc = run_child(
        """
        from fastapi import FastAPI
        from fastapi.testclient import TestClient
        from amas_otel.fastapi import instrument_app

        app = FastAPI()

        @app.get("/items/{item_id}")
        def item(item_id: int) -> dict:
            return {"id": item_id}

        instrument_app(app)
        with TestClient(app) as client:
            client.get("/items/1")
            client.get("/items/2")
            print(client.get("/metrics").text)
        """,
        tmp_path,
    )
    (count,) = [line for line in proc.stdout.splitlines() if line.startswith("http_server_request_duration_seconds_count")]
    assert 'http_route="/items/{item_id}"' in count and count.endswith(" 2.0")


def test_traced_exports_redacted_spans_before_configure(tmp_path: Path) -> None:
    proc = run_child(
        """
        from amas_otel import traced

        @traced(attributes={"password": "hunter2", "order": "o-1"})
        def charge() -> str:
            return "charged"

        print(charge())
        """,
        tmp_path,
        OTEL_TRACES_EXPORTER="console",
    )
    assert "charged" in proc.stdout
    assert '"name": "charge"' in proc.stdout and '"order": "o-1"' in proc.stdout
    assert "hunter2" not in proc.stdout and "[REDACTED:password]" in proc.stdout


def test_first_use_is_idempotent_thread_safe_and_matches_configure(tmp_path: Path) -> None:
    proc = run_child(
        """
        import threading
        import amas_otel
        from amas_otel.logging import get_logger

        barrier = threading.Barrier(16)

        def log(n: int) -> None:
            barrier.wait()
            get_logger("svc").info("login", n=n, password="hunter2")

        threads = [threading.Thread(target=log, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print("same settings:", amas_otel.configure() == amas_otel.get_settings())
        try:
            amas_otel.configure(service_name="other")
        except RuntimeError as exc:
            print("refused:", exc)
        """,
        tmp_path,
        LOG_LEVEL="DEBUG",
    )
    records = json_lines(proc.stdout)
    logins = [r for r in records if r.get("event") == "login"]
    assert sorted(r["n"] for r in logins) == list(range(16))
    assert all(r["password"] == "[REDACTED:password]" for r in logins)
    configured = [r for r in records if str(r.get("event", "")).startswith("amas_otel configured")]
    assert len(configured) == 1 and "by the first use of get_logger('svc')" in configured[0]["event"]
    assert "same settings: True" in proc.stdout
    assert "refused: amas_otel is already configured on the first use of get_logger('svc')" in proc.stdout


def test_log_level_debug_shows_amas_otel_debug_lines(tmp_path: Path) -> None:
    code = """
        import asyncio
        from amas_otel.breaker import get_circuit_breaker_service
        from amas_otel.health import add_health_check, check_health
        from amas_otel.logging import get_logger
        get_circuit_breaker_service().create_breaker("external_api")
        add_health_check("queue", lambda: {"status": "healthy", "message": "empty"})
        asyncio.run(check_health(fresh=True))
        get_logger("svc").debug("app debug line")
        """
    debug = json_lines(run_child(code, tmp_path, LOG_LEVEL="DEBUG").stdout)
    own = [r for r in debug if r["level"] == "debug" and r["logger"].startswith("amas_otel")]
    assert any(r["event"].startswith("amas_otel configured") for r in own)
    assert any("circuit breaker 'external_api' created" in r["event"] for r in own)
    assert any(r["event"].startswith("amas_otel: health check 'queue': healthy in") for r in own)
    assert any(r["event"] == "app debug line" for r in debug)
    info = json_lines(run_child(code, tmp_path, LOG_LEVEL="INFO").stdout)
    assert not [r for r in info if r["level"] == "debug"]


def test_bad_settings_do_not_crash_and_still_redact(tmp_path: Path) -> None:
    proc = run_child(
        """
        from amas_otel.logging import get_logger
        get_logger("svc").info("login", password="hunter2", client_ip="10.1.2.3")
        print("still running")
        """,
        tmp_path,
        HEALTH_CHECK_RETRIES="three",
    )
    assert "still running" in proc.stdout
    records = json_lines(proc.stdout)
    (error,) = [r for r in records if r["level"] == "error"]
    assert "HEALTH_CHECK_RETRIES: invalid value 'three'; expected an integer" in error["event"]
    (login,) = [r for r in records if r.get("event") == "login"]
    assert login["password"] == "[REDACTED:password]" and "10.1.2.3" not in proc.stdout


def test_first_use_keeps_the_logging_the_application_configured(tmp_path: Path) -> None:
    """The guide's own set-up: configure_logging(LoggingConfig(...)), then the other services."""
    proc = run_child(
        """
        from amas_otel.logging import LoggingConfig, configure_logging, get_logger
        from amas_otel.metrics import get_metrics_service
        from amas_otel.sdk import is_configured

        configure_logging(LoggingConfig(format="console", security_level="high"))
        get_metrics_service().record_error("validation_error", "user_service")
        get_logger("svc").info("paid", client_ip="10.1.2.3", password="hunter2")
        print("configured", is_configured())
        """,
        tmp_path,
    )
    (paid,) = [line for line in proc.stdout.splitlines() if "paid" in line]
    assert not paid.startswith("{") and "client_ip=[REDACTED:clientip]" in paid and "[REDACTED:password]" in paid
    assert "configured True" in proc.stdout


@pytest.mark.parametrize(
    "construct",
    [
        "from amas_otel.health import HealthCheckService; HealthCheckService()",  # the guide's health_service = HealthCheckService()
        "from amas_otel.breaker import CircuitBreakerService; CircuitBreakerService().create_breaker('external_api')",
        "from amas_otel.metrics import MetricsService; MetricsService()",
    ],
)
def test_services_on_the_global_providers_configure_on_first_use(tmp_path: Path, construct: str) -> None:
    proc = run_child(f"{construct}\nfrom amas_otel.sdk import is_configured\nprint('configured', is_configured())", tmp_path)
    assert "configured True" in proc.stdout
