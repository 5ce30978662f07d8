"""The example service with one hand-wired OpenTelemetry SDK span per request and nothing else.

    uvicorn bench._sdk_span_app:app

The floor ``bench_http`` compares the amas variants with: what any server
span per request costs when written directly against the SDK, as its
documentation shows (``TracerProvider`` + ``BatchSpanProcessor`` +
``OTLPSpanExporter`` over HTTP, the endpoint from ``OTEL_EXPORTER_OTLP_*``),
with the HTTP semantic-convention attributes the amas middleware sets.  No
metrics, correlation or log changes: the app logs as the bare variant does.
"""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import FastAPI
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from examples.app import create_app

_provider = TracerProvider(resource=Resource.create())
_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
_tracer = _provider.get_tracer("bench.sdk_span")


def _with_server_span(inner: Any) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await inner(scope, receive, send)
            return
        client, server = scope.get("client") or ("", 0), scope.get("server") or ("", 0)
        user_agent = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"user-agent"), "")
        span = _tracer.start_span(
            scope["method"],
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": scope["method"],
                "url.path": scope["path"],
                "url.scheme": scope.get("scheme", "http"),
                "network.protocol.version": scope.get("http_version", "1.1"),
                "client.address": client[0],
                "server.address": server[0],
                "server.port": server[1],
                "user_agent.original": user_agent,
            },
        )
        status = 500

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await inner(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "")
            span.set_attributes({"http.response.status_code": status, **({"http.route": route} if route else {})})
            if route:
                span.update_name(f"{scope['method']} {route}")
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()

    return app


# FastAPI 0.16x and later trace, meter and log requests natively once global
# providers exist (the example's first log record configures amas-otel's):
# switched off with FastAPI's own setting, so the span here is the only one.
_NATIVE_OFF = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
_example = create_app(
    instrument=False, **({"telemetry": _NATIVE_OFF} if "telemetry" in inspect.signature(FastAPI).parameters else {})
)
app = _with_server_span(_example)
