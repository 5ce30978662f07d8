"""Health checks against real dependencies: PostgreSQL, Redis, loopback servers."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import textwrap
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry
import structlog
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from amas_otel.config import ConfigError, HealthCheckSpec, load_settings
from amas_otel.health import (
    CacheHealthCheck,
    DatabaseHealthCheck,
    DiskHealthCheck,
    ExternalAPIHealthCheck,
    FileSystemHealthCheck,
    HealthCheck,
    HealthCheckResult,
    HealthCheckService,
    HealthStatus,
    MemoryHealthCheck,
    NetworkHealthCheck,
    ServiceHealthCheck,
    aggregate,
)
from tests.conftest import free_port
from tests.support.health_servers import SilentServer, StatusHTTPServer, TcpListener


class Telemetry:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.logs = structlog.testing.LogCapture()
        self.logger = structlog.wrap_logger(
            structlog.PrintLogger(io.StringIO()), processors=[self.logs], wrapper_class=structlog.stdlib.BoundLogger
        )

    def service(self, **kwargs: Any) -> HealthCheckService:
        kwargs = {"timeout": 2.0, "retries": 0, "interval": 0.0, "version": "9.9.9", **kwargs}
        return HealthCheckService(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, logger=self.logger, **kwargs
        )

    def points(self, metric: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        return [
            point
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == metric
            for point in m.data.data_points
        ]

    def states(self) -> dict[str, dict[str, float]]:
        """``amas.health.check.status`` as {check: {result: value}}."""
        found: dict[str, dict[str, float]] = {}
        for point in self.points("amas.health.check.status"):
            name = point.attributes["amas.health.check.name"]
            found.setdefault(name, {})[point.attributes["amas.health.check.result"]] = point.value
        return found


@pytest.fixture
def tel() -> Telemetry:
    return Telemetry()


def closed_port() -> int:
    """A loopback port nothing listens on (refused at once)."""
    return free_port()


# --- real PostgreSQL ------------------------------------------------------------


async def test_database_sync_and_async_against_postgres(tel: Telemetry, postgres_dsn: str) -> None:
    service = tel.service()
    service.add("pg_sync", DatabaseHealthCheck(lambda: psycopg.connect(postgres_dsn, connect_timeout=2)))

    async def connect_async() -> psycopg.AsyncConnection:
        return await psycopg.AsyncConnection.connect(postgres_dsn, connect_timeout=2)

    service.add("pg_async", DatabaseHealthCheck(connect_async, query="SELECT 41 + 1"))
    report = await service.check_health()
    assert report["status"] == "healthy", report
    assert report["checks"]["pg_sync"]["details"]["row"] == [1]
    assert report["checks"]["pg_async"]["details"]["row"] == [42]
    result = await service.check_dependency("pg_sync")
    assert result.status == "healthy" and result.message == "query succeeded"


async def test_database_wrong_port_is_unhealthy_and_recorded(tel: Telemetry) -> None:
    port = closed_port()
    service = tel.service()
    service.add("pg", DatabaseHealthCheck(lambda: psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/test")))
    result = await service.check_dependency("pg")
    assert result.status is HealthStatus.UNHEALTHY
    assert result.error_type == "OperationalError"
    assert str(port) in result.message
    (span,) = tel.spans.get_finished_spans()
    assert span.name == "health_check pg"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "OperationalError"
    assert span.attributes["amas.health.check.result"] == "unhealthy"
    assert [e.name for e in span.events] == ["exception"]


# --- real Redis -------------------------------------------------------------------


async def test_cache_sync_async_and_factory_against_redis(tel: Telemetry, redis_url: str) -> None:
    service = tel.service()
    sync_client = redis.Redis.from_url(redis_url, socket_timeout=2)
    service.add("redis_sync", CacheHealthCheck(sync_client))
    service.add("redis_async", CacheHealthCheck(aioredis.Redis.from_url(redis_url)))
    service.add("redis_factory", CacheHealthCheck(lambda: redis.Redis.from_url(redis_url, socket_timeout=2)))
    report = await service.check_health()
    assert report["status"] == "healthy", report
    for name in ("redis_sync", "redis_async", "redis_factory"):
        assert report["checks"][name]["details"]["round_trip_seconds"] >= 0
    assert not sync_client.keys("amas-otel:health:*"), "the round-trip key must be deleted"


async def test_cache_wrong_port_and_hung_server(tel: Telemetry) -> None:
    silent = SilentServer()
    try:
        service = tel.service(timeout=0.3)
        no_retry = Retry(NoBackoff(), 0)  # redis-py's own retries would outlast the 0.3 s bound
        service.add("refused", CacheHealthCheck(redis.Redis(host="127.0.0.1", port=closed_port(), retry=no_retry)))
        # No client-side timeout: only the service's bound ends the wait.
        service.add("hung", CacheHealthCheck(redis.Redis(host="127.0.0.1", port=silent.port)))
        started = time.monotonic()
        report = await service.check_health()
        assert time.monotonic() - started < 1 * (0.3 + 1)  # (retries + 1) * (timeout + 1)
        assert report["checks"]["refused"]["error_type"] == "ConnectionError"
        assert report["checks"]["hung"]["error_type"] == "timeout"
        assert report["checks"]["hung"]["message"] == "no answer within 0.3s"
        assert report["status"] == "unhealthy"
    finally:
        silent.close()


# --- external API ----------------------------------------------------------------


async def test_external_api_expected_status_and_safe_url(tel: Telemetry) -> None:
    server = StatusHTTPServer(200)
    try:
        service = tel.service()
        url = f"http://user:pa55word@127.0.0.1:{server.port}/status?api_key=k3y"
        service.add("api", ExternalAPIHealthCheck(url, headers={"X-Api-Key": "hdr-secret"}))
        result = await service.check_dependency("api")
        assert result.status is HealthStatus.HEALTHY
        assert result.details["status_code"] == 200
        assert result.details["url"] == f"http://127.0.0.1:{server.port}/status"
        assert "pa55word" not in repr(result) and "k3y" not in repr(result) and "hdr-secret" not in repr(result)
        assert server.requests[-1]["X-Api-Key"] == "hdr-secret"

        server.status = 503
        result = await service.check_dependency("api")
        assert result.status is HealthStatus.UNHEALTHY
        assert result.message == "HTTP 503, expected 200"

        service.add("api_any", ExternalAPIHealthCheck(server.url, expected_status=[200, 503]))
        assert (await service.check_dependency("api_any")).status is HealthStatus.HEALTHY
    finally:
        server.close()


async def test_external_api_custom_check_judges_the_response(tel: Telemetry) -> None:
    """The guide's ``add_external_api_health_check("payment_api", url, check_payment_api)``: the third argument judges."""
    server = StatusHTTPServer(200)
    try:
        service = tel.service(retries=0)

        def check_payment_api(response: Any) -> dict[str, Any]:
            return {"status": "degraded", "message": "payments slow", "ok": response.json()["ok"]}

        async def check_async(response: Any) -> bool:
            return response.json()["ok"] is not True

        service.add("payment_api", ExternalAPIHealthCheck(server.url, check_payment_api))
        service.add("async_check", ExternalAPIHealthCheck(server.url, check_async))
        payment = await service.check_dependency("payment_api")
        assert (payment.status, payment.message) == (HealthStatus.DEGRADED, "payments slow")
        assert payment.details["ok"] is True and payment.details["status_code"] == 200
        judged = await service.check_dependency("async_check")
        assert (judged.status, judged.message) == (HealthStatus.UNHEALTHY, "check returned False")
        server.status = 503  # an unexpected status is unhealthy before the check is asked
        assert (await service.check_dependency("payment_api")).message == "HTTP 503, expected 200"
        with pytest.raises(TypeError, match="check: expected a function taking the HTTP response"):
            ExternalAPIHealthCheck(server.url, lambda: True)
    finally:
        server.close()


