"""Overhead of the amas-otel logging pipeline and of span redaction, side by side in one run.

(a) one log record through the full pipeline (correlation + redaction + JSON
    rendering + OTel log export to a null exporter) vs bare structlog JSON
    (add_log_level + TimeStamper(fmt="iso") + JSONRenderer) writing the same
    line minus the trace ids: the logger name and the context values are bound
    as a bare-structlog user would; the message-fields-only variant, and bare
    structlog with an orjson renderer (amas-otel renders with orjson), are shown too;
(b) a span with 10 attributes with the RedactingSpanProcessor vs without: many
    short paired rounds in alternating order, the ratio is the median of the
    per-round ratios (a noisy neighbour then skews single rounds, not the figure).

    .venv/bin/python bench/bench_logging.py [--quick]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable

import orjson
import structlog
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from amas_otel.logging import LoggingConfig, LoggingContext, configure_logging, get_logger
from amas_otel.redaction import RedactingLogRecordProcessor, RedactingSpanProcessor, Redactor

QUICK = "--quick" in sys.argv
N_LOG = 3_000 if QUICK else 10_000
N_SPAN = 3_000 if QUICK else 10_000  # distinct span values, cycled through by the rounds
ROUNDS = 3 if QUICK else 5
SPAN_BATCH = 1_000  # spans per round and case
SPAN_ROUNDS = 12 if QUICK else 40


class _NullLogs(LogRecordExporter):
    def export(self, batch: object) -> LogRecordExportResult:
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 0) -> bool:
        return True


class _NullSpans(SpanExporter):
    def export(self, spans: object) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _per_op(fn: Callable[[int], None], n: int, flush: Callable[[], object] | None = None, first: int = 0) -> float:
    start = time.perf_counter()
    for i in range(first, first + n):
        fn(i)
    if flush:
        flush()  # the exporter thread's work is part of the cost
    return (time.perf_counter() - start) / n * 1e6


def _side_by_side(cases: dict[str, Callable[[], float]]) -> dict[str, float]:
    results: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(ROUNDS):  # interleaved rounds: machine noise hits every case alike
        for name, case in cases.items():
            results[name].append(case())
    return {name: statistics.median(values) for name, values in results.items()}


def _paired(base: Callable[[], float], case: Callable[[], float]) -> tuple[float, float, float]:
    """Median us/op of ``base`` and ``case`` and the median of their per-round ratios, in alternating order."""
    bases: list[float] = []
    cases: list[float] = []
    for i in range(SPAN_ROUNDS):
        if i % 2:
            cases.append(case())
            bases.append(base())
        else:
            bases.append(base())
            cases.append(case())
    ratio = statistics.median(c / b for b, c in zip(bases, cases))
    return statistics.median(bases), statistics.median(cases), ratio


def _orjson_renderer(logger: object, method_name: str, event_dict: dict) -> str:
    # What a bare-structlog user tuning for speed would write; amas-otel renders with orjson too.
    return orjson.dumps(event_dict, default=repr).decode()


def bench_logging() -> dict[str, float]:
    null = open(os.devnull, "w")  # noqa: SIM115 - lives for the whole run
    provider = LoggerProvider(multi_log_record_processor=RedactingLogRecordProcessor())
    batch = BatchLogRecordProcessor(_NullLogs(), max_queue_size=2 * N_LOG, max_export_batch_size=512)
    provider.add_log_record_processor(batch)
    tracer = TracerProvider().get_tracer("bench")
    otel_logger = provider.get_logger("bench")

    def bare(same_fields: bool, renderer: Callable[..., object] | None = None) -> float:
        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                renderer or structlog.processors.JSONRenderer(),
            ],
            logger_factory=structlog.WriteLoggerFactory(null),
            cache_logger_on_first_use=True,
        )
        log = structlog.get_logger("bench")
        if same_fields:
            # The context a user of bare structlog binds for the same line (all but the trace ids).
            log = log.bind(logger="bench", component="auth", correlation_id="req-123", user_id="user-456")
        return _per_op(lambda i: log.info("user action", action="login", status="success", user="u-1", n=i), N_LOG)

    def full() -> float:
        configure_logging(LoggingConfig(stream=null), logger_provider=provider)
        log = get_logger("bench", "auth")
        with LoggingContext(correlation_id="req-123", user_id="user-456"), tracer.start_as_current_span("req"):
            return _per_op(
                lambda i: log.info("user action", action="login", status="success", user="u-1", n=i),
                N_LOG,
                lambda: batch.force_flush(),
            )

    def otel_only() -> float:
        attrs = {"action": "login", "status": "success", "user": "u-1"}
        return _per_op(
            lambda i: otel_logger.emit(severity_number=SeverityNumber.INFO, severity_text="INFO", body="user action", attributes={**attrs, "n": i}),
            N_LOG,
            lambda: batch.force_flush(),
        )

    return _side_by_side(
        {
            "bare structlog JSON": lambda: bare(True),
            "bare structlog JSON, message fields only": lambda: bare(False),
            "bare structlog JSON rendered by orjson": lambda: bare(True, _orjson_renderer),
            "amas-otel full pipeline": full,
            "OTel SDK emit alone": otel_only,
        }
    )


def bench_spans() -> tuple[float, float, float]:
    def provider(redact: bool) -> TracerProvider:
        tp = TracerProvider(active_span_processor=RedactingSpanProcessor(Redactor("medium"))) if redact else TracerProvider()
        tp.add_span_processor(BatchSpanProcessor(_NullSpans(), max_queue_size=2 * N_SPAN, max_export_batch_size=512))
        return tp

    request_ids = [str(uuid.uuid4()) for _ in range(N_SPAN)]
    paths = [f"/api/v1/users/{i}/orders" for i in range(N_SPAN)]
    agents = ["python-requests/2.31.0", "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0", "curl/8.5.0"]

    def run(tp: TracerProvider) -> Callable[[], float]:
        tracer = tp.get_tracer("bench")
        rounds = iter(range(10**9))

        def span(i: int) -> None:
            with tracer.start_as_current_span("GET /api/v1/users/{id}/orders") as s:
                s.set_attributes(
                    {
                        "http.request.method": "GET",
                        "http.route": "/api/v1/users/{id}/orders",
                        "url.path": paths[i],
                        "url.scheme": "https",
                        "http.response.status_code": 200,
                        "server.address": "api.internal",
                        "server.port": 8443,
                        "user_agent.original": agents[i % 3],
                        "amas.request.id": request_ids[i],
                        "amas.component": "orders",
                    }
                )

        # Every case walks the same N_SPAN values in the same order, SPAN_BATCH per round.
        return lambda: _per_op(span, SPAN_BATCH, lambda: tp.force_flush(), next(rounds) * SPAN_BATCH % N_SPAN)

    return _paired(run(provider(False)), run(provider(True)))


def main() -> None:
    logs = bench_logging()
    base_span, redacted_span, span_ratio = bench_spans()
    base_log = logs["bare structlog JSON"]
    def log_row(name: str, case: str, target: str = "") -> tuple[str, float, float, str]:
        return name, logs[case], logs[case] / base_log, target

    rows = [
        log_row("(a) bare structlog JSON, same fields", "bare structlog JSON", "baseline"),
        log_row("(a) amas-otel full pipeline", "amas-otel full pipeline", "<= 1.50x"),
        log_row("    (bare, message fields only)", "bare structlog JSON, message fields only"),
        log_row("    (bare, same fields, orjson renderer)", "bare structlog JSON rendered by orjson"),
        log_row("    (OTel SDK emit alone, for reference)", "OTel SDK emit alone"),
        ("(b) span, 10 attrs, no redaction", base_span, 1.0, "baseline"),
        ("(b) span, 10 attrs, RedactingSpanProcessor", redacted_span, span_ratio, "<= 1.10x"),
    ]
    print(f"{'case':46} {'us/op':>8} {'ratio':>7}  target")
    for name, value, ratio, target in rows:
        print(f"{name:46} {value:8.2f} {ratio:6.2f}x  {target}")
    print(
        f"((a) median of {ROUNDS} interleaved rounds, n={N_LOG}; (b) median of {SPAN_ROUNDS} paired per-round ratios, "
        f"{SPAN_BATCH} spans each, alternating order, {N_SPAN} distinct values; exporter thread work included via force_flush)"
    )


if __name__ == "__main__":
    main()
