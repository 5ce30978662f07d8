"""examples/app.py and examples/full_features.py served by uvicorn in child processes."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import requests

from tests.conftest import PYTHON, REPO, free_port, python_env
from tests.test_metrics import promtool_check


@contextmanager
def _uvicorn(target: str, **env: str) -> Iterator[tuple[str, int]]:
    port, prom_port = free_port(), free_port()
    proc = subprocess.Popen(
        [PYTHON, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=REPO,
        env=python_env(
            PROMETHEUS_PORT=str(prom_port),
            OTEL_METRICS_EXPORTER="prometheus",
            OTEL_TRACES_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
            **env,
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(base + "/api/data", timeout=2)
                break
            except requests.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise AssertionError(f"{target} did not start: {proc.communicate()[1][-2000:]}") from None
                time.sleep(0.1)
        yield base, prom_port
    finally:
        proc.terminate()
        proc.wait(10)


def test_example_app_breaker_health_validation_and_metrics() -> None:
    with _uvicorn("examples.app:app", AMAS_EXAMPLE_ADMIN_TOKEN="t0ken", HEALTH_CHECK_INTERVAL="0.2") as (base, _):
        s = requests.Session()
        assert s.get(base + "/api/data").json() == {"message": "Hello World"}
        assert s.get(base + "/api/orders/A-1").json()["order_id"] == "A-1"
        bad_order = s.get(base + "/api/orders/bad%20id")
        assert bad_order.status_code == 400 and bad_order.json()["field"] == "order_id"
        weak = s.post(base + "/api/users", json={"email": "a@b.io", "name": "A", "password": "short"})
        assert weak.status_code == 400 and "short" not in weak.text
        assert s.post(base + "/api/users", json={"email": "a@b.io", "name": "A", "password": "long-enough-1"}).status_code == 201
        assert s.get(base + "/health").status_code == 200
        assert s.get(base + "/api/downstream").json() == {"downstream": "ok"}

        assert s.post(base + "/admin/dependency/down").status_code == 401
        assert s.post(base + "/admin/dependency/down", headers={"Authorization": "Bearer nope"}).status_code == 403
        assert s.post(base + "/admin/dependency/down", headers={"Authorization": "Bearer t0ken"}).status_code == 200
        for _ in range(50):  # checks re-run every HEALTH_CHECK_INTERVAL
            if s.get(base + "/health").status_code == 503:
                break
            time.sleep(0.1)
        assert s.get(base + "/health").status_code == 503
        statuses = [s.get(base + "/api/downstream").status_code for _ in range(4)]
        assert statuses == [502, 502, 502, 503]  # three failures open the breaker
        opened = s.get(base + "/api/downstream")
        assert opened.status_code == 503 and int(opened.headers["retry-after"]) >= 1
        assert opened.json()["error"] == "service_unavailable" and opened.json()["correlation_id"]

        scrape = s.get(base + "/metrics").text
        promtool_check(scrape)
        assert scrape.count("# TYPE http_server_request_duration_seconds histogram") == 1
        assert 'http_route="/api/orders/{order_id}"' in scrape
        assert "amas_business_events_total" in scrape


def test_full_features_example_as_written() -> None:
    with _uvicorn("examples.full_features:app") as (base, prom_port):
        assert requests.get(base + "/api/data", params={"correlation_id": "req-123"}).json() == {"message": "Hello World"}
        health = requests.get(base + "/health").json()
        assert health["status"] in ("healthy", "degraded") and "uptime_seconds" in health
        scrape = requests.get(f"http://127.0.0.1:{prom_port}/metrics", timeout=10).text
        promtool_check(scrape)
        assert scrape.count("# TYPE http_server_request_duration_seconds histogram") == 1
        assert 'http_route="/api/data"' in scrape