async def test_external_api_hang_times_out_and_keeps_one_thread(tel: Telemetry) -> None:
    silent = SilentServer()
    try:
        service = tel.service(timeout=0.3, retries=2)
        service.add("api", ExternalAPIHealthCheck(f"http://127.0.0.1:{silent.port}/"))
        started = time.monotonic()
        first = await service.check_dependency("api")
        second = await service.check_dependency("api")
        # The documented bound per run: (retries + 1) * (timeout + 1) seconds.
        assert time.monotonic() - started < 2 * 3 * (0.3 + 1)
        assert first.error_type == second.error_type == "timeout"
        assert first.attempts == 3
        # requests' own read timeout (0.3 s) ends each hung call about when the
        # attempt gives up: at most one connection per attempt, never a pile-up.
        assert 1 <= len(silent.accepted) <= 6
        hung = [t for t in threading.enumerate() if t.name == "amas-health-external_api"]
        assert len(hung) <= 1
    finally:
        silent.close()


async def test_external_api_client_timeout_is_reported_as_a_timeout(tel: Telemetry) -> None:
    # requests' read timeout can fire just before the attempt's own wait does;
    # the result must not depend on which of the two noticed first.
    silent = SilentServer()
    try:
        check = ExternalAPIHealthCheck(f"http://127.0.0.1:{silent.port}/")
        with pytest.raises(TimeoutError, match=r"^no answer within 0.2s$"):
            await check.probe(0.2)
        service = tel.service(timeout=5.0, retries=0)

        class ClientTimesOutFirst(ExternalAPIHealthCheck):
            async def probe(self, timeout: float) -> dict:
                return await super().probe(0.2)

        service.add("api", ClientTimesOutFirst(f"http://127.0.0.1:{silent.port}/"))
        result = await service.check_dependency("api")
        assert (result.status, result.error_type, result.message) == (
            HealthStatus.UNHEALTHY, "timeout", "no answer within 0.2s"
        )
    finally:
        silent.close()


