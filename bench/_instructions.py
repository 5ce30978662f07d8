"""Instructions per request, log record or span under callgrind: the figure that shows a few percent on noisy VMs.

    valgrind --tool=callgrind --toggle-collect=takewhile_next --callgrind-out-file=/tmp/cg.out \
        .venv/bin/python bench/_instructions.py REPO CASE N        # Ir / N is the figure

CASE is one of
* ``http``: GET /api/data of the example app (``instrument_app`` variant) called in process, ASGI, N requests;
  spans queued by the batch processor (no export in the window), metrics to the Prometheus reader, one INFO line each;
* ``logs``: bench_logging (a), the full pipeline into a batch queue, N records;
* ``spans``, ``spans-bare``: bench_logging (b), a span with 10 HTTP attributes through the redacting chain
  (or without redaction) into a batch queue, N spans.
REPO is the checkout whose ``amas_otel`` is measured (another branch's, unpacked with ``git archive``, for a
before/after); ``AMAS_FAST_PATHS=off`` measures the public paths.  The measured loop runs inside
``itertools.takewhile``, the one C function callgrind collects in, so start-up, warm-up and exit are left out.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import uuid

REPO, CASE, N = sys.argv[1], sys.argv[2], int(sys.argv[3])
QUEUE = 4 * N + 4000


def _count(step: object, total: int) -> None:
    done = sum(1 for _ in itertools.takewhile(step, range(total)))  # type: ignore[arg-type]
    if done != total:
        raise SystemExit(f"only {done} of {total} steps succeeded")


def http() -> None:
    os.environ.update(
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_BSP_SCHEDULE_DELAY="600000",
        OTEL_BSP_MAX_QUEUE_SIZE=str(QUEUE), OTEL_BSP_MAX_EXPORT_BATCH_SIZE=str(QUEUE),
        OTEL_METRICS_EXPORTER="prometheus", PROMETHEUS_PORT="0", PROMETHEUS_HOST="127.0.0.1",
        OTEL_LOGS_EXPORTER="none", LOG_LEVEL="INFO", AMAS_EXAMPLE_INSTRUMENT="1",
    )
    os.chdir(REPO)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    from examples.app import app

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": "/api/data", "raw_path": b"/api/data", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk")], "client": ("127.0.0.1", 40000),
             "server": ("127.0.0.1", 8000)}

    async def one() -> int:
        status = 0

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(dict(scope), receive, send)
        return status

    def request(_: int) -> bool:
        # A request runs to completion without suspending: send(None) ends in StopIteration.
        coro = one()
        try:
            coro.send(None)
        except StopIteration as done:
            return done.value == 200
        raise RuntimeError("a request suspended")

    async def main() -> None:
        for _ in range(500):
            assert await one() == 200
        _count(request, N)

    asyncio.run(main())


def logs() -> None:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, InMemoryLogRecordExporter
    from opentelemetry.sdk.trace import TracerProvider

    from amas_otel.logging import LoggingConfig, LoggingContext, configure_logging, get_logger
    from amas_otel.redaction import RedactingLogRecordProcessor

    provider = _log_provider(LoggerProvider, RedactingLogRecordProcessor)
    provider.add_log_record_processor(
        BatchLogRecordProcessor(InMemoryLogRecordExporter(), max_queue_size=QUEUE, max_export_batch_size=QUEUE, schedule_delay_millis=600_000)
    )
    configure_logging(LoggingConfig(stream=open(os.devnull, "w")), logger_provider=provider)  # noqa: SIM115
    log = get_logger("bench", "auth")
    with LoggingContext(correlation_id="req-123", user_id="user-456"), TracerProvider().get_tracer("bench").start_as_current_span("req"):

        def step(i: int) -> bool:
            log.info("user action", action="login", status="success", user="u-1", n=i)
            return True

        for i in range(2000):
            step(i)
        _count(step, N)


def _log_provider(provider_type: type, redacting: type) -> object:
    """A logger provider with redaction, as the measured checkout installs it (the chain itself, or a first processor)."""
    from opentelemetry.sdk._logs import SynchronousMultiLogRecordProcessor

    if issubclass(redacting, SynchronousMultiLogRecordProcessor):
        return provider_type(multi_log_record_processor=redacting())
    provider = provider_type()
    provider.add_log_record_processor(redacting())
    return provider


def spans(redact: bool) -> None:
    from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from amas_otel.redaction import RedactingSpanProcessor, Redactor

    if redact and issubclass(RedactingSpanProcessor, SynchronousMultiSpanProcessor):
        provider = TracerProvider(active_span_processor=RedactingSpanProcessor(Redactor("medium")))
    else:
        provider = TracerProvider()
        if redact:
            provider.add_span_processor(RedactingSpanProcessor(Redactor("medium")))
    provider.add_span_processor(
        BatchSpanProcessor(InMemorySpanExporter(), max_queue_size=QUEUE, max_export_batch_size=QUEUE, schedule_delay_millis=600_000)
    )
    tracer = provider.get_tracer("bench")
    ids = [str(uuid.UUID(int=i + 1)) for i in range(N + 2000)]
    agents = ["python-requests/2.31.0", "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0", "curl/8.5.0"]

    def step(i: int) -> bool:
        with tracer.start_as_current_span("GET /api/v1/users/{id}/orders") as span:
            span.set_attributes({
                "http.request.method": "GET", "http.route": "/api/v1/users/{id}/orders", "url.path": f"/api/v1/users/{i}/orders",
                "url.scheme": "https", "http.response.status_code": 200, "server.address": "api.internal", "server.port": 8443,
                "user_agent.original": agents[i % 3], "amas.request.id": ids[i], "amas.component": "orders",
            })
        return True

    for i in range(2000):
        step(i)
    _count(lambda i: step(i + 2000), N)


if __name__ == "__main__":
    sys.path.insert(0, REPO)
    {"http": http, "logs": logs, "spans": lambda: spans(True), "spans-bare": lambda: spans(False)}[CASE]()
    os._exit(0)  # no shutdown flush: not part of what is measured
