"""Logging pipeline: structlog + stdlib through one chain, OTel correlation, export, span events, metrics, audit."""

from __future__ import annotations

import asyncio
import contextvars
import http.server
import io
import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import FrozenInstanceError
from typing import Any

import httpx
import pytest
import requests
from opentelemetry import baggage
from opentelemetry._logs import LogRecord
from opentelemetry.sdk._logs import (
    LoggerProvider,
    LogRecordDroppedAttributesWarning,
    LogRecordLimits,
    LogRecordProcessor,
    ReadableLogRecord,
)
from opentelemetry.sdk._logs._internal import _LoggerConfig
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, InMemoryLogRecordExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from amas_otel import semconv
from amas_otel.config import ConfigError
from amas_otel.logging import (
    CORRELATION_HEADER,
    CorrelationMiddleware,
    LoggingConfig,
    LoggingContext,
    configure_logging,
    current_correlation_id,
    get_logger,
    security_logger,
)
from amas_otel.redaction import RedactingLogRecordProcessor
from tests.support.asgi_server import serve


def test_json_lines_carry_otel_trace_context_and_context_values(make_pipeline: Any) -> None:
    p = make_pipeline()
    log = get_logger("svc", "billing")
    with LoggingContext(correlation_id="req-123", user_id="user-456"):
        with p.tracer.start_as_current_span("work") as span:
            log.info("User action performed", action="login", status="success")
    line = p.lines()[-1]
    ctx = span.get_span_context()
    assert line["trace_id"] == format(ctx.trace_id, "032x") and len(line["trace_id"]) == 32
    assert line["span_id"] == format(ctx.span_id, "016x") and len(line["span_id"]) == 16
    assert (line["correlation_id"], line["user_id"], line["amas.component"], line["logger"]) == ("req-123", "user-456", "billing", "svc")
    assert (line["event"], line["level"], line["action"]) == ("User action performed", "info", "login")
    assert "timestamp" in line


def test_stdlib_records_use_the_same_processors_and_renderer(make_pipeline: Any) -> None:
    p = make_pipeline()
    with p.tracer.start_as_current_span("s"), LoggingContext(correlation_id="c-1"):
        logging.getLogger("uvicorn.error").warning("listening on %s", "127.0.0.1", extra={"api_key": "k-123456"})
    line = p.lines()[-1]
    assert line["event"] == "listening on 127.0.0.1" and line["logger"] == "uvicorn.error" and line["level"] == "warning"
    assert line["correlation_id"] == "c-1" and len(line["trace_id"]) == 32
    assert line["api_key"] == "[REDACTED:apikey]" and line[semconv.REDACTION_COUNT] == 1
    exported = p.logs.get_finished_logs()[-1].log_record
    assert exported.body == "listening on 127.0.0.1" and exported.attributes["api_key"] == "[REDACTED:apikey]"