async def test_external_api_refused(tel: Telemetry) -> None:
    service = tel.service()
    service.add("api", ExternalAPIHealthCheck(f"http://127.0.0.1:{closed_port()}/"))
    result = await service.check_dependency("api")
    assert result.status is HealthStatus.UNHEALTHY and result.error_type == "ConnectionError"


# --- file system, memory, disk -------------------------------------------------------


async def test_file_system_checks(tel: Telemetry, tmp_path: Path) -> None:
    service = tel.service()
    service.add("ok", FileSystemHealthCheck(tmp_path, writable=True))
    service.add("missing", FileSystemHealthCheck(tmp_path / "nope"))
    service.add("readonly", FileSystemHealthCheck("/proc", writable=True))
    service.add("full", FileSystemHealthCheck(tmp_path, min_free_bytes=1 << 62))
    report = (await service.check_health())["checks"]
    assert report["ok"]["status"] == "healthy" and report["ok"]["details"]["free_bytes"] > 0
    assert not list(tmp_path.iterdir()), "the write probe must clean up"
    assert report["missing"]["status"] == "unhealthy" and "does not exist" in report["missing"]["message"]
    assert report["readonly"]["status"] == "unhealthy" and "not writable" in report["readonly"]["message"]
    assert report["full"]["status"] == "unhealthy" and "below the minimum" in report["full"]["message"]


