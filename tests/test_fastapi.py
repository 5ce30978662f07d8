"""amas_otel.fastapi.instrument_app through a real uvicorn server and real HTTP clients."""

from __future__ import annotations

import os
import subprocess
import sys
import asyncio
import logging
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from fastapi import FastAPI
from opentelemetry import baggage, trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from amas_otel.errors import AuthenticationError, AuthorizationError, ValidationError, validate_password_strength
from amas_otel.fastapi import RequestTelemetryMiddleware, instrument_app
from amas_otel.logging import current_correlation_id
from amas_otel.metrics import MetricsService
from amas_otel.ratelimit import RateLimiter, RateLimitExceeded
from tests.conftest import PYTHON, REPO, free_port, python_env
from tests.support.asgi_server import serve
from tests.test_metrics import promtool_check
from tests.test_ratelimit import _Clock

SECRET = "hunter2-Secret!"


class Signup(BaseModel):
    email: str
    password: str
    age: int


def _build_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict:
        return {"id": item_id}

    @app.post("/signup")
    async def signup(body: Signup) -> dict:
        validate_password_strength(body.password)
        return {"ok": True}

    @app.get("/fail/{kind}")
    async def fail(kind: str) -> dict:
        if kind == "auth":
            raise AuthenticationError("Bearer token required")
        if kind == "forbidden":
            raise AuthorizationError()
        if kind == "validation":
            raise ValidationError("Field 'q' is required", field="q")
        if kind == "limit":
            raise RateLimitExceeded(2.2)
        if kind == "breaker":
            from amas_otel.breaker import CircuitBreakerOpenException

            raise CircuitBreakerOpenException("payments", 7.3)
        raise RuntimeError(f"database password is {SECRET}")

    return app


class _Telemetry:
    def __init__(self, **tracer_provider_options: Any) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider(**tracer_provider_options)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.registry = CollectorRegistry()
        self.meter_provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=self.registry)])
        self.metrics = MetricsService(meter_provider=self.meter_provider, registry=self.registry, system_metrics=False)


@pytest.fixture
def telemetry() -> _Telemetry:
    return _Telemetry()


def test_spans_and_metrics_use_route_templates(telemetry: _Telemetry) -> None:
    app = instrument_app(_build_app(), metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider)
    parent_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    with serve(app) as url, httpx.Client(base_url=url) as client:
        for i in range(3):
            assert client.get(f"/items/{i}").json() == {"id": i}
        traced = client.get("/items/9", headers={"traceparent": f"00-{parent_trace}-00f067aa0ba902b7-01"})
        assert traced.status_code == 200
        assert client.get("/nowhere").status_code == 404
        scrape = client.get("/metrics")
    spans = telemetry.spans.get_finished_spans()
    assert len(spans) == 6  # one per request (the scrape too): no per-message receive/send spans
    first = spans[0]
    assert first.name == "GET /items/{item_id}" and first.kind is SpanKind.SERVER
    assert first.attributes["http.route"] == "/items/{item_id}"
    assert first.attributes["url.path"] == "/items/0"
    assert first.attributes["http.response.status_code"] == 200
    assert first.attributes["client.address"] == "127.0.0.1"
    assert format(spans[3].context.trace_id, "032x") == parent_trace
    assert spans[4].name == "GET" and "http.route" not in spans[4].attributes
    # The scrape has its route like any other request; only the unmatched URL has none.
    assert spans[5].name == "GET /metrics" and spans[5].attributes["http.route"] == "/metrics"

    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
    promtool_check(scrape.text)
    routes = {
        s["labels"].get("http_route"): s["value"]["count"]
        for s in telemetry.metrics.get_metrics("dict")["http_server_request_duration_seconds"]
    }
    assert routes == {"/items/{item_id}": 4.0, "/metrics": 1.0, None: 1.0}  # unmatched: no http.route at all
    assert scrape.text.count("# TYPE http_server_request_duration_seconds histogram") == 1


