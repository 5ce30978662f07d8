"""Canary spans for the fast paths' self-tests: real SDK spans using every part the fast paths read."""

from __future__ import annotations

import logging

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

__all__ = ["canary_spans"]


def canary_spans() -> tuple[ReadableSpan, ...]:
    """Finished spans: a server span under a remote parent with every attribute type, events, a link,
    an error status with a description, dropped attributes; and a plain internal child."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "amas-otel-canary"}),
        span_limits=SpanLimits(max_span_attributes=8),
        shutdown_on_exit=False,
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # The canary drops attributes on purpose: the SDK's warning about it would only puzzle the reader.
    attributes_log = logging.getLogger("opentelemetry.attributes")
    was_disabled, attributes_log.disabled = attributes_log.disabled, True
    try:
        _record(provider)
    finally:
        attributes_log.disabled = was_disabled
    provider.shutdown()
    return tuple(exporter.get_finished_spans())


def _record(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("amas_otel.canary", "1.0", schema_url="https://opentelemetry.io/schemas/1.26.0")
    parent = SpanContext(
        0x0AF7651916CD43DD8448EB211C80319C,
        0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("vendor", "value")]),
    )
    link = trace.Link(SpanContext(0x1234, 0x5678, is_remote=False), {"link.kind": "follows"})
    with tracer.start_as_current_span(
        "GET /items/{id}",
        context=trace.set_span_in_context(trace.NonRecordingSpan(parent)),
        kind=SpanKind.SERVER,
        links=[link],
        attributes={"http.request.method": "GET", "http.response.status_code": 500, "ok": False, "ratio": 0.25},
    ) as span:
        span.set_attribute("tags", ("a", "b"))
        span.set_attribute("user.password", "hunter2")
        span.add_event("retry", {"attempt": 2})
        span.record_exception(ValueError("token=abc123"))
        for i in range(6):  # past the limit of 8: dropped attributes
            span.set_attribute(f"extra.{i}", i)
        span.set_status(Status(StatusCode.ERROR, "boom"))
        with tracer.start_as_current_span("child"):
            pass