async def test_memory_and_disk_thresholds(tel: Telemetry) -> None:
    import psutil

    memory = psutil.virtual_memory().percent
    disk = psutil.disk_usage("/").percent
    service = tel.service()
    service.add("mem_ok", MemoryHealthCheck(100.0))
    service.add("mem_high", MemoryHealthCheck(memory / 2))
    service.add("mem_warn", MemoryHealthCheck(100.0, warn_usage_percent=memory / 2), critical=False)
    service.add("disk_ok", DiskHealthCheck("/", 100.0))
    service.add("disk_high", DiskHealthCheck("/", disk / 2), critical=False)
    checks = (await service.check_health())["checks"]
    assert checks["mem_ok"]["status"] == "healthy"
    assert checks["mem_high"]["status"] == "unhealthy" and "above" in checks["mem_high"]["message"]
    assert checks["mem_warn"]["status"] == "degraded"
    assert checks["disk_ok"]["status"] == "healthy" and checks["disk_ok"]["details"]["total_bytes"] > 0
    assert checks["disk_high"]["status"] == "unhealthy"
    with pytest.raises(ValueError, match="max_usage_percent"):
        MemoryHealthCheck(150)
    with pytest.raises(ValueError, match="warn_usage_percent"):
        DiskHealthCheck("/", 50, warn_usage_percent=60)


# --- network: DNS + TCP, a dependency that stops and comes back -------------------------


async def test_network_stop_and_recover_logs_changes_and_gauge(tel: Telemetry) -> None:
    listener = TcpListener()
    service = tel.service()
    service.add("dep", NetworkHealthCheck("localhost", listener.port))
    service.add("dns_only", NetworkHealthCheck("localhost"), critical=False)
    try:
        first = await service.check_health()
        assert first["status"] == "healthy"
        assert "127.0.0.1" in first["checks"]["dep"]["details"]["addresses"]
        healthy = {"healthy": 1, "degraded": 0, "unhealthy": 0}
        assert tel.states() == {"dep": healthy, "dns_only": healthy}
        assert tel.logs.entries == []  # healthy from the start: nothing to say

        listener.stop()
        down = await service.check_health()
        assert down["status"] == "unhealthy"
        assert down["checks"]["dep"]["error_type"] == "ConnectionRefusedError"
        assert tel.states()["dep"] == {"healthy": 0, "degraded": 0, "unhealthy": 1}
        critical = {p.attributes["amas.health.check.name"]: p.attributes["amas.health.check.critical"]
                    for name in ("amas.health.check.status", "amas.health.check.duration") for p in tel.points(name)}
        assert critical == {"dep": True, "dns_only": False}

        listener.start()
        up = await service.check_health()
        assert up["status"] == "healthy"
    finally:
        listener.stop()
    changes = [(e["amas.health.check.previous_result"], e["amas.health.check.result"], e["log_level"]) for e in tel.logs.entries]
    assert changes == [("healthy", "unhealthy", "error"), ("unhealthy", "healthy", "info")]
    assert all(e["amas.health.check.name"] == "dep" for e in tel.logs.entries)
    durations = tel.points("amas.health.check.duration")
    assert sum(p.count for p in durations if p.attributes["amas.health.check.name"] == "dep") == 3


# --- service checks, retries, timeouts, loop never blocked ------------------------------


async def test_service_callables_all_shapes(tel: Telemetry) -> None:
    async def degraded() -> dict[str, Any]:
        return {"status": "degraded", "message": "queue long", "queue": 812}

    service = tel.service()
    service.add("dict", degraded, critical=False)
    service.add("sync_bool", lambda: False, critical=False)
    service.add("sync_none", lambda: None)
    service.add("value", lambda: 3)
    service.add("status", lambda: "warn", critical=False)
    service.add("bad_status", lambda: {"status": "grand"}, critical=False)
    service.add("raises", ServiceHealthCheck(lambda: 1 / 0), critical=False)
    checks = (await service.check_health())["checks"]
    assert checks["dict"]["status"] == "degraded" and checks["dict"]["details"] == {"queue": 812}
    assert checks["dict"]["message"] == "queue long"
    assert checks["sync_bool"]["status"] == "unhealthy"
    assert checks["sync_none"]["status"] == "healthy"
    assert checks["value"]["details"] == {"result": 3}
    assert checks["status"]["status"] == "degraded"
    assert checks["bad_status"]["status"] == "unhealthy" and "'grand'" in checks["bad_status"]["message"]
    assert checks["raises"]["error_type"] == "ZeroDivisionError"
    # Degraded is a state of its own on the gauge (hw.status pattern), not a value between 0 and 1.
    states = tel.states()
    assert states["dict"] == {"healthy": 0, "degraded": 1, "unhealthy": 0}
    assert states["sync_bool"] == {"healthy": 0, "degraded": 0, "unhealthy": 1}
    assert {p.value for p in tel.points("amas.health.check.status")} == {0, 1}
    gauge = next(m for rm in tel.reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics
                 for m in sm.metrics if m.name == "amas.health.check.status")
    assert gauge.unit == "1"
    (degraded_log,) = [e for e in tel.logs.entries if e["amas.health.check.name"] == "dict"]
    assert degraded_log["amas.health.check.message"] == "queue long" and degraded_log["amas.health.check.critical"] is False