def _correlation_app() -> FastAPI:
    app = FastAPI()

    @app.get("/who")
    async def who() -> dict:
        span_context = trace.get_current_span().get_span_context()
        return {
            "correlation_id": current_correlation_id(),
            "baggage": baggage.get_baggage("correlation_id"),
            "trace_id": format(span_context.trace_id, "032x"),
        }

    return app


def test_correlation_id_and_incoming_trace_context_share_the_request_context(telemetry: _Telemetry) -> None:
    app = instrument_app(_correlation_app(), metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider)
    parent_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    traced = {"traceparent": f"00-{parent_trace}-00f067aa0ba902b7-01", "baggage": "correlation_id=from-bag,tenant=t1"}
    with serve(app) as url, httpx.Client(base_url=url) as client:
        header_wins = client.get("/who", headers={**traced, "X-Correlation-ID": "req-9"})
        from_baggage = client.get("/who", headers=traced)
        generated = client.get("/who")
    # The header's id beats the baggage entry everywhere: context, outgoing baggage, span, response.
    assert header_wins.json() == {"correlation_id": "req-9", "baggage": "req-9", "trace_id": parent_trace}
    assert header_wins.headers["x-correlation-id"] == "req-9"
    assert from_baggage.json() == {"correlation_id": "from-bag", "baggage": "from-bag", "trace_id": parent_trace}
    new_id = generated.headers["x-correlation-id"]
    assert len(new_id) == 36 and generated.json()["correlation_id"] == new_id
    spans = telemetry.spans.get_finished_spans()
    assert [s.attributes["amas.correlation.id"] for s in spans] == ["req-9", "from-bag", new_id]
    assert [format(s.parent.trace_id, "032x") if s.parent else None for s in spans] == [parent_trace, parent_trace, None]
    assert spans[0].attributes["http.route"] == "/who" and spans[0].attributes["url.path"] == "/who"


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_baggage_flood_is_cut_to_the_w3c_limits_and_parsed_once(
    telemetry: _Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.baggage.propagation import W3CBaggagePropagator

    parses = []
    extract = W3CBaggagePropagator.extract
    monkeypatch.setattr(W3CBaggagePropagator, "extract", lambda self, *a, **k: parses.append(1) or extract(self, *a, **k))
    records = _Records()
    loggers = [logging.getLogger(name) for name in ("opentelemetry.baggage.propagation", "amas_otel.baggage")]
    for logger in loggers:
        logger.addHandler(records)
    # 100 KB, 1,000 list-members; the correlation id comes first, a tenant entry last.
    flood = ",".join(["correlation_id=from-flood", *(f"k{i}={'v' * 95}" for i in range(998)), "tenant=t9"])
    app = instrument_app(_correlation_app(), metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider)
    try:
        # h11 refuses a second 100 KB header on a kept-alive connection unless allowed a bigger buffer.
        with serve(app, h11_max_incomplete_event_size=256 * 1024) as url, httpx.Client(base_url=url) as client:
            answers = [client.get("/who", headers={"baggage": flood}) for _ in range(5)]
    finally:
        for logger in loggers:
            logger.removeHandler(records)
    assert len(flood) > 100_000
    assert [a.json()["correlation_id"] for a in answers] == ["from-flood"] * 5
    assert len(parses) == 5  # once per request
    # No line quotes the header; amas-otel says what it dropped, once for the five requests.
    assert [r.name for r in records.records] == ["amas_otel.baggage"]
    assert all(len(r.getMessage()) < 500 for r in records.records)


def test_cap_baggage_keeps_the_leading_members_that_fit() -> None:
    from amas_otel.baggage_limits import MAX_BAGGAGE_BYTES, MAX_BAGGAGE_MEMBERS, cap_baggage

    fits = "a=1,b=2, c=3"
    assert cap_baggage(fits) is fits
    many = ",".join(f"k{i}=v" for i in range(500))
    assert cap_baggage(many).split(",") == [f"k{i}=v" for i in range(MAX_BAGGAGE_MEMBERS)]
    big = ",".join(f"k{i}={'v' * 95}" for i in range(1000))
    capped = cap_baggage(big)
    assert len(capped) <= MAX_BAGGAGE_BYTES and big.startswith(capped)
    # A list-member over 4096 bytes or not ASCII is skipped (the propagator would drop it with a warning).
    assert cap_baggage(f"a=1,huge={'x' * 5000},b=\u00e9,c=3") == "a=1,c=3"


def test_new_correlation_ids_are_distinct_uuid4s_and_not_shared_with_a_forked_child() -> None:
    import uuid

    from amas_otel._asgi import ID_POOL_SIZE as _ID_POOL_SIZE, clear_id_pool, new_correlation_id as _new_correlation_id

    ids = [_new_correlation_id() for _ in range(3 * _ID_POOL_SIZE)]  # across pool refills
    assert len(set(ids)) == len(ids)
    assert all(str(uuid.UUID(i)) == i and uuid.UUID(i).version == 4 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
    clear_id_pool()
    _new_correlation_id()  # the pool now holds ids drawn before the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        os.write(write, "\n".join(_new_correlation_id() for _ in range(_ID_POOL_SIZE)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split("\n")
    os.waitpid(pid, 0)
    parent = [_new_correlation_id() for _ in range(_ID_POOL_SIZE)]
    assert len(child) == _ID_POOL_SIZE and not set(child) & set(parent)


def test_websocket_connections_run_in_the_correlation_context() -> None:
    seen: dict[str, Any] = {}

    async def websocket_app(scope: Any, receive: Any, send: Any) -> None:
        seen["correlation_id"] = current_correlation_id()

    middleware = RequestTelemetryMiddleware(websocket_app, None, correlation_header="X-Correlation-ID")
    scope = {"type": "websocket", "path": "/ws", "headers": [(b"x-correlation-id", b"ws-1")]}
    asyncio.run(middleware(scope, None, None))
    assert seen == {"correlation_id": "ws-1"}


class _RecordingSampler(Sampler):
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: Any = None, attributes: Any = None,
                      links: Any = None, trace_state: Any = None) -> SamplingResult:
        self.seen.append(dict(attributes or {}))
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "recording"


def test_a_custom_sampler_sees_the_request_attributes_at_span_creation() -> None:
    sampler = _RecordingSampler()
    telemetry = _Telemetry(sampler=sampler)
    app = instrument_app(_build_app(), metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider)
    with serve(app) as url:
        assert httpx.get(url + "/items/7", headers={"User-Agent": "probe/1"}).status_code == 200
    assert {"http.request.method": "GET", "url.path": "/items/7", "url.scheme": "http", "user_agent.original": "probe/1"}.items() <= sampler.seen[0].items()
    span = telemetry.spans.get_finished_spans()[0]
    assert span.attributes["url.path"] == "/items/7" and span.attributes["http.route"] == "/items/{item_id}"


def test_span_limits_apply_to_the_request_attributes() -> None:
    telemetry = _Telemetry(span_limits=SpanLimits(max_span_attribute_length=8, max_span_attributes=4))
    app = instrument_app(_build_app(), metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider)
    with serve(app) as url:
        assert httpx.get(url + "/items/123456789").status_code == 200
    span = telemetry.spans.get_finished_spans()[0]
    assert len(span.attributes) == 4 and span.dropped_attributes > 0
    assert span.attributes["http.route"] == "/items/{"  # truncated to 8 characters, as the SDK does
    assert span.attributes["http.response.status_code"] == 200


@pytest.mark.parametrize(
    ("path", "status", "error", "retry_after"),
    [
        ("/fail/validation", 400, "validation_error", None),
        ("/fail/auth", 401, "authentication_error", None),
        ("/fail/forbidden", 403, "authorization_error", None),
        ("/fail/limit", 429, "rate_limited", "3"),
        ("/fail/breaker", 503, "service_unavailable", "8"),
        ("/fail/boom", 500, "internal_error", None),
    ],
)
def test_error_mapping(telemetry: _Telemetry, path: str, status: int, error: str, retry_after: str | None) -> None:
    app = instrument_app(_build_app(), metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider)
    with serve(app) as url:
        response = requests.get(url + path, headers={"X-Correlation-ID": "req-42"}, timeout=10)
        again = requests.get(url + "/items/1", timeout=10)  # the server is still fine
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error and body["correlation_id"] == "req-42"
    assert response.headers.get("retry-after") == retry_after
    if retry_after:
        assert body["retry_after"] == int(retry_after)
    text = response.text
    assert SECRET not in text and "Traceback" not in text and "payments" not in text
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    if status == 500:
        span = telemetry.spans.get_finished_spans()[0]
        assert span.status.is_ok is False and span.attributes["error.type"] == "RuntimeError"
        assert span.events[0].name == "exception"
    assert again.status_code == 200


def test_request_validation_is_400_without_echoing_input(telemetry: _Telemetry) -> None:
    app = instrument_app(
        _build_app(), metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider, validation_errors="400"
    )
    with serve(app) as url, httpx.Client(base_url=url) as client:
        wrong_type = client.post("/signup", json={"email": "a@b.io", "password": SECRET, "age": "old"})
        weak = client.post("/signup", json={"email": "a@b.io", "password": "weak", "age": 3})
    assert wrong_type.status_code == 400
    assert wrong_type.json()["fields"] == ["body.age"]
    assert SECRET not in wrong_type.text
    assert weak.status_code == 400 and weak.json()["field"] == "password" and "weak" not in weak.json()["message"]
    errors = telemetry.metrics.get_metrics("dict")["amas_errors_total"]
    assert {s["labels"]["error_type"] for s in errors} == {"RequestValidationError", "ValidationError"}


def test_rate_limit_middleware(telemetry: _Telemetry) -> None:
    limiter = RateLimiter(requests_per_minute=6, burst_size=2, meter_provider=telemetry.meter_provider)
    app = instrument_app(
        _build_app(),
        metrics_service=telemetry.metrics,
        tracer_provider=telemetry.tracer_provider,
        rate_limiter=limiter,
        trusted_proxies=["127.0.0.1"],
    )
    with serve(app) as url, httpx.Client(base_url=url) as client:
        ok = [client.get("/items/1", headers={"X-Forwarded-For": "198.51.100.7"}) for _ in range(2)]
        refused = client.get("/items/1", headers={"X-Forwarded-For": "198.51.100.7", "X-Correlation-ID": "c-1"})
        other_client = client.get("/items/1", headers={"X-Forwarded-For": "198.51.100.8"})
        exempt = [client.get("/metrics", headers={"X-Forwarded-For": "198.51.100.7"}) for _ in range(3)]
    assert [r.status_code for r in ok] == [200, 200]
    assert ok[0].headers["ratelimit-limit"] == "2" and ok[0].headers["ratelimit-remaining"] == "1"
    assert ok[1].headers["ratelimit-remaining"] == "0"
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "10"  # 6 per minute: a token every 10 s
    assert refused.json() == {"error": "rate_limited", "message": "Too many requests", "correlation_id": "c-1", "retry_after": 10}
    assert other_client.status_code == 200
    assert [r.status_code for r in exempt] == [200, 200, 200]
    assert "amas_ratelimit_rejections_total" in exempt[-1].text
    assert telemetry.metrics.get_metrics("dict")["amas_ratelimit_rejections_total"][0]["value"] == 1.0


def test_untrusted_forwarded_for_is_ignored(telemetry: _Telemetry) -> None:
    limiter = RateLimiter(requests_per_minute=6, burst_size=1)
    app = instrument_app(_build_app(), metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider, rate_limiter=limiter)
    with serve(app) as url, httpx.Client(base_url=url) as client:
        statuses = [client.get("/items/1", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code for i in range(3)]
    assert statuses == [200, 429, 429]


def test_a_refused_request_is_one_response_with_every_header_and_recorded(telemetry: _Telemetry) -> None:
    # The limit is decided inside the telemetry layer, after the correlation id and the span:
    # the 429 carries the id (header and body) and the limit headers, and is recorded like any response.
    limiter = RateLimiter(requests_per_minute=6, burst_size=1)
    app = instrument_app(_build_app(), metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider, rate_limiter=limiter)
    with serve(app) as url, httpx.Client(base_url=url) as client:
        allowed = client.get("/items/1", headers={"X-Correlation-ID": "ok-1"})
        refused = client.get("/items/1", headers={"X-Correlation-ID": "c-429"})
    assert allowed.status_code == 200
    # After the application's own headers: the limit's, then the correlation id.
    assert [name for name, _ in allowed.headers.raw][-4:] == [
        b"ratelimit-limit", b"ratelimit-remaining", b"ratelimit-reset", b"x-correlation-id"
    ]
    assert (allowed.headers["ratelimit-limit"], allowed.headers["ratelimit-remaining"]) == ("1", "0")
    assert refused.status_code == 429
    assert [(name, value) for name, value in refused.headers.raw][-7:] == [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(refused.content)).encode()),
        (b"retry-after", b"10"),
        (b"ratelimit-limit", b"1"),
        (b"ratelimit-remaining", b"0"),
        (b"ratelimit-reset", b"10"),
        (b"x-correlation-id", b"c-429"),
    ]
    assert refused.json() == {"error": "rate_limited", "message": "Too many requests", "correlation_id": "c-429", "retry_after": 10}
    spans = telemetry.spans.get_finished_spans()
    assert [s.attributes["http.response.status_code"] for s in spans] == [200, 429]
    assert spans[1].name == "GET" and spans[1].attributes["amas.correlation.id"] == "c-429"
    statuses = {
        s["labels"]["http_response_status_code"]: s["value"]["count"]
        for s in telemetry.metrics.get_metrics("dict")["http_server_request_duration_seconds"]
    }
    assert statuses == {"200": 1.0, "429": 1.0}


