"""Issue #19, HTTP server and log items, asserted on the example service's captured telemetry.

The capture (``tests/support/capture.py``: the example app under ``amas-otel-instrument``, OTLP/HTTP to a
loopback receiver, the issue's request mix) is what a user's collector would receive; the focused tests
below it pin what the capture cannot vary (a ``Forwarded`` header, untrusted peers, the known-methods
override).
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from fastapi import FastAPI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from amas_otel import config
from amas_otel.config import ConfigError, load_settings
from amas_otel.fastapi import instrument_app
from amas_otel.http_origin import proxy_networks, request_origin
from amas_otel.metrics import MetricsService
from tests.support.asgi_server import serve
from tests.support.capture import FORWARDED_CLIENT, QUERY_SECRET, QUERY_SIGNATURE, Capture, LogRecord, Span

_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
# The names the request logs used before: one concept, one name (the semantic conventions' / amas.*).
_OLD_LOG_KEYS = {"component", "method", "route", "status_code", "duration_ms", "error_type", "color_message"}


def _span(capture: Capture, label: str) -> Span:
    """The server span of the request labelled ``label``, found by the correlation id its response carried."""
    headers = {name.lower(): value for name, value in capture.response(label).headers.items()}
    (span,) = [s for s in capture.server_spans() if s.attributes.get("amas.correlation.id") == headers["x-correlation-id"]]
    return span


def _http_records(capture: Capture) -> list[LogRecord]:
    return [r for r in capture.logs if r.scope == "amas_otel.http"]


def _durations(capture: Capture) -> list[Any]:
    return capture.points("http.server.request.duration")


# --- correlation ---------------------------------------------------------------------


def test_every_request_log_carries_its_request_span_ids(example_capture: Capture) -> None:
    spans = {s.span_id: s for s in example_capture.server_spans()}
    records = _http_records(example_capture)
    assert {r.body for r in records} >= {"request", "request failed"}  # 5xx answers and the unhandled exception
    for record in records:
        span = spans.get(record.span_id)
        assert span is not None and span.trace_id == record.trace_id, (record.body, record.trace_id, record.span_id)
        assert span.attributes["http.response.status_code"] == record.attributes["http.response.status_code"]
    failed = _span(example_capture, "report_bug")
    # The server's own report of the exception, written after the request's context ended, points at it too.
    (server_report,) = [r for r in example_capture.logs if str(r.body).startswith("Exception in ASGI application")]
    assert (server_report.trace_id, server_report.span_id) == (failed.trace_id, failed.span_id)
    lines = [line for line in example_capture.json_lines if line.get("logger") == "amas_otel.http"]
    assert lines and all(spans[line["span_id"]].trace_id == line["trace_id"] for line in lines)


def test_health_status_changes_are_logged_in_their_check_span(example_capture: Capture) -> None:
    changes = [r for r in example_capture.logs if r.body == "health check status changed"]
    assert [r.attributes["amas.health.check.result"] for r in changes] == ["unhealthy", "healthy"]
    check_spans = {s.span_id: s for s in example_capture.spans if s.name == "health_check downstream"}
    for record in changes:
        assert (record.trace_id, record.span_id) != (_ZERO_TRACE, _ZERO_SPAN)
        assert check_spans[record.span_id].trace_id == record.trace_id


def test_logged_exceptions_carry_type_message_and_stacktrace(example_capture: Capture) -> None:
    (failed,) = [r for r in _http_records(example_capture) if r.body == "request failed"]
    assert failed.attributes["exception.type"] == "KeyError"  # builtins bare, as the SDK's exception events
    assert failed.attributes["exception.message"] == "'weekly'"
    assert "KeyError: 'weekly'" in failed.attributes["exception.stacktrace"]


# --- HTTP server conventions -----------------------------------------------------------


def test_duration_carries_scheme_and_protocol_version(example_capture: Capture) -> None:
    points = _durations(example_capture)
    assert points and all(p.attributes["network.protocol.version"] == "1.1" for p in points)
    assert {p.attributes["url.scheme"] for p in points} == {"http", "https"}  # https: the forwarded request


def test_query_is_on_the_span_with_its_values_redacted(example_capture: Capture) -> None:
    query = _span(example_capture, "data_query").attributes["url.query"]
    assert query.startswith("correlation_id=q-1&token=[REDACTED") and query.endswith("&sig=[REDACTED:sig]&page=2")
    for secret in (QUERY_SECRET, QUERY_SIGNATURE):
        assert secret not in str([s.attributes for s in example_capture.spans])
    assert "url.query" not in _span(example_capture, "data").attributes


def test_unknown_method_is_other_with_its_original(example_capture: Capture) -> None:
    span = _span(example_capture, "unknown_method")
    assert (span.name, span.attributes["http.request.method"], span.attributes["http.request.method_original"]) == (
        "HTTP /api/data",
        "_OTHER",
        "FOO",
    )
    assert [p.attributes["http.request.method"] for p in _durations(example_capture) if p.attributes["http.response.status_code"] == 405] == ["_OTHER"]


def test_route_only_when_one_matched(example_capture: Capture) -> None:
    unmatched = _span(example_capture, "unmatched")
    assert unmatched.name == "GET" and "http.route" not in unmatched.attributes
    (point,) = [p for p in _durations(example_capture) if p.attributes["http.response.status_code"] == 404]
    assert "http.route" not in point.attributes
    assert all(p.attributes["http.route"] for p in _durations(example_capture) if "http.route" in p.attributes)
    scrape = _span(example_capture, "metrics")
    assert scrape.name == "GET /metrics" and scrape.attributes["http.route"] == "/metrics"


def test_origin_from_a_trusted_proxy_and_from_the_socket(example_capture: Capture) -> None:
    forwarded = _span(example_capture, "forwarded").attributes
    assert (forwarded["client.address"], forwarded["url.scheme"]) == (FORWARDED_CLIENT, "https")
    assert (forwarded["server.address"], forwarded["server.port"]) == ("api.example.com", 8443)
    direct = _span(example_capture, "data").attributes  # no forwarding headers: the Host header and the socket
    assert (direct["client.address"], direct["url.scheme"], direct["server.address"]) == ("127.0.0.1", "http", "127.0.0.1")
    assert isinstance(direct["server.port"], int) and direct["server.port"] not in (80, 8443)


def test_error_type_is_the_same_on_span_metric_and_log(example_capture: Capture) -> None:
    span = _span(example_capture, "report_bug")
    (point,) = [p for p in _durations(example_capture) if p.attributes.get("http.route") == "/api/reports/{name}" and p.attributes["http.response.status_code"] == 500]
    (record,) = [r for r in _http_records(example_capture) if r.body == "request failed"]
    assert span.attributes["error.type"] == point.attributes["error.type"] == record.attributes["error.type"] == "KeyError"
    bad_gateway = _span(example_capture, "downstream_down_0")
    assert bad_gateway.attributes["error.type"] == "502"  # a 5xx without an exception: the status code


# --- names ---------------------------------------------------------------------------------


def test_request_logs_use_the_semantic_convention_names(example_capture: Capture) -> None:
    records = _http_records(example_capture)
    for record in records:
        assert not _OLD_LOG_KEYS & set(record.attributes), record.attributes
        assert record.attributes["amas.component"] == "http"
        assert {"http.request.method", "http.response.status_code", "http.server.request.duration"} <= set(record.attributes)
        assert isinstance(record.attributes["http.response.status_code"], int)
    lines = [line for line in example_capture.json_lines if line.get("logger", "").startswith(("amas_otel.http", "uvicorn"))]
    assert lines and not any(_OLD_LOG_KEYS & set(line) for line in lines)
    assert "\x1b[" not in example_capture.output  # uvicorn's color_message is dropped
    codes = {p.attributes.get("http.response.status_code") for p in _durations(example_capture)}
    assert all(isinstance(code, int) for code in codes)  # never a class like "2xx"


# --- focused: what the capture does not vary --------------------------------------------------


def _scope(peer: str, *headers: tuple[str, str], scheme: str = "http") -> dict[str, Any]:
    return {
        "client": (peer, 5555),
        "scheme": scheme,
        "server": ("127.0.0.1", 8000),
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers],
    }


def test_forwarded_is_read_from_trusted_proxies_only() -> None:
    trusted = proxy_networks(["127.0.0.0/8", "::1"])
    forwarded = ("Forwarded", 'for=198.51.100.9;proto=https;host="shop.example.com", for=127.0.0.2;host=inner:81')
    origin = request_origin(_scope("127.0.0.1", forwarded, ("Host", "127.0.0.1:8000")), trusted)
    # Walking from the nearest proxy: 127.0.0.2 is trusted, so the client is the hop before it, and that hop's
    # proto and host are the ones the edge proxy received.
    assert origin == ("https", "shop.example.com", 443, "198.51.100.9")
    bracketed = request_origin(_scope("::1", ("Forwarded", 'for="[2001:db8::7]:4711";proto=http')), trusted)
    assert bracketed.client_address == "2001:db8::7"
    spoofed = request_origin(_scope("198.51.100.20", forwarded, ("X-Forwarded-For", "1.2.3.4"), ("Host", "svc:8000")), trusted)
    assert spoofed == ("http", "svc", 8000, "198.51.100.20")  # an untrusted peer's headers are ignored
    no_host = request_origin(_scope("198.51.100.20"), trusted)
    assert (no_host.server_address, no_host.server_port) == ("127.0.0.1", 8000)  # HTTP/1.0 without Host: the socket
    default_port = request_origin(_scope("198.51.100.20", ("Host", "[::1]"), scheme="https"), ())
    assert (default_port.server_address, default_port.server_port) == ("::1", 443)


def test_known_methods_override_is_case_sensitive_and_validated(clean_env: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER"):
        clean_env.setenv(name, "none")  # instrument_app configures amas-otel when nothing has yet: no endpoint
    clean_env.setenv("PROMETHEUS_ENABLED", "false")
    clean_env.setenv("OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS", "GET,PURGE")
    clean_env.setattr(config, "_settings", load_settings())  # the settings in effect, as configure() sets them
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    app = FastAPI()

    @app.api_route("/cache", methods=["GET", "PURGE", "POST"])
    async def cache() -> dict:
        return {}

    service = MetricsService(meter_provider=MeterProvider(), system_metrics=False)
    instrument_app(app, metrics_service=service, tracer_provider=provider, health=False, metrics_path="")
    with serve(app) as url:
        for method in ("PURGE", "POST", "get"):  # raw: HTTP clients upper-case the method
            host, port = url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port)), timeout=10) as conn:
                conn.sendall(f"{method} /cache HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                while conn.recv(65536):
                    pass
    seen = [(s.name, s.attributes["http.request.method"], s.attributes.get("http.request.method_original")) for s in spans.get_finished_spans()]
    # The override replaces the default list (POST is no longer known) and is case-sensitive ("get" is not GET).
    assert seen == [("PURGE /cache", "PURGE", None), ("HTTP /cache", "_OTHER", "POST"), ("HTTP /cache", "_OTHER", "get")]

    clean_env.setenv("OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS", "GET,NOT A METHOD")
    with pytest.raises(ConfigError, match="OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS: invalid value .*HTTP method names"):
        load_settings()
