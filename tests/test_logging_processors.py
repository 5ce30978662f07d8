"""structlog composability: your processors in amas-otel's chain, amas-otel's processors in yours, and the JSON line's bytes."""

from __future__ import annotations

import datetime
import io
import json
import logging
from typing import Any

import pytest
import structlog
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor, InMemoryLogRecordExporter

from amas_otel.logging import LoggingConfig, configure_logging, get_logger
from amas_otel.logging.bridge import OTelLogExport
from amas_otel.logging.processors import CorrelationFields, ExceptionFields, RecordFields, RecordState, json_renderer, redact
from amas_otel.redaction import RedactingLogRecordProcessor
from tests.support.otlp import OtlpReceiver, attributes

SECRET = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"


def add_payment_token(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """A user's processor: adds a field holding a secret (as enriching processors do, by accident)."""
    event_dict["api_key"] = SECRET
    event_dict["enriched_by"] = "user processor"
    return event_dict


def test_a_user_processor_runs_in_the_chain_and_its_output_is_redacted_in_the_line_and_over_otlp(otlp_receiver: OtlpReceiver) -> None:
    logger_provider = LoggerProvider(multi_log_record_processor=RedactingLogRecordProcessor())
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{otlp_receiver.endpoint}/v1/logs", timeout=5))
    )
    stream = io.StringIO()
    try:
        configure_logging(
            LoggingConfig(stream=stream, enable_metrics=False), processors=[add_payment_token], logger_provider=logger_provider
        )
        get_logger("payments").info("charged")
        logging.getLogger("payments.stdlib").warning("charged by a library")
        assert otlp_receiver.wait_for(lambda: len(otlp_receiver.log_records()) >= 2)
    finally:
        logger_provider.shutdown()
        structlog.reset_defaults()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["charged", "charged by a library"]
    for line in lines:
        assert line["enriched_by"] == "user processor"
        assert line["api_key"].startswith("[REDACTED")
    records = otlp_receiver.log_records()
    assert {record.body.string_value for record in records} == {"charged", "charged by a library"}
    for record in records:
        exported = attributes(record.attributes)
        assert exported["enriched_by"] == "user processor"
        assert exported["api_key"].startswith("[REDACTED")
    assert SECRET.encode() not in otlp_receiver.all_bytes()
    assert SECRET not in stream.getvalue()


def test_amas_otel_processors_in_an_applications_own_structlog_chain() -> None:
    exporter, logger_provider, stream = _in_memory_logs()
    structlog.configure(
        processors=[
            RecordFields(),
            CorrelationFields(),
            ExceptionFields(),
            add_payment_token,
            redact,
            OTelLogExport(logger_provider=logger_provider),
            json_renderer(),
        ],
        logger_factory=structlog.WriteLoggerFactory(stream),
    )
    try:
        structlog.get_logger().warning("own chain", password="hunter2-hunter2")
    finally:
        structlog.reset_defaults()
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["level"] == "warning" and line["timestamp"].endswith("Z")
    assert line["password"].startswith("[REDACTED") and line["api_key"].startswith("[REDACTED")
    (record,) = exporter.get_finished_logs()
    assert record.log_record.body == "own chain"
    assert record.log_record.attributes["api_key"].startswith("[REDACTED")
    assert "hunter2-hunter2" not in stream.getvalue()


class _Structlogged:
    def __structlog__(self) -> str:
        return "via __structlog__"


class _Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


# Each value with the line amas-otel wrote for it before its renderer became structlog's
# JSONRenderer: orjson's compact output, and json's (spaced) for what orjson refuses.
TRICKY = [
    ({"event": "plain", "n": 1, "f": 1.5, "b": True, "none": None}, '{"event":"plain","n":1,"f":1.5,"b":true,"none":null}'),
    ({"event": "non-ASCII é ✓ 😀", "tab": "a\tb\n"}, '{"event":"non-ASCII é ✓ 😀","tab":"a\\tb\\n"}'),
    ({"event": "keys", 1: "int key", None: "none key"}, '{"event":"keys","1":"int key","null":"none key"}'),
    ({"event": "objects", "o": _Opaque(), "s": _Structlogged()}, '{"event":"objects","o":"<opaque>","s":"via __structlog__"}'),
    ({"event": "nested", "d": {"l": [1, (2, 3)], "set": "x"}}, '{"event":"nested","d":{"l":[1,[2,3]],"set":"x"}}'),
    ({"event": "big int", "n": 2**70}, '{"event": "big int", "n": 1180591620717411303424}'),
    ({"event": "tuple key", (1, 2): "v"}, '{"event": "tuple key", "(1, 2)": "v"}'),
    ({"event": "lone \ud800 surrogate"}, '{"event": "lone \ufffd surrogate"}'),
]