def _layers(app: Any) -> list[Any]:
    layers, layer = [], app.build_middleware_stack()
    while layer is not None:
        layers.append(layer)
        layer = getattr(layer, "app", None)
    return layers


def test_instrument_app_applies_the_limit_within_its_one_layer(telemetry: _Telemetry) -> None:
    from amas_otel.ratelimit import RateLimitMiddleware

    app = instrument_app(
        _build_app(), metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider, rate_limiter=RateLimiter()
    )
    assert [m.cls for m in app.user_middleware] == [RequestTelemetryMiddleware]
    layers = _layers(app)
    assert not any(isinstance(layer, RateLimitMiddleware) for layer in layers)
    assert sum(isinstance(layer, RequestTelemetryMiddleware) for layer in layers) == 1


def _outside_instrumented_app() -> FastAPI:
    app = _build_app()
    app._is_instrumented_by_opentelemetry = True  # as opentelemetry-instrument leaves it
    return app


@pytest.mark.parametrize(
    ("build", "tracing"),
    [(_build_app, "lean"), (_build_app, "otel"), (_build_app, "off"), (_outside_instrumented_app, "lean")],
    ids=["lean", "otel", "off", "instrumented-from-outside"],
)
def test_every_tracing_mode_still_limits(telemetry: _Telemetry, build: Any, tracing: str) -> None:
    limiter = RateLimiter(requests_per_minute=6, burst_size=1)
    app = instrument_app(
        build(), metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider, tracing=tracing, rate_limiter=limiter
    )
    with serve(app) as url, httpx.Client(base_url=url) as client:
        responses = [client.get("/items/1") for _ in range(2)]
        health = [client.get("/health/live") for _ in range(2)]
    assert [r.status_code for r in responses] == [200, 429]
    assert responses[1].headers["retry-after"] == "10" and "x-correlation-id" in responses[1].headers
    assert responses[0].headers["ratelimit-remaining"] == "0"
    assert [r.status_code for r in health] == [200, 200]
    assert not any(name.startswith("ratelimit") for r in health for name in r.headers)


