"""Health endpoints through a real uvicorn server on loopback and real HTTP requests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from amas_otel.config import ConfigError
from amas_otel.health import HEALTH_JSON, HealthCheckService, NetworkHealthCheck, health_router
from tests.conftest import free_port
from tests.support.asgi_server import serve
from tests.support.health_servers import TcpListener


def make_service(**kwargs: Any) -> HealthCheckService:
    kwargs = {"timeout": 1.0, "retries": 0, "interval": 0.0, "version": "1.2.3", **kwargs}
    return HealthCheckService(tracer_provider=TracerProvider(), meter_provider=MeterProvider(), **kwargs)


async def wait_for_status(client: httpx.AsyncClient, path: str, code: int, seconds: float = 5.0) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        response = await client.get(path)
        if response.status_code == code or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.05)


async def test_liveness_stays_200_while_readiness_goes_503_and_back() -> None:
    dependency = TcpListener()
    service = make_service(interval=0.2)
    service.add("db", NetworkHealthCheck("127.0.0.1", dependency.port))
    service.add("optional", NetworkHealthCheck("127.0.0.1", free_port()), critical=False)
    app = FastAPI()
    app.include_router(health_router(service))
    try:
        with serve(app) as base:
            async with httpx.AsyncClient(base_url=base, timeout=5) as client:
                ready = await client.get("/health/ready")
                assert ready.status_code == 200, ready.text
                assert ready.json()["checks"] == {"db": "healthy"}  # critical checks only
                summary = await client.get("/health")
                assert summary.status_code == 200
                assert summary.json()["status"] == "degraded"  # a non-critical check is down
                assert summary.json()["version"] == "1.2.3" and summary.json()["uptime_seconds"] >= 0

                dependency.stop()
                ready = await wait_for_status(client, "/health/ready", 503)
                assert ready.status_code == 503 and ready.json() == {
                    **ready.json(),
                    "status": "unhealthy",
                    "checks": {"db": "unhealthy"},
                }
                live = await client.get("/health/live")
                assert live.status_code == 200 and live.json() == {"status": "healthy"}
                assert (await client.get("/health")).status_code == 503

                dependency.start()
                ready = await wait_for_status(client, "/health/ready", 200)
                assert ready.status_code == 200
                assert (await client.get("/health/live")).status_code == 200
    finally:
        dependency.stop()


async def test_500_concurrent_probe_requests_cause_one_check_run() -> None:
    runs: list[float] = []

    async def counted() -> dict[str, Any]:
        runs.append(time.monotonic())
        await asyncio.sleep(0.05)
        return {"status": "healthy"}

    interval = 30.0
    service = make_service(interval=interval)
    service.add("counted", counted)
    app = FastAPI()
    app.include_router(health_router(service, details="on"))
    paths = ["/health", "/health/ready", "/health/detailed"]
    # The second storm reuses connections that sat idle through the first; uvicorn's
    # 5 s keep-alive default would close them mid-reuse on a slow machine (ReadError).
    with serve(app, backlog=2048, timeout_keep_alive=60) as base:
        limits = httpx.Limits(max_connections=500, max_keepalive_connections=500)
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
            started = time.monotonic()
            responses = await asyncio.gather(*(client.get(paths[i % 3]) for i in range(500)))
            elapsed = time.monotonic() - started
            assert [r.status_code for r in responses] == [200] * 500
            # A second storm inside the same interval reads the cache too.
            again = await asyncio.gather(*(client.get("/health/ready") for _ in range(50)))
            assert all(r.status_code == 200 for r in again)
    assert elapsed < interval
    assert len(runs) == 1, f"{len(runs)} check runs for 550 probes within one {interval}s interval"


async def test_health_json_content_negotiation_and_detail_guard() -> None:
    leaked = "postgresql://app:Sup3rS3cret@db.internal:5432/prod"

    def failing() -> None:
        raise ConnectionError(f"could not connect to {leaked}")

    service = make_service()
    service.add("db", failing)
    service.add("queue", lambda: {"status": "degraded", "depth": 812}, critical=False)
    service.add("cache", lambda: True)
    app = FastAPI()
    app.include_router(health_router(service, details_token="t0ken"))
    app.include_router(health_router(service, details="on", prefix="/open"))
    app.include_router(health_router(service, details="off", prefix="/closed"))
    app.include_router(health_router(service, prefix="/notoken"))

    with serve(app) as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            ietf = await client.get("/health", headers={"Accept": HEALTH_JSON})
            assert ietf.status_code == 503
            assert ietf.headers["content-type"] == HEALTH_JSON
            body = ietf.json()
            assert body["status"] == "fail" and body["version"] == "1.2.3"
            assert {name: entries[0]["status"] for name, entries in body["checks"].items()} == {
                "db": "fail",
                "queue": "warn",
                "cache": "pass",
            }
            assert body["checks"]["queue"][0]["componentType"] == "service"
            assert (await client.get("/health/live", headers={"Accept": HEALTH_JSON})).json() == {"status": "pass"}
            plain = await client.get("/health")
            assert plain.headers["content-type"] == "application/json"
            assert plain.json()["checks"] == {"db": "unhealthy", "queue": "degraded", "cache": "healthy"}

            assert (await client.get("/health/detailed")).status_code == 401
            assert (await client.get("/health/detailed", headers={"X-Health-Token": "wrong"})).status_code == 401
            detailed = await client.get("/health/detailed", headers={"Authorization": "Bearer t0ken"})
            assert detailed.status_code == 503
            checks = detailed.json()["checks"]
            assert checks["db"]["error_type"] == "ConnectionError"
            # Redacted, not withheld: the secret goes, the rest of the message stays.
            assert "could not connect to postgresql://" in checks["db"]["message"]
            assert "db.internal" in checks["db"]["message"]
            assert checks["queue"]["status"] == "degraded"
            detailed_ietf = await client.get("/health/detailed", headers={"X-Health-Token": "t0ken", "Accept": HEALTH_JSON})
            assert detailed_ietf.json()["checks"]["db"][0]["observedUnit"] == "ms"

            open_detail = await client.get("/open/detailed")
            assert open_detail.status_code == 503
            assert (await client.get("/closed/detailed")).status_code == 404
            assert (await client.get("/closed/ready")).status_code == 503
            no_token = await client.get("/notoken/detailed")
            assert no_token.status_code == 403 and "details_token" in no_token.json()["error"]

            for response in (plain, ietf, detailed, detailed_ietf, open_detail):
                assert "Sup3rS3cret" not in response.text, response.text


def test_router_arguments_are_validated() -> None:
    with pytest.raises(ConfigError) as caught:
        health_router(make_service(), details="maybe", prefix="health/")
    text = str(caught.value)
    assert "details: got 'maybe'; expected one of token, on, off" in text
    assert "prefix: got 'health/'" in text