async def test_a_status_change_is_logged_in_its_check_span(tel: Telemetry) -> None:
    # The record is written while the check's span is current, so it carries that span's ids
    # (the background refresh has no request around it; before, the ids were all zeros).
    from opentelemetry import trace

    seen: list[Any] = []

    def current_span_ids(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        seen.append(trace.get_current_span().get_span_context())
        return event

    tel.logger = structlog.wrap_logger(
        structlog.PrintLogger(io.StringIO()), processors=[current_span_ids, tel.logs], wrapper_class=structlog.stdlib.BoundLogger
    )
    up = [True]
    service = tel.service()
    service.add("dep", lambda: up[0])
    await service.check_health()
    up[0] = False
    await service.check_health()
    (entry,) = tel.logs.entries
    assert entry["event"] == "health check status changed"
    (ids,) = seen
    check_span = tel.spans.get_finished_spans()[-1]
    assert check_span.name == "health_check dep"
    assert (ids.trace_id, ids.span_id) == (check_span.context.trace_id, check_span.context.span_id)


async def test_retries_then_success_with_span_events(tel: Telemetry) -> None:
    calls = []

    def flaky() -> dict[str, Any]:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("not yet")
        return {"message": "fine"}

    service = tel.service(retries=3)
    service.add("flaky", flaky)
    result = await service.check_dependency("flaky")
    assert result.status is HealthStatus.HEALTHY and result.attempts == 3 and len(calls) == 3
    (span,) = tel.spans.get_finished_spans()
    retries = [e for e in span.events if e.name == "amas.health.check.retry"]
    assert [(e.attributes["amas.health.check.attempt"], e.attributes["error.type"]) for e in retries] == [
        (1, "ConnectionError"),
        (2, "ConnectionError"),
    ]
    assert span.status.status_code is StatusCode.UNSET and span.attributes["amas.health.check.attempts"] == 3


async def test_blocking_and_stubborn_checks_never_hang_probe_or_loop(tel: Telemetry) -> None:
    release = threading.Event()

    async def stubborn() -> dict[str, Any]:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if release.is_set():  # lets the test's event loop close afterwards
                    raise
                # otherwise ignores cancellation

    service = tel.service(timeout=0.2, retries=1)
    service.add("blocking", lambda: release.wait(30))
    service.add("stubborn", stubborn, critical=False)
    service.add("fine", lambda: True)

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    try:
        started = time.monotonic()
        report = await service.check_health()
        elapsed = time.monotonic() - started
        again = await service.check_health()
    finally:
        ticking.cancel()
        release.set()
    assert elapsed < 2 * (0.2 + 1)  # (retries + 1) * (timeout + 1)
    assert report["checks"]["blocking"]["error_type"] == "timeout"
    assert report["checks"]["stubborn"]["error_type"] == "timeout"
    assert report["checks"]["fine"]["status"] == "healthy"
    assert again["checks"]["blocking"]["attempts"] == 2
    # The loop kept running while the blocking check waited in its thread.
    assert ticks >= 10
    # Four attempts over two runs joined the same hung call: one thread, not four.
    blocked = [t for t in threading.enumerate() if t.name == "amas-health-service"]
    assert len(blocked) <= 1


# --- aggregation, caching, single flight, background -------------------------------------


def _result(status: HealthStatus, critical: bool) -> HealthCheckResult:
    return HealthCheckResult("x", status, "", critical, "service", 0.0, 0.0)


def test_aggregate_rule() -> None:
    h, d, u = HealthStatus.HEALTHY, HealthStatus.DEGRADED, HealthStatus.UNHEALTHY
    assert aggregate([]) is h
    assert aggregate([_result(h, True), _result(h, False)]) is h
    assert aggregate([_result(h, True), _result(d, True)]) is d
    assert aggregate([_result(h, True), _result(u, False)]) is d
    assert aggregate([_result(d, False), _result(u, True)]) is u
    assert HealthStatus.parse("PASS") is h


async def test_500_concurrent_probes_share_one_run(tel: Telemetry) -> None:
    runs = []

    async def slow() -> dict[str, Any]:
        runs.append(1)
        await asyncio.sleep(0.05)
        return {}

    service = tel.service(interval=60.0)
    service.add("slow", slow)
    reports = await asyncio.gather(*(service.report() for _ in range(500)))
    assert len(runs) == 1 and service.runs == 1
    assert len({id(r) for r in reports}) == 1
    await asyncio.gather(*(service.check_health() for _ in range(500)))
    assert len(runs) == 1, "within the interval probes read the cache"
    await service.stop()

    on_demand = tel.service(interval=0.0)
    on_demand.add("slow", slow)
    await asyncio.gather(*(on_demand.report() for _ in range(500)))
    assert len(runs) == 2, "interval 0 still runs once for concurrent probes"


async def test_background_refresh_serves_cache(tel: Telemetry) -> None:
    runs = []
    service = tel.service(interval=0.2)
    service.add("count", lambda: runs.append(1))
    first = await service.report()
    deadline = time.monotonic() + 5
    while service.runs < 3 and time.monotonic() < deadline:
        assert (await service.report()).checks["count"].status is HealthStatus.HEALTHY
        await asyncio.sleep(0.02)
    assert service.runs >= 3 and len(runs) == service.runs
    assert (await service.report()) is not first
    await service.stop()


async def test_disabled_service_runs_nothing(tel: Telemetry) -> None:
    runs = []
    service = tel.service(enabled=False)
    service.add("count", lambda: runs.append(1))
    report = await service.check_health()
    assert report["status"] == "healthy" and report["checks"] == {} and runs == []


async def test_remove_and_unknown_dependency(tel: Telemetry) -> None:
    service = tel.service()
    service.add("a", lambda: True)
    assert service.remove("a") and not service.remove("a")
    with pytest.raises(KeyError, match="no health check named 'a'"):
        await service.check_dependency("a")
    with pytest.raises(ValueError, match="name"):
        service.add("", lambda: True)
    with pytest.raises(TypeError, match="check"):
        service.add("x", 42)  # type: ignore[arg-type]


async def test_a_broken_check_class_fails_only_itself(tel: Telemetry) -> None:
    class SyncProbe(HealthCheck):
        def probe(self, timeout: float) -> dict[str, Any]:  # type: ignore[override] - not async
            return {}

    service = tel.service()
    service.add("broken", SyncProbe(), critical=False)
    service.add("fine", lambda: True)
    report = await service.check_health()
    assert report["status"] == "degraded"
    assert report["checks"]["broken"]["error_type"] == "TypeError"
    assert report["checks"]["fine"]["status"] == "healthy"


def test_bad_service_settings_name_the_argument() -> None:
    with pytest.raises(ConfigError) as caught:
        HealthCheckService(timeout=0, retries=-1, interval=0)
    assert "timeout: got 0" in str(caught.value) and "retries: got -1" in str(caught.value)


# --- checks from configuration ---------------------------------------------------------------


def test_checks_from_yaml_build_and_run(tel: Telemetry, tmp_path: Path, postgres_dsn: str, redis_url: str) -> None:
    port = TcpListener()
    try:
        config = tmp_path / "health.yaml"
        config.write_text(
            textwrap.dedent(
                f"""\
                health:
                  timeout: 2
                  checks:
                    - {{name: database, type: database, timeout: 5, dsn: "{postgres_dsn}"}}
                    - {{name: redis, type: cache, timeout: 3, url: "{redis_url}"}}
                    - {{name: tmp, type: file_system, path: "{tmp_path}", writable: true, critical: false}}
                    - {{name: memory, type: memory, max_usage_percent: 99.9}}
                    - {{name: disk, type: disk, path: /, max_usage_percent: 99.9}}
                    - {{name: net, type: network, host: 127.0.0.1, port: {port.port}}}
                    - {{name: fn, type: service, callable: "os:getpid"}}
                """
            )
        )
        settings = load_settings(environ={}, config_files=[config])
        service = tel.service()
        service.add_configured_checks(settings.health.checks)
        report = asyncio.run(service.check_health())
    finally:
        port.stop()
    assert report["status"] == "healthy", report
    assert list(report["checks"]) == ["database", "redis", "tmp", "memory", "disk", "net", "fn"]
    assert report["checks"]["tmp"]["critical"] is False
    assert report["checks"]["fn"]["details"] == {"result": os.getpid()}


def test_unknown_or_bad_options_name_origin_key_and_accepted(tel: Telemetry, tmp_path: Path) -> None:
    """Entries are validated with the rest of the configuration (load_settings), before anything starts."""
    config = tmp_path / "health.yaml"
    config.write_text(
        "health:\n"
        "  checks:\n"
        "    - name: database\n"
        "      type: database\n"
        "      dsn: postgresql://x\n"
        "      querry: SELECT 2\n"
        "    - {name: mem, type: memory, max_usage_percent: lots}\n"
        "    - {name: api, type: external_api}\n"
        "    - {name: fn, type: service, callable: 'no.such.module:f'}\n"
        "    - {name: db2, type: database}\n"
        "    - {name: net, type: network, host: localhost, port: 70000}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}, config_files=[config])
    problems = caught.value.problems
    assert len(problems) == 5, problems
    assert problems[0].startswith(f"{config}:3:health.checks[database].querry: unknown option for type database")
    assert "accepted keys: name, type, timeout, critical, dsn, connect, query" in problems[0]
    assert problems[1].startswith(f"{config}:7:health.checks[mem].max_usage_percent: got 'lots'; expected a number")
    assert problems[2] == f"{config}:8:health.checks[api]: option 'url' is required for type external_api"
    assert problems[3] == f"{config}:10:health.checks[db2]: give exactly one of dsn, connect for type database"
    assert problems[4].startswith(f"{config}:11:health.checks[net]: port: expected a TCP port 1-65535")

    # Imports happen when the checks are built (the service, `amas-otel doctor`), not while loading.
    config.write_text("health:\n  checks:\n    - {name: fn, type: service, callable: 'no.such.module:f'}\n")
    settings = load_settings(environ={}, config_files=[config])
    with pytest.raises(ConfigError, match=r":3:health.checks\[fn\].callable: got 'no.such.module:f'; cannot import it"):
        tel.service().add_configured_checks(settings.health.checks)


def test_spec_constructed_in_code_is_validated(tel: Telemetry) -> None:
    spec = HealthCheckSpec(name="net", type="network", options={"host": "localhost", "port": 70000})
    with pytest.raises(ConfigError, match=r"<arguments>:health.checks\[net\]: port: expected a TCP port 1-65535"):
        tel.service().add_configured_checks([spec])


def test_loopback_listener_is_really_closed_when_stopped() -> None:
    listener = TcpListener()
    listener.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", listener.port), timeout=1).close()


# --- the process-wide service and the guide's functions -------------------------------------


async def test_guide_functions_on_the_process_wide_service(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, postgres_dsn: str, redis_url: str
) -> None:
    import amas_otel.config
    import amas_otel.health.service
    from amas_otel import health

    config = tmp_path / "health.yaml"
    config.write_text(f"health:\n  interval: 0\n  checks:\n    - {{name: redis, type: cache, url: '{redis_url}'}}\n")
    clean_env.setenv("AMAS_CONFIG_FILES", str(config))
    clean_env.setattr(amas_otel.config, "_settings", None)
    clean_env.setattr(amas_otel.health.service, "_default", None)

    service = health.get_health_service()
    assert service is health.get_health_service() and service.names == ("redis",)
    health.add_memory_health_check("memory", max_usage_percent=100.0)
    health.add_disk_health_check("disk", max_usage_percent=100.0)
    health.add_file_system_health_check("tmp", str(tmp_path), writable=True)
    health.add_network_health_check("pg_port", "127.0.0.1", urllib.parse.urlsplit(postgres_dsn).port)
    health.add_database_health_check("db", lambda: psycopg.connect(postgres_dsn))
    health.add_service_health_check("svc", lambda: {"status": "healthy", "uptime": 1})
    health.add_health_check("optional", lambda: False, critical=False)
    report = await health.check_health()
    assert report["status"] == "degraded", report
    assert report["summary"] == {"total": 8, "healthy": 7, "degraded": 0, "unhealthy": 1, "critical_failures": 0}
    db = await health.check_dependency_health("db")
    assert (db.status, db.message) == ("healthy", "query succeeded")
    assert health.remove_health_check("optional")
    assert (await health.check_health())["status"] == "healthy"


def test_bad_yaml_check_fails_the_process_wide_service(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import amas_otel.config
    import amas_otel.health.service
    from amas_otel import health

    config = tmp_path / "health.yaml"
    config.write_text("health:\n  checks:\n    - {name: m, type: memory, max_usage: 5}\n")
    clean_env.setenv("AMAS_CONFIG_FILES", str(config))
    clean_env.setattr(amas_otel.config, "_settings", None)
    clean_env.setattr(amas_otel.health.service, "_default", None)
    with pytest.raises(ConfigError, match=r"health.yaml:3:health.checks\[m\].max_usage: unknown option"):
        health.get_health_service()


def test_configured_process_exports_check_spans_with_nested_http_client_span(otlp_receiver: Any, tmp_path: Path) -> None:
    """In a child process (global providers): the external API check's HTTP GET is a child
    span of its check span, and the gauge and histogram reach the collector."""
    import subprocess

    from tests.conftest import PYTHON, python_env
    from tests.support.otlp import attributes

    server = StatusHTTPServer(200)
    script = textwrap.dedent(
        f"""
        import asyncio
        import amas_otel
        amas_otel.configure(service_name="health-child")
        from amas_otel.health import add_external_api_health_check, check_health
        add_external_api_health_check("api", {server.url!r})
        print(asyncio.run(check_health(fresh=True))["status"])
        amas_otel.shutdown(5)
        """
    )
    try:
        done = subprocess.run(
            [PYTHON, "-c", script],
            env=python_env(
                AMAS_CONFIG_DIR=str(tmp_path),
                OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
                OTEL_METRICS_EXPORTER="otlp",
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.close()
    assert done.returncode == 0 and done.stdout.strip() == "healthy", done.stderr
    assert otlp_receiver.wait_for(lambda: len(otlp_receiver.spans()) >= 2)
    spans = {span.name: span for span in otlp_receiver.spans()}
    check, get = spans["health_check api"], spans["GET"]
    assert get.parent_span_id == check.span_id and get.trace_id == check.trace_id
    assert attributes(check.attributes)["amas.health.check.result"] == "healthy"
    assert otlp_receiver.wait_for(
        lambda: {"amas.health.check.status", "amas.health.check.duration"} <= otlp_receiver.metric_names()
    )