def test_a_failing_limiter_is_answered_500_with_the_correlation_id(telemetry: _Telemetry) -> None:
    from amas_otel.ratelimit import RedisRateLimiter

    limiter = RedisRateLimiter(f"redis://127.0.0.1:{free_port()}/0", fail_open=False)  # nobody listens
    app = instrument_app(_build_app(), metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider, rate_limiter=limiter)
    with serve(app) as url, httpx.Client(base_url=url) as client:
        failed = client.get("/items/1", headers={"X-Correlation-ID": "c-500"})
    assert failed.status_code == 500 and failed.headers["x-correlation-id"] == "c-500"
    assert failed.json() == {"error": "internal_error", "message": "Internal server error", "correlation_id": "c-500"}
    [span] = telemetry.spans.get_finished_spans()
    assert span.attributes["http.response.status_code"] == 500 and span.events[0].name == "exception"


async def _plain_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})


def test_folded_limit_answers_exactly_as_the_separate_layer() -> None:
    # RequestTelemetryMiddleware(rate_limiter=...) against the same middleware
    # wrapped around RateLimitMiddleware: the same messages for allowed, refused,
    # exempt and forwarded requests, the same counts of each message.
    from amas_otel.ratelimit import RateLimitMiddleware

    def folded(clock: _Clock) -> Any:
        limiter = RateLimiter(requests_per_minute=60, burst_size=2, clock=clock)
        return RequestTelemetryMiddleware(
            _plain_app, None, correlation_header="X-Correlation-ID",
            rate_limiter=limiter, rate_limit_exempt_paths=["/health"], trusted_proxies=["10.0.0.0/8"],
        )

    def layered(clock: _Clock) -> Any:
        limiter = RateLimiter(requests_per_minute=60, burst_size=2, clock=clock)
        inner = RateLimitMiddleware(_plain_app, limiter, exempt_paths=["/health"], trusted_proxies=["10.0.0.0/8"])
        return RequestTelemetryMiddleware(inner, None, correlation_header="X-Correlation-ID")

    def requests_through(middleware: Any, clock: _Clock) -> list[Any]:
        sent: list[Any] = []

        async def send(message: Any) -> None:
            sent.append(message)

        async def run() -> None:
            for i, (path, peer, forwarded, advance) in enumerate(
                [
                    ("/a", "198.51.100.7", None, 0.0),
                    ("/a", "198.51.100.7", None, 0.0),
                    ("/a", "198.51.100.7", None, 0.0),  # refused
                    ("/health/live", "198.51.100.7", None, 0.0),  # exempt
                    ("/a", "10.0.0.1", b"203.0.113.5", 0.0),  # another client behind a trusted proxy
                    ("/a", "198.51.100.7", None, 1.0),  # a token back
                ]
            ):
                clock.now += advance
                headers = [(b"x-correlation-id", b"c-%d" % i)] + ([(b"x-forwarded-for", forwarded)] if forwarded else [])
                scope = {"type": "http", "method": "GET", "path": path, "client": (peer, 5555), "headers": headers}
                await middleware(scope, None, send)
            await middleware({"type": "websocket", "path": "/a", "client": ("198.51.100.7", 1), "headers": []}, None, send)

        asyncio.run(run())
        return sent

    clock_a, clock_b = _Clock(), _Clock()
    got = requests_through(folded(clock_a), clock_a)
    assert got == requests_through(layered(clock_b), clock_b)
    assert [m["status"] for m in got if m["type"] == "http.response.start"] == [200, 200, 429, 200, 200, 200]
    assert got[0]["headers"] == [
        (b"content-type", b"text/plain"),
        (b"ratelimit-limit", b"2"),
        (b"ratelimit-remaining", b"1"),
        (b"ratelimit-reset", b"1"),
        (b"x-correlation-id", b"c-0"),
    ]
    assert got[6]["headers"][-1] == (b"x-correlation-id", b"c-3") and not any(
        name.startswith(b"ratelimit") for name, _ in got[6]["headers"]
    )