@pytest.mark.parametrize(("event_dict", "line"), TRICKY, ids=[case[0]["event"].split()[0] for case in TRICKY])
def test_the_json_renderer_writes_the_bytes_the_pipeline_always_wrote(event_dict: dict[Any, Any], line: str) -> None:
    assert json_renderer()(None, "info", dict(event_dict)) == line


def _in_memory_logs() -> tuple[InMemoryLogRecordExporter, LoggerProvider, io.StringIO]:
    """An exporter keeping the OTel log records, its logger provider, and a stream for the lines."""
    exporter = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(shutdown_on_exit=False)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    return exporter, logger_provider, io.StringIO()


def _line_instants(stream: io.StringIO) -> list[int]:
    """Each JSON line's ``timestamp`` in whole microseconds since the epoch."""
    instants = []
    for text in stream.getvalue().splitlines():
        stamp = datetime.datetime.fromisoformat(json.loads(text)["timestamp"].replace("Z", "+00:00"))
        instants.append((stamp - _EPOCH) // datetime.timedelta(microseconds=1))
    return instants


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize("own_processors", [[], [add_payment_token]], ids=["amas-otel's steps only", "with a user processor"])
def test_the_otel_record_and_the_json_line_carry_the_same_instant(own_processors: list[Any]) -> None:
    exporter, logger_provider, stream = _in_memory_logs()
    try:
        configure_logging(LoggingConfig(stream=stream, enable_metrics=False), processors=own_processors, logger_provider=logger_provider)
        log = get_logger("clock")
        for n in range(20):
            log.info("tick", n=n)
        logging.getLogger("clock.stdlib").warning("tock")
    finally:
        structlog.reset_defaults()
    records = exporter.get_finished_logs()
    assert len(records) == 21
    # The line shows microseconds; the record keeps the same instant in nanoseconds.
    assert [record.log_record.timestamp // 1000 for record in records] == _line_instants(stream)
    assert all(record.log_record.observed_timestamp == record.log_record.timestamp for record in records)


def test_steps_sharing_a_record_state_in_an_own_chain_stamp_the_otel_record_and_the_line_alike() -> None:
    exporter, logger_provider, stream = _in_memory_logs()
    state = RecordState()
    structlog.configure(
        processors=[
            RecordFields(state=state),
            CorrelationFields(state=state),
            add_payment_token,
            redact,
            OTelLogExport(logger_provider=logger_provider, state=state),
            json_renderer(),
        ],
        logger_factory=structlog.WriteLoggerFactory(stream),
    )
    try:
        for n in range(20):
            structlog.get_logger().info("tick", n=n)
    finally:
        structlog.reset_defaults()
    assert [record.log_record.timestamp // 1000 for record in exporter.get_finished_logs()] == _line_instants(stream)


@pytest.mark.parametrize("own_processors", [[], [add_payment_token]], ids=["amas-otel's steps only", "with a user processor"])
def test_correlation_off_leaves_ids_out_of_the_line_but_not_out_of_the_otel_record(own_processors: list[Any]) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from amas_otel.logging import LoggingContext

    exporter, logger_provider, stream = _in_memory_logs()
    try:
        configure_logging(
            LoggingConfig(stream=stream, enable_metrics=False, enable_correlation=False),
            processors=own_processors,
            logger_provider=logger_provider,
        )
        with LoggingContext(correlation_id="req-7"), TracerProvider().get_tracer("t").start_as_current_span("s") as span:
            try:
                raise ValueError("boom")
            except ValueError:
                get_logger("quiet").exception("failed")
    finally:
        structlog.reset_defaults()
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert "trace_id" not in line and "correlation_id" not in line
    assert "ValueError: boom" in line["exception"]
    (record,) = exporter.get_finished_logs()
    assert record.log_record.trace_id == span.get_span_context().trace_id
