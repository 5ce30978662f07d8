"""amas-otel's FastAPI instrumentation changes nothing else: propagators, the app's own handlers and
instrumentation, FastAPI's native telemetry, the OpenAPI schema (issue 20). Real uvicorn, real clients."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from opentelemetry import baggage, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import CarrierT, Getter, Setter, TextMapPropagator, default_getter, default_setter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from amas_otel.fastapi import instrument_app, instrument_fastapi, uninstrument_fastapi
from tests.conftest import free_port, python_env
from tests.support.asgi_server import serve, serve_process
from tests.test_fastapi import SECRET, _Telemetry

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture
def telemetry() -> _Telemetry:
    return _Telemetry()


def _baggage_app() -> FastAPI:
    app = FastAPI()

    @app.get("/baggage")
    async def read_baggage() -> dict:
        return {k: v for k, v in baggage.get_all().items() if k != "correlation_id"}  # instrument_app adds that one

    return app


@pytest.fixture
def propagator() -> Iterator[Any]:
    """Set the global propagator for one test (what OTEL_PROPAGATORS selects), restore it after."""
    previous = propagate.get_global_textmap()
    yield propagate.set_global_textmap
    propagate.set_global_textmap(previous)


def _server_span(telemetry: _Telemetry) -> Any:
    (span,) = [s for s in telemetry.spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    return span


# --- propagation ------------------------------------------------------------------


def test_w3c_trace_context_with_two_tracestate_lines_and_baggage_with_two_lines(telemetry: _Telemetry) -> None:
    app = instrument_app(_baggage_app(), metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider)
    headers = [
        ("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"),
        ("tracestate", "vendor1=a"),
        ("tracestate", "vendor2=b"),
        ("baggage", "first=one"),
        ("baggage", "second=two"),
    ]
    with serve(app) as url, httpx.Client(base_url=url) as client:
        response = client.get("/baggage", headers=headers)
    assert response.json() == {"first": "one", "second": "two"}
    span = _server_span(telemetry)
    assert format(span.context.trace_id, "032x") == TRACE_ID and format(span.parent.span_id, "016x") == PARENT_ID
    assert dict(span.context.trace_state) == {"vendor1": "a", "vendor2": "b"}


@pytest.mark.parametrize(
    ("textmap", "headers"),
    [
        (B3MultiFormat(), {"X-B3-TraceId": TRACE_ID, "X-B3-SpanId": PARENT_ID, "X-B3-Sampled": "1"}),
        (B3SingleFormat(), {"b3": f"{TRACE_ID}-{PARENT_ID}-1"}),
    ],
    ids=["b3multi", "b3"],
)
def test_b3_headers_reach_the_configured_propagator(
    telemetry: _Telemetry, propagator: Any, textmap: TextMapPropagator, headers: dict[str, str]
) -> None:
    propagator(CompositePropagator([textmap, W3CBaggagePropagator()]))
    app = instrument_app(_baggage_app(), metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider)
    with serve(app) as url, httpx.Client(base_url=url) as client:
        assert client.get("/baggage", headers={**headers, "baggage": "tenant=acme"}).json() == {"tenant": "acme"}
    span = _server_span(telemetry)
    assert format(span.context.trace_id, "032x") == TRACE_ID and format(span.parent.span_id, "016x") == PARENT_ID


class _VendorPropagator(TextMapPropagator):
    """A custom propagator reading a header by a mixed-case name, as propagators may."""

    def extract(self, carrier: CarrierT, context: Context | None = None, getter: Getter[CarrierT] = default_getter) -> Context:
        values = getter.get(carrier, "X-Vendor-Trace")
        if not values:
            return context or Context()
        trace_id, span_id = values[0].split(":")
        parent = SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=TraceFlags(1))
        return trace.set_span_in_context(NonRecordingSpan(parent), context)

    def inject(self, carrier: CarrierT, context: Context | None = None, setter: Setter[CarrierT] = default_setter) -> None:
        pass

    @property
    def fields(self) -> set[str]:
        return {"X-Vendor-Trace"}


def test_a_custom_propagator_sees_its_header_under_the_launchers_instrumentation(propagator: Any) -> None:
    propagator(_VendorPropagator())
    telemetry = _Telemetry()
    instrument_fastapi(tracer_provider=telemetry.tracer_provider, metrics_service=telemetry.metrics)
    try:
        with serve(_baggage_app()) as url, httpx.Client(base_url=url) as client:
            assert client.get("/baggage", headers={"x-vendor-trace": f"{TRACE_ID}:{PARENT_ID}"}).status_code == 200
    finally:
        uninstrument_fastapi()
    span = _server_span(telemetry)
    assert format(span.context.trace_id, "032x") == TRACE_ID and format(span.parent.span_id, "016x") == PARENT_ID
    assert isinstance(propagate.get_global_textmap(), _VendorPropagator)


# --- the application's own handlers -----------------------------------------------


def _app_with_own_handlers() -> FastAPI:
    async def own_validation(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"own": "validation"}, status_code=418)

    app = FastAPI(exception_handlers={RequestValidationError: own_validation})

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict:
        return {"id": item_id}

    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError(f"database password is {SECRET}")

    return app


def test_the_apps_own_exception_handlers_win_and_the_request_is_still_recorded(telemetry: _Telemetry) -> None:
    app = instrument_app(
        _app_with_own_handlers(), metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider
    )

    async def own_500(request: Request, exc: Exception) -> JSONResponse:  # registered after instrument_app
        return JSONResponse({"own": "500", "type": type(exc).__name__}, status_code=500)

    app.add_exception_handler(Exception, own_500)
    with serve(app) as url, httpx.Client(base_url=url) as client:
        invalid = client.get("/items/not-a-number")
        assert client.get("/items/1").json() == {"id": 1}
        # Starlette re-raises after the app's own 500 handler answered, and uvicorn then closes the
        # connection: as without amas-otel (the app chose that handler); the request is last.
        failed = client.get("/boom")
    assert (invalid.status_code, invalid.json()) == (418, {"own": "validation"})
    assert (failed.status_code, failed.json()) == (500, {"own": "500", "type": "RuntimeError"})
    spans = {s.attributes["http.route"]: s for s in telemetry.spans.get_finished_spans()}
    assert spans["/boom"].attributes["error.type"] == "RuntimeError" and spans["/boom"].events[0].name == "exception"
    assert spans["/items/{item_id}"].attributes["http.response.status_code"] in (418, 200)
    durations = {
        (s["labels"]["http_route"], s["labels"]["http_response_status_code"])
        for s in telemetry.metrics.get_metrics("dict")["http_server_request_duration_seconds"]
    }
    assert {("/items/{item_id}", "418"), ("/boom", "500"), ("/items/{item_id}", "200")} <= durations


def test_without_handlers_of_its_own_the_app_gets_amas_otels_json_500(telemetry: _Telemetry) -> None:
    app = FastAPI()

    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("no")

    instrument_app(app, metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider)
    with serve(app) as url, httpx.Client(base_url=url) as client:
        failed = client.get("/boom")
    assert failed.status_code == 500 and failed.json()["error"] == "internal_error"


def test_an_unexpected_exception_answered_by_the_layer_is_logged_with_type_message_and_redacted_stacktrace(
    telemetry: _Telemetry, make_pipeline: Any
) -> None:
    pipeline = make_pipeline()
    app = FastAPI()

    @app.get("/boom")
    async def boom() -> dict:
        raise ConnectionRefusedError(f"postgres://app:{SECRET}@127.0.0.1:1/db refused")

    instrument_app(app, metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider)
    with serve(app) as url, httpx.Client(base_url=url) as client:
        assert client.get("/boom").status_code == 500
    (line,) = [line for line in pipeline.lines() if line["event"] == "request failed"]
    assert line["exception.type"] == "ConnectionRefusedError"
    assert "refused" in line["exception.message"] and SECRET not in line["exception.message"]
    assert 'in boom\n    raise ConnectionRefusedError' in line["exception"] and SECRET not in line["exception"]
    (record,) = [r.log_record for r in pipeline.logs.get_finished_logs() if r.log_record.body == "request failed"]
    assert record.attributes["exception.type"] == "ConnectionRefusedError"
    assert "ConnectionRefusedError" in record.attributes["exception.stacktrace"]
    assert SECRET not in str(dict(record.attributes))


# --- validation errors: the schema says what is answered ----------------------------


def _validating_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict:
        return {"id": item_id}

    return app


@pytest.mark.parametrize("mode", ["fastapi", "400"])
def test_the_openapi_schema_advertises_the_validation_response_that_is_sent(telemetry: _Telemetry, mode: str) -> None:
    app = instrument_app(
        _validating_app(), metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider, validation_errors=mode
    )
    with serve(app) as url, httpx.Client(base_url=url) as client:
        schema = client.get("/openapi.json").json()
        invalid = client.get("/items/not-a-number")
    responses = schema["paths"]["/items/{item_id}"]["get"]["responses"]
    assert set(responses) == {"200", str(invalid.status_code)}
    ref = responses[str(invalid.status_code)]["content"]["application/json"]["schema"]["$ref"]
    body_schema = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(body_schema.get("required", ())) <= set(invalid.json()) <= set(body_schema["properties"])
    if mode == "fastapi":  # FastAPI's default, unchanged
        assert invalid.status_code == 422 and invalid.json()["detail"][0]["loc"] == ["path", "item_id"]
    else:
        assert invalid.status_code == 400 and invalid.json()["fields"] == ["path.item_id"]
        assert "HTTPValidationError" not in schema["components"]["schemas"]
    errors = telemetry.metrics.get_metrics("dict")["amas_errors_total"]
    assert {s["labels"]["error_type"] for s in errors} == {"RequestValidationError"}  # counted either way


def test_a_bad_validation_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="validation_errors must be one of fastapi, 400, got '422'"):
        instrument_app(FastAPI(), validation_errors="422")


# --- an app instrumented by OpenTelemetry's FastAPIInstrumentor itself ---------------


def test_an_app_the_user_instruments_with_fastapiinstrumentor_is_left_to_it(caplog: pytest.LogCaptureFixture) -> None:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    amas = _Telemetry()
    own = _Telemetry()
    instrument_fastapi(tracer_provider=amas.tracer_provider, metrics_service=amas.metrics)
    app = _validating_app()
    FastAPIInstrumentor.instrument_app(app, tracer_provider=own.tracer_provider, exclude_spans=["receive", "send"])
    try:
        with caplog.at_level(logging.WARNING), serve(app) as url, httpx.Client(base_url=url) as client:
            assert client.get("/items/5").json() == {"id": 5}
    finally:
        FastAPIInstrumentor.uninstrument_app(app)
        uninstrument_fastapi()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    (span,) = own.spans.get_finished_spans()  # the user's settings: no receive/send spans
    assert span.kind is SpanKind.SERVER and span.instrumentation_scope.name == "opentelemetry.instrumentation.fastapi"
    assert amas.spans.get_finished_spans() == ()  # not instrumented twice


# --- FastAPI's native telemetry --------------------------------------------------------


def test_an_app_that_configured_fastapis_telemetry_keeps_it_under_the_launchers_instrumentation() -> None:
    from fastapi.telemetry import get_telemetry_data

    amas = _Telemetry()
    exporter = InMemorySpanExporter()
    own_provider = TracerProvider()
    own_provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument_fastapi(tracer_provider=amas.tracer_provider, metrics_service=amas.metrics)
    try:
        app = FastAPI(telemetry={"tracer_provider": own_provider, "metrics": False, "logs": False})
        plain = _validating_app()

        @app.get("/items/{item_id}")
        async def item(item_id: int, request: Request) -> dict:
            data = get_telemetry_data()
            return {"id": item_id, "seen": data is not None and data.request is request}

        with serve(app) as url, httpx.Client(base_url=url) as client:
            assert client.get("/items/7").json() == {"id": 7, "seen": True}
        with serve(plain) as url, httpx.Client(base_url=url) as client:
            assert client.get("/items/8").json() == {"id": 8}
    finally:
        uninstrument_fastapi()
    spans = exporter.get_finished_spans()
    assert {s.name for s in spans} >= {"GET /items/{item_id}", "fastapi.endpoint"}  # FastAPI's own, with operation spans
    # amas-otel adds no second server span for that app; its duration is recorded (FastAPI's metrics are off).
    (amas_span,) = amas.spans.get_finished_spans()
    assert amas_span.attributes["url.path"] == "/items/8"  # the app without telemetry settings: amas-otel's span only
    counts = {
        s["labels"]["url_path"] if "url_path" in s["labels"] else s["labels"]["http_route"]: s["value"]["count"]
        for s in amas.metrics.get_metrics("dict")["http_server_request_duration_seconds"]
    }
    assert counts == {"/items/{item_id}": 2.0}
    assert plain._telemetry["tracing"] is False and app._telemetry["tracing"] is True


def test_with_instrument_app_an_app_that_configured_fastapis_telemetry_still_gets_its_exception_records(
    telemetry: _Telemetry,
) -> None:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    exporter = InMemorySpanExporter()
    own_tracer = TracerProvider()
    own_tracer.add_span_processor(SimpleSpanProcessor(exporter))
    logs = InMemoryLogRecordExporter()
    own_logger = LoggerProvider()
    own_logger.add_log_record_processor(SimpleLogRecordProcessor(logs))
    app = FastAPI(telemetry={"tracer_provider": own_tracer, "logger_provider": own_logger, "metrics": False})

    @app.get("/boom")
    async def boom() -> dict:
        raise ValueError("native")

    instrument_app(app, metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider, health=False)
    with serve(app) as url, httpx.Client(base_url=url) as client:
        failed = client.get("/boom")
    assert failed.status_code == 500  # FastAPI's own answer: the exception went through its error handling
    (server,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert server.attributes["error.type"] == "ValueError"
    (record,) = [r.log_record for r in logs.get_finished_logs() if r.log_record.event_name == "http.server.request.exception"]
    assert isinstance(record.exception, ValueError)
    assert telemetry.spans.get_finished_spans() == ()  # FastAPI traces this app: no second server span


# --- the launcher under pytest -----------------------------------------------------------


@pytest.mark.slow
def test_pytest_with_filterwarnings_error_runs_under_the_launcher_and_apps_are_still_instrumented(tmp_path: Path) -> None:
    # The launcher must not import FastAPI (Starlette, AnyIO) before the program does: pytest could
    # then not rewrite the assertions of AnyIO's plugin, and warns, an error under filterwarnings=error.
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\nfilterwarnings =\n    error\n")
    (tmp_path / "test_app.py").write_text(
        textwrap.dedent(
            """
            import sys

            def test_fastapi_is_patched_once_the_program_imports_it():
                assert "fastapi" not in sys.modules or "amas_otel.fastapi" in sys.modules
                from fastapi import FastAPI

                assert type(FastAPI().build_middleware_stack()).__name__ == "RequestTelemetryMiddleware"
            """
        )
    )
    result = subprocess.run(
        [str(Path(sys.executable).parent / "amas-otel-instrument"), sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=python_env(PROMETHEUS_ENABLED="false", AMAS_CONFIG_FILES=""),
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout and "PytestAssertRewriteWarning" not in result.stdout + result.stderr


def test_tracing_otel_on_an_app_with_fastapi_telemetry_settings_still_records_the_duration(telemetry: _Telemetry) -> None:
    # FastAPIInstrumentor's middleware switches FastAPI's native telemetry off, metrics included.
    app = FastAPI(telemetry={"operation_spans": False})

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict:
        return {"id": item_id}

    instrument_app(app, metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider, tracing="otel")
    try:
        with serve(app) as url, httpx.Client(base_url=url) as client:
            assert client.get("/items/1").status_code == 200
    finally:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.uninstrument_app(app)
    durations = telemetry.metrics.get_metrics("dict")["http_server_request_duration_seconds"]
    assert [(s["labels"]["http_route"], s["value"]["count"]) for s in durations] == [("/items/{item_id}", 1.0)]


def test_an_unexpected_exception_is_answered_then_raised_on_to_the_server_as_starlette_does(telemetry: _Telemetry) -> None:
    app = FastAPI()

    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("no")

    instrument_app(app, metrics_service=telemetry.metrics, tracer_provider=telemetry.tracer_provider)
    # TestClient(raise_server_exceptions=True), the default, sees it as without amas-otel ...
    with TestClient(app) as client, pytest.raises(RuntimeError, match="^no$"):
        client.get("/boom")
    # ... after the layer answered with its JSON 500 and recorded the request.
    with TestClient(app, raise_server_exceptions=False) as client:
        failed = client.get("/boom", headers={"X-Correlation-ID": "c-boom"})
    assert failed.status_code == 500 and failed.headers["x-correlation-id"] == "c-boom"
    assert failed.json() == {"error": "internal_error", "message": "Internal server error", "correlation_id": "c-boom"}
    spans = telemetry.spans.get_finished_spans()
    assert [(span.attributes["http.response.status_code"], span.attributes["error.type"]) for span in spans] == [
        (500, "RuntimeError")
    ] * 2
    assert [event.name for event in spans[1].events] == ["exception"]


# The exception's message carries a database password; secret={secret!r} is filled in per test.
_RAISING_APP = textwrap.dedent(
    """
    import amas_otel
    from fastapi import FastAPI
    from amas_otel.fastapi import instrument_app

    if {in_code}:
        amas_otel.configure()
    app = FastAPI()

    @app.get("/boom")
    async def boom():
        raise ConnectionRefusedError("postgres://app:{secret}@127.0.0.1:1/db refused")

    if {in_code}:
        instrument_app(app, metrics_path="", health=False)
    """
)


@pytest.mark.parametrize("mode", ["instrument_app", "launcher"])
def test_under_uvicorn_the_client_gets_the_500_and_the_log_carries_the_exception_once_redacted(tmp_path: Path, mode: str) -> None:
    in_code = mode == "instrument_app"
    (tmp_path / "raising_app.py").write_text(_RAISING_APP.format(secret=SECRET, in_code=in_code))
    port = free_port()
    env = python_env(PROMETHEUS_ENABLED="false", AMAS_CONFIG_FILES="", OTEL_TRACES_EXPORTER="none",
                     OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none", LOG_FORMAT="json")
    # Under the launcher amas-otel is configured before uvicorn sets up its own logging handlers.
    launcher = [] if in_code else [str(Path(sys.executable).parent / "amas-otel-instrument")]
    command = [*launcher, sys.executable, "-m", "uvicorn", "raising_app:app", "--host", "127.0.0.1", "--port", str(port)]
    with serve_process(command, tmp_path, env, port) as process:
        failed = httpx.get(f"http://127.0.0.1:{port}/boom", headers={"X-Correlation-ID": "c-boom"}, timeout=10)
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert failed.status_code == 500
    if in_code:
        assert failed.json() == {"error": "internal_error", "message": "Internal server error", "correlation_id": "c-boom"}
    assert SECRET not in output
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    (logged,) = [line for line in lines if line["event"] == "request failed"]
    assert logged["exception.type"] == "ConnectionRefusedError"
    assert logged["exception.message"] == "postgres://[REDACTED:url_password]@127.0.0.1:1/db refused"
    assert "raise ConnectionRefusedError" in logged["exception"]
    if in_code:
        assert logged["correlation_id"] == "c-boom"
    # uvicorn saw the exception (as it does without amas-otel) and says so, without printing the traceback again.
    (server,) = [line for line in lines if line["event"].startswith("Exception in ASGI application")]
    assert server["logger"] == "uvicorn.error" and server["exception.type"] == "ConnectionRefusedError"
    assert output.count("Traceback (most recent call last)") == 1, output