# One response-start dict sent on every response, its header names in the application's own case.
_SHARED_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"X-Correlation-ID", b"from-app"), (b"Content-Type", b"text/plain"), (b"x-correlation-id", b"again")],
}


async def _app_sending_its_own_correlation_header(scope: Any, receive: Any, send: Any) -> None:
    await send(_SHARED_START)
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.parametrize("layer", ["request middleware", "separate layers"])
def test_the_correlation_header_replaces_the_applications_in_any_case_and_the_message_is_left_alone(layer: str) -> None:
    from amas_otel.logging import CorrelationMiddleware
    from amas_otel.ratelimit import RateLimitMiddleware

    limiter = RateLimiter(requests_per_minute=60, burst_size=5, clock=_Clock())
    if layer == "request middleware":
        middleware: Any = RequestTelemetryMiddleware(
            _app_sending_its_own_correlation_header, None, correlation_header="X-Correlation-ID", rate_limiter=limiter
        )
    else:
        middleware = CorrelationMiddleware(RateLimitMiddleware(_app_sending_its_own_correlation_header, limiter))
    original = [*_SHARED_START["headers"]]
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def run() -> None:
        for i in range(2):
            scope = {"type": "http", "method": "GET", "path": "/a", "client": ("198.51.100.7", 5555),
                     "headers": [(b"x-correlation-id", b"c-%d" % i)]}
            await middleware(scope, None, send)

    asyncio.run(run())
    starts = [m for m in sent if m["type"] == "http.response.start"]
    # The application's headers without its correlation ids, then RateLimit-*, then the request's id: once.
    assert [m["headers"] for m in starts] == [
        [
            (b"Content-Type", b"text/plain"),
            (b"ratelimit-limit", b"5"),
            (b"ratelimit-remaining", b"%d" % remaining),
            (b"ratelimit-reset", b"%d" % (5 - remaining)),
            (b"x-correlation-id", b"c-%d" % i),
        ]
        for i, remaining in enumerate([4, 3])
    ]
    # Headers went into a copy: the application's dict (sent again next time) is as it was.
    assert _SHARED_START["headers"] == original and all(m is not _SHARED_START for m in starts)