def test_a_server_logger_the_server_silenced_stays_silent(make_pipeline: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # uvicorn --no-access-log: no handlers and no propagation on "uvicorn.access".
    access, errors = logging.getLogger("uvicorn.access"), logging.getLogger("uvicorn.error")
    monkeypatch.setattr(access, "handlers", [])
    monkeypatch.setattr(access, "propagate", False)
    monkeypatch.setattr(errors, "handlers", [logging.NullHandler()])
    monkeypatch.setattr(errors, "propagate", False)
    p = make_pipeline()
    before = len(p.lines())
    access.warning('127.0.0.1:5000 - "GET / HTTP/1.1" 200')
    assert len(p.lines()) == before and not access.hasHandlers()
    errors.warning("still routed")  # had its own handler: now goes through the pipeline
    assert p.lines()[-1]["event"] == "still routed" and errors.handlers == []


def test_json_lines_render_every_value_and_lose_no_record(make_pipeline: Any) -> None:
    class Custom:
        def __repr__(self) -> str:
            return "<custom>"

    class WithStructlog:
        def __structlog__(self) -> str:
            return "structlog-view"

    p = make_pipeline()
    log = get_logger("svc")
    log.info("Grüße ✓", obj=Custom(), own=WithStructlog(), counts={1: "one"}, items=("a", 2), flag=True)
    # orjson refuses integers beyond 64 bits: the line still comes out, through the standard json module.
    log.info("big", huge=2**70, neg=-(2**65))
    raw = p.stream.getvalue().splitlines()
    assert "Grüße ✓" in raw[-2]  # non-ASCII kept as is, not \u-escaped
    first, second = p.lines()[-2:]
    assert (first["obj"], first["own"], first["counts"], first["items"], first["flag"]) == (
        "<custom>", "structlog-view", {"1": "one"}, ["a", 2], True
    )
    assert (second["event"], second["huge"], second["neg"]) == ("big", 2**70, -(2**65))


def test_level_filter_and_console_format(make_pipeline: Any) -> None:
    p = make_pipeline(level="warning", format="console")
    log = get_logger("svc")
    log.info("hidden")
    log.warning("shown", n=1)
    text = p.stream.getvalue()
    assert "hidden" not in text and "shown" in text and "n=1" in text


def test_log_level_sets_the_root_logger_unless_the_application_set_it_before(make_pipeline: Any) -> None:
    root = logging.getLogger()
    root.setLevel(logging.WARNING)  # Python's default: LOG_LEVEL replaces it
    make_pipeline(level="info")
    assert root.level == logging.INFO
    make_pipeline(level="error")  # amas-otel's own level: reconfiguring replaces it
    assert root.level == logging.ERROR
    root.setLevel(logging.DEBUG)  # the application's choice
    p = make_pipeline(level="info")
    assert root.level == logging.DEBUG
    (kept,) = [line for line in p.lines() if "root logger's level" in line["event"]]
    assert kept["event"] == (
        "amas_otel: the root logger's level DEBUG, set by the application, is kept; LOG_LEVEL=INFO applies to structlog loggers"
    )
    logging.getLogger("library").debug("library debug line")  # what the application's level admits still goes through
    assert [line["event"] for line in p.lines() if line.get("logger") == "library"] == ["library debug line"]


def test_bad_config_values_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"LoggingConfig.level: 'LOUD'.*DEBUG, INFO"):
        LoggingConfig(level="LOUD")
    with pytest.raises(ConfigError, match="security_level"):
        LoggingConfig(security_level="paranoid")
    with pytest.raises(ConfigError, match="format"):
        LoggingConfig(format="xml")


def test_records_are_exported_through_the_otel_logs_sdk(make_pipeline: Any) -> None:
    p = make_pipeline()
    log = get_logger("payments", "billing")
    with p.tracer.start_as_current_span("charge") as span:
        log.error("charge failed", order=42, tags=["a", "b"], details={"x": 1})
    record = p.logs.get_finished_logs()[-1]
    assert record.instrumentation_scope.name == "payments"
    r = record.log_record
    assert (r.body, r.severity_text, r.severity_number.name) == ("charge failed", "ERROR", "ERROR")
    assert r.trace_id == span.get_span_context().trace_id and r.span_id == span.get_span_context().span_id
    assert r.attributes["order"] == 42 and list(r.attributes["tags"]) == ["a", "b"]
    assert json.loads(r.attributes["details"]) == {"x": 1} and r.attributes["amas.component"] == "billing"


def _export_one(processors: list[Any], limits: Any = None, configurator: Any = None) -> tuple[tuple[Any, ...], Any]:
    """What a BatchLogRecordProcessor's exporter receives for one warning logged inside a span, on a fresh provider."""
    kwargs = {"log_record_limits": limits} if limits else {}
    if configurator:
        kwargs["_logger_configurator"] = configurator
    provider = LoggerProvider(
        resource=Resource.create({"service.name": "payments-svc"}),
        shutdown_on_exit=False,
        multi_log_record_processor=RedactingLogRecordProcessor(),
        **kwargs,
    )
    for processor in processors:
        provider.add_log_record_processor(processor)
    exporter = InMemoryLogRecordExporter()
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    configure_logging(LoggingConfig(stream=io.StringIO()), logger_provider=provider)
    with TracerProvider().get_tracer("t").start_as_current_span("charge") as span:
        get_logger("payments", "billing").warning(
            "charge failed", order=42, status="declined", card="4111 1111 1111 1111", tags=["a", "b"], note=None
        )
    provider.force_flush()
    provider.shutdown()
    return exporter.get_finished_logs(), span.get_span_context()