def test_otel_instrumentor_mode_is_lean_and_records_once(telemetry: _Telemetry) -> None:
    app = instrument_app(
        _build_app(), metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider, tracing="otel"
    )
    with serve(app) as url, httpx.Client(base_url=url) as client:
        assert client.get("/items/5").status_code == 200
        scrape = client.get("/metrics").text
    names = [s.name for s in telemetry.spans.get_finished_spans()]
    assert names[0] == "GET /items/{item_id}" and not any("http send" in n or "http receive" in n for n in names)
    assert scrape.count("# TYPE http_server_request_duration_seconds histogram") == 1


def test_instrument_twice_and_bad_modes_are_refused(telemetry: _Telemetry) -> None:
    app = instrument_app(_build_app(), metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider)
    with pytest.raises(RuntimeError, match="already called"):
        instrument_app(app, metrics_service=telemetry.metrics)
    with pytest.raises(ValueError, match="tracing must be one of lean, otel, off, got 'fancy'"):
        instrument_app(_build_app(), metrics_service=telemetry.metrics, tracing="fancy")


# --- end to end in a child process: amas_otel.configure() and the real exporter ---------

_CHILD_APP = textwrap.dedent(
    """
    from fastapi import FastAPI
    import amas_otel
    from amas_otel.fastapi import instrument_app

    app = FastAPI()

    @app.get("/api/orders/{order_id}")
    async def order(order_id: str):
        return {"order_id": order_id}

    if not getattr(app, "_is_instrumented_by_opentelemetry", False):
        amas_otel.configure()
    instrument_app(app)
    """
)


def _run_child(tmp_path: Path, launcher: list[str]) -> tuple[str, str]:
    (tmp_path / "child_app.py").write_text(_CHILD_APP)
    port, prom_port = free_port(), free_port()
    env = python_env(
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]),
        PROMETHEUS_PORT=str(prom_port),
        OTEL_EXPORTER_PROMETHEUS_PORT=str(prom_port),
        OTEL_METRICS_EXPORTER="prometheus",
        OTEL_TRACES_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_SEMCONV_STABILITY_OPT_IN="http",
    )
    cmd = [*launcher, PYTHON, "-m", "uvicorn", "child_app:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(base + "/api/orders/1", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() is not None else "timeout"
            time.sleep(0.1)
        for i in range(5):
            requests.get(f"{base}/api/orders/{i}", timeout=5)
        app_scrape = requests.get(base + "/metrics", timeout=10).text
        exporter_scrape = requests.get(f"http://127.0.0.1:{prom_port}/metrics", timeout=10).text
        return app_scrape, exporter_scrape
    finally:
        proc.terminate()
        proc.wait(30)


def test_configured_process_exposes_one_clean_family(tmp_path: Path) -> None:
    app_scrape, exporter_scrape = _run_child(tmp_path, [])
    for text in (app_scrape, exporter_scrape):
        promtool_check(text)
        assert text.count("# TYPE http_server_request_duration_seconds histogram") == 1
        assert 'http_route="/api/orders/{order_id}"' in text
        assert "/api/orders/3" not in text
        assert "system_memory_usage_bytes" in text


def test_auto_instrumented_process_still_records_once(tmp_path: Path) -> None:
    stock = Path(sys.executable).parent / "opentelemetry-instrument"
    app_scrape, exporter_scrape = _run_child(tmp_path, [str(stock)])
    for text in (app_scrape, exporter_scrape):
        promtool_check(text)
        assert text.count("# TYPE http_server_request_duration_seconds histogram") == 1
        assert 'http_route="/api/orders/{order_id}"' in text


@pytest.fixture
def rate_limit_settings(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    from amas_otel import config

    environ = {
        "RATE_LIMIT_ENABLED": "true",
        "RATE_LIMIT_REQUESTS_PER_MINUTE": "6",
        "RATE_LIMIT_BURST_LIMIT": "1",
        "RATE_LIMIT_REDIS_URL": redis_url,
        "RATE_LIMIT_TRUSTED_PROXIES": "127.0.0.1",
    }
    monkeypatch.setattr(config, "_settings", config.load_settings(environ=environ, config_files=[]))


def test_rate_limiting_from_settings_shares_redis(telemetry: _Telemetry, rate_limit_settings: None) -> None:
    import uuid

    client_address = f"2001:db8::{uuid.uuid4().hex[:4]}"  # fresh per run: buckets outlive a test in Redis
    headers = {"X-Forwarded-For": client_address}
    first = instrument_app(_build_app(), metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider)
    second = instrument_app(_build_app(), metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider)
    with serve(first) as url_a, serve(second) as url_b:
        allowed = httpx.get(f"{url_a}/items/1", headers=headers)
        # Another replica, same client: the Redis bucket is already empty.
        refused = httpx.get(f"{url_b}/items/1", headers=headers)
    assert allowed.status_code == 200
    assert refused.status_code == 429 and refused.headers["retry-after"] == "10"