def _fields(record: Any) -> dict[str, Any]:
    r = record.log_record
    return {
        "body": r.body,
        "severity": (r.severity_text, r.severity_number),
        "attributes": dict(r.attributes),
        "ids": (r.trace_id, r.span_id, r.trace_flags),
        "event_name": r.event_name,
        "context": dict(r.context),
        "resource": dict(record.resource.attributes),
        "scope": record.instrumentation_scope.name,
        "dropped": record.dropped_attributes,
        "json": {k: v for k, v in json.loads(record.to_json()).items() if not k.endswith(("timestamp", "_id"))},
    }


def test_records_queued_straight_for_batch_export_match_what_logger_emit_queues(make_pipeline: Any) -> None:
    # Only redacting and batch processors: the pipeline puts its read-only record in the batch queue itself.
    # One more processor: the record goes through Logger.emit, which that processor sees.
    make_pipeline()
    seen: list[Any] = []

    class Watch(LogRecordProcessor):
        def on_emit(self, log_record: Any) -> None:
            seen.append(log_record.log_record.body)

        def shutdown(self) -> None:
            pass

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    (direct,), span_context = _export_one([])
    (emitted,), emitted_span_context = _export_one([Watch()])
    assert seen == ["charge failed"]
    assert isinstance(direct, ReadableLogRecord) and isinstance(direct.log_record, LogRecord)
    expected = _fields(emitted)
    expected["ids"] = (span_context.trace_id, span_context.span_id, span_context.trace_flags)
    assert emitted.log_record.trace_id == emitted_span_context.trace_id
    assert _fields(direct) == expected
    assert direct.log_record.attributes["card"] == "[REDACTED:card]" and "note" not in direct.log_record.attributes
    assert direct.log_record.context == {}  # the batch queue does not keep the request's context alive
    assert 0 < direct.log_record.timestamp == direct.log_record.observed_timestamp
    with pytest.raises(FrozenInstanceError):
        direct.resource = None  # type: ignore[misc]


def test_record_limits_and_disabled_loggers_apply_to_batch_export(make_pipeline: Any) -> None:
    make_pipeline()
    (truncated,), _ = _export_one([], LogRecordLimits(max_attribute_length=4))
    assert truncated.log_record.attributes["status"] == "decl" and truncated.log_record.attributes["order"] == 42
    with pytest.warns(LogRecordDroppedAttributesWarning):
        (capped,), _ = _export_one([], LogRecordLimits(max_attributes=2))
    assert len(capped.log_record.attributes) == 2 and capped.dropped_attributes == 4
    disabled, _ = _export_one([], configurator=lambda scope: _LoggerConfig(is_enabled=scope.name != "payments"))
    assert disabled == ()


def _batch_provider(exporter: Any, meter_provider: Any = None, **batch: Any) -> tuple[LoggerProvider, Any]:
    """A provider with only redaction and one batch processor (the pipeline's direct route), and its queue."""
    provider = LoggerProvider(
        shutdown_on_exit=False, meter_provider=meter_provider, multi_log_record_processor=RedactingLogRecordProcessor()
    )
    processor = BatchLogRecordProcessor(exporter, **batch)
    provider.add_log_record_processor(processor)
    configure_logging(LoggingConfig(stream=io.StringIO()), logger_provider=provider)
    return provider, processor._batch_processor  # noqa: SLF001


def test_direct_route_wakes_the_exporter_and_leaves_full_shut_down_or_forked_queues_to_the_sdk(make_pipeline: Any) -> None:
    make_pipeline()
    exporter = InMemoryLogRecordExporter()
    # Only a full batch wakes the worker before the (long) schedule delay.
    provider, queue = _batch_provider(exporter, schedule_delay_millis=60_000, max_export_batch_size=2, max_queue_size=3)
    emitted: list[Any] = []  # the records the SDK's own BatchProcessor.emit handled
    sdk_emit = queue.emit
    queue.emit = lambda r: (emitted.append((r.log_record.body, r.log_record.attributes.get("n"))), sdk_emit(r))
    log = get_logger("payments")
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("a") as a:
        log.info("one")
    with tracer.start_as_current_span("b") as b:
        log.info("two")
    deadline = time.monotonic() + 10
    while len(exporter.get_finished_logs()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [(r.log_record.body, r.log_record.trace_id, r.log_record.span_id) for r in exporter.get_finished_logs()] == [
        ("one", a.get_span_context().trace_id, a.get_span_context().span_id),
        ("two", b.get_span_context().trace_id, b.get_span_context().span_id),
    ]
    with queue._export_lock:  # noqa: SLF001 - the worker cannot drain the queue meanwhile
        for n in range(4):
            log.info("queued", n=n)
        assert [r.log_record.attributes["n"] for r in queue._queue] == [3, 2, 1]  # noqa: SLF001
    assert ("queued", 3) in emitted  # the fourth, into a full queue: the SDK's drop warning and metric
    provider.force_flush()
    queue._pid = -1  # noqa: SLF001 - as in a child process the SDK's at-fork hook did not reach
    log.info("after fork")
    assert queue._pid == os.getpid() and [r.log_record.body for r in queue._queue] == ["after fork"]  # noqa: SLF001
    provider.shutdown()
    log.info("after shutdown")
    assert not queue._queue and ("after shutdown", None) in emitted  # noqa: SLF001


def test_direct_route_keeps_the_sdk_log_count(make_pipeline: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    make_pipeline()
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    reader = InMemoryMetricReader()
    exporter = InMemoryLogRecordExporter()
    provider, _ = _batch_provider(exporter, MeterProvider(metric_readers=[reader]))
    for n in range(3):
        get_logger("payments").info("paid", n=n)
    provider.force_flush()
    counts = [
        point.value
        for rm in reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == "otel.sdk.log.created"
        for point in metric.data.data_points
    ]
    assert counts == [3] and len(exporter.get_finished_logs()) == 3


def test_warnings_and_errors_become_span_events(make_pipeline: Any) -> None:
    p = make_pipeline()
    log = get_logger("svc")
    with p.tracer.start_as_current_span("op"):
        log.info("fine")
        log.warning("slow", ms=900)
        try:
            raise RuntimeError("db down")
        except RuntimeError:
            log.exception("failed")
    (span,) = p.spans.get_finished_spans()
    events = [e for e in span.events if e.name == semconv.LOG_EVENT]
    assert [e.attributes[semconv.LOG_MESSAGE] for e in events] == ["slow", "failed"]
    assert events[0].attributes[semconv.LOG_LEVEL] == "warning" and events[0].attributes["ms"] == 900
    assert "RuntimeError: db down" in events[1].attributes["exception.stacktrace"]
    failed = p.logs.get_finished_logs()[-1].log_record
    assert failed.severity_text == "ERROR" and "RuntimeError: db down" in failed.attributes["exception.stacktrace"]
    assert "exception" not in failed.attributes


def test_log_record_counter_by_level_and_component(make_pipeline: Any) -> None:
    p = make_pipeline()
    log = get_logger("svc", "auth")
    for _ in range(3):
        log.info("x")
    log.error("y")
    logging.getLogger("lib").warning("z")
    counts = {
        (pt.attributes[semconv.LOG_LEVEL], pt.attributes.get(semconv.COMPONENT)): pt.value
        for pt in p.metric_points(semconv.LOG_RECORDS)
    }
    assert counts[("info", "auth")] >= 3 and counts[("error", "auth")] >= 1 and counts[("warning", None)] >= 1


def test_context_values_become_span_attributes_and_nest(make_pipeline: Any) -> None:
    p = make_pipeline()
    with LoggingContext(correlation_id="outer", user_id="u1"):
        with LoggingContext(correlation_id="inner", tenant="acme"):
            assert current_correlation_id() == "inner"
            assert baggage.get_baggage("tenant") == "acme" and baggage.get_baggage("user_id") == "u1"
            with p.tracer.start_as_current_span("inner-span"):
                pass
        assert current_correlation_id() == "outer"
        with p.tracer.start_as_current_span("outer-span"):
            pass
    assert current_correlation_id() is None
    spans = {s.name: s.attributes for s in p.spans.get_finished_spans()}
    assert spans["inner-span"][semconv.CORRELATION_ID] == "inner"
    assert spans["inner-span"][semconv.USER_ID] == "u1" and spans["inner-span"]["amas.context.tenant"] == "acme"
    assert spans["outer-span"][semconv.CORRELATION_ID] == "outer" and "amas.context.tenant" not in spans["outer-span"]


async def test_context_survives_await_tasks_and_context_copying_thread_pools(make_pipeline: Any) -> None:
    p = make_pipeline()
    log = get_logger("svc")

    async def child(name: str) -> str | None:
        await asyncio.sleep(0)
        log.info(name)
        return current_correlation_id()

    def in_thread() -> str | None:
        log.info("thread")
        return current_correlation_id()

    async with LoggingContext(correlation_id="async-1"):
        await asyncio.sleep(0)
        assert await child("awaited") == "async-1"
        assert await asyncio.create_task(child("task")) == "async-1"
        assert await asyncio.to_thread(in_thread) == "async-1"
        ctx = contextvars.copy_context()
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(ctx.run, in_thread).result() == "async-1"
    assert current_correlation_id() is None
    assert [line["correlation_id"] for line in p.lines()] == ["async-1"] * 4


def test_baggage_travels_on_outgoing_requests(make_pipeline: Any) -> None:
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    p = make_pipeline()
    seen: dict[str, str] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.update({k.lower(): v for k, v in self.headers.items()})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # Another test (an external-API health check) may have instrumented requests already.
    RequestsInstrumentor().uninstrument()
    RequestsInstrumentor().instrument(tracer_provider=p.tracer_provider)
    try:
        with LoggingContext(correlation_id="req-77", user_id="u-9"):
            requests.get(f"http://127.0.0.1:{server.server_port}/", timeout=5)
    finally:
        RequestsInstrumentor().uninstrument()
        server.shutdown()
        server.server_close()
    entries = dict(item.strip().split("=", 1) for item in seen["baggage"].split(","))
    assert entries["correlation_id"] == "req-77" and entries["user_id"] == "u-9"
    assert "traceparent" in seen


async def _echo_app(scope: Any, receive: Any, send: Any) -> None:
    get_logger("app").info("handling")
    body = json.dumps({"correlation_id": current_correlation_id()}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def _lifespan_ok(scope: Any, receive: Any, send: Any) -> None:
    message = await receive()
    if message["type"] == "lifespan.startup":
        await send({"type": "lifespan.startup.complete"})


class _WithLifespan:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan_ok(scope, receive, send)
            while (await receive())["type"] != "lifespan.shutdown":
                pass
            await send({"type": "lifespan.shutdown.complete"})
            return
        await self.app(scope, receive, send)


def test_correlation_middleware_on_a_real_server(make_pipeline: Any) -> None:
    p = make_pipeline()
    app = _WithLifespan(CorrelationMiddleware(_echo_app))
    with serve(app) as url:
        given = httpx.get(url, headers={CORRELATION_HEADER: "abc-123"})
        from_baggage = httpx.get(url, headers={"baggage": "correlation_id=from-bag,other=1"})
        generated = httpx.get(url)
        hostile = httpx.get(url, headers={CORRELATION_HEADER: "x\" injected=1 " + "y" * 200})
    assert given.headers[CORRELATION_HEADER] == "abc-123" == given.json()["correlation_id"]
    assert from_baggage.headers[CORRELATION_HEADER] == "from-bag" == from_baggage.json()["correlation_id"]
    new_id = generated.headers[CORRELATION_HEADER]
    assert len(new_id) == 36 and generated.json()["correlation_id"] == new_id
    assert hostile.headers[CORRELATION_HEADER] != "" and "injected" not in hostile.headers[CORRELATION_HEADER]
    handled = [line["correlation_id"] for line in p.lines() if line.get("event") == "handling"]
    assert handled[:3] == ["abc-123", "from-bag", new_id]


def test_security_logger_emits_audit_records_regardless_of_level(make_pipeline: Any) -> None:
    p = make_pipeline(level="CRITICAL")
    get_logger("svc").error("filtered out")
    with p.tracer.start_as_current_span("login"):
        security_logger.log_authentication("user123", success=True, ip_address="192.168.1.1")
        security_logger.log_authentication("user123", success=False, ip_address="192.168.1.1", password="hunter2")
        security_logger.log_authorization("user123", "admin_panel", "read", granted=False)
        security_logger.log_security_event("suspicious_activity", severity="high", source="waf")
    records = [r.log_record for r in p.logs.get_finished_logs()]
    assert [r.event_name for r in records] == [
        semconv.AUDIT_AUTHENTICATION,
        semconv.AUDIT_AUTHENTICATION,
        semconv.AUDIT_AUTHORIZATION,
        semconv.AUDIT_SECURITY,
    ]
    assert records[1].attributes[semconv.AUDIT_OUTCOME] == "failure" and records[1].severity_text == "WARNING"
    assert records[1].attributes["password"] == "[REDACTED:password]"
    assert records[2].attributes[semconv.AUDIT_RESOURCE] == "admin_panel" and records[2].attributes[semconv.AUDIT_OUTCOME] == "denied"
    assert records[3].severity_text == "ERROR" and records[3].attributes["source"] == "waf"
    lines = p.lines()
    assert all(line["logger"] == "amas_otel.audit" for line in lines) and len(lines) == 4
    (span,) = p.spans.get_finished_spans()
    names = [e.name for e in span.events]
    assert names == [semconv.AUDIT_AUTHENTICATION] * 2 + [semconv.AUDIT_AUTHORIZATION, semconv.AUDIT_SECURITY]
    assert span.events[1].attributes["password"] == "[REDACTED:password]"
    with pytest.raises(ValueError, match="severity"):
        security_logger.log_security_event("x", severity="apocalyptic")


def test_audit_disabled_writes_nothing(make_pipeline: Any) -> None:
    p = make_pipeline(enable_audit=False)
    security_logger.log_authorization("u", "r", "a", granted=True)
    assert p.lines() == [] and p.logs.get_finished_logs() == ()


def test_export_failure_never_breaks_logging(make_pipeline: Any) -> None:
    class Broken:
        def get_logger(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("provider down")

    p = make_pipeline()
    from amas_otel.logging import LoggingConfig, configure_logging

    configure_logging(LoggingConfig(stream=p.stream), logger_provider=Broken(), meter_provider=p.meter_provider)
    get_logger("svc").info("still written")
    assert p.lines()[-1]["event"] == "still written"


def test_sdk_warnings_inside_a_span_do_not_feed_back_into_it(make_pipeline: Any) -> None:
    """The SDK logs attribute-limit warnings while holding the span's lock: the pipeline must not
    add a span event to that span (it waited on the lock forever), nor export the warning."""
    from opentelemetry.sdk.trace import SpanLimits
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    p = make_pipeline()
    provider = TracerProvider(span_limits=SpanLimits(max_span_attribute_length=4))
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))

    def traced_work() -> None:
        with provider.get_tracer("t").start_as_current_span("work") as span:
            span.set_attribute("note", "longer than four")

    worker = threading.Thread(target=traced_work, daemon=True)
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), "set_attribute deadlocked on the SDK's warning"
    (span,) = spans.get_finished_spans()
    assert span.attributes["note"] == "long" and not span.events
    assert any(line.get("logger") == "opentelemetry.attributes" for line in p.lines())
    assert not [r for r in p.logs.get_finished_logs() if r.instrumentation_scope.name.startswith("opentelemetry")]


class _PaymentDeclined(Exception):
    pass


def test_logger_exception_records_carry_exception_type_and_message(make_pipeline: Any) -> None:
    # The exceptions-in-logs convention: type (module-qualified, builtins bare) and message beside the stacktrace.
    p = make_pipeline()
    try:
        raise _PaymentDeclined("card refused")
    except _PaymentDeclined:
        get_logger("svc").exception("structlog failure")
        logging.getLogger("lib").exception("stdlib failure")
    try:
        raise KeyError("order")
    except KeyError as exc:
        get_logger("svc").error("passed explicitly", exc_info=exc)
    qualified = f"{__name__}._PaymentDeclined"
    lines = {line["event"]: line for line in p.lines()}
    records = {r.log_record.body: r.log_record.attributes for r in p.logs.get_finished_logs()}
    for event in ("structlog failure", "stdlib failure"):
        assert (lines[event]["exception.type"], lines[event]["exception.message"]) == (qualified, "card refused")
        assert (records[event]["exception.type"], records[event]["exception.message"]) == (qualified, "card refused")
        assert "raise _PaymentDeclined" in records[event]["exception.stacktrace"]
    assert (records["passed explicitly"]["exception.type"], records["passed explicitly"]["exception.message"]) == ("KeyError", "'order'")


def test_uvicorn_color_message_is_dropped(make_pipeline: Any) -> None:
    p = make_pipeline()
    # As uvicorn logs (its loggers themselves may carry an earlier test server's set-up).
    logging.getLogger("tests.uvicorn_like").warning("Started server process [%d]", 7, extra={"color_message": "Started \x1b[36m%d\x1b[0m"})
    (line,) = [line for line in p.lines() if line["event"].startswith("Started server")]
    assert line["event"] == "Started server process [7]" and "color_message" not in line
    (record,) = [r.log_record for r in p.logs.get_finished_logs() if str(r.log_record.body).startswith("Started")]
    assert "color_message" not in record.attributes
