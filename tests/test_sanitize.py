"""Inputs that used to raise or lose records: lone surrogates, tuple keys, a record the OTLP encoder refuses."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExportResult
from opentelemetry.sdk.resources import Resource

from amas_otel import _sanitize, semconv
from amas_otel._sanitize import RecordIsolatingLogExporter, valid_text
from amas_otel.logging import LoggingConfig, configure_logging, get_logger
from amas_otel.redaction import RedactingLogRecordProcessor
from tests.conftest import PYTHON, python_env
from tests.support.otlp import OtlpReceiver, attributes


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as rx:
        yield rx


def _strict_stream() -> io.TextIOWrapper:
    """A stream that refuses what UTF-8 cannot encode, as sys.stdout does."""
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)


def _lines(stream: io.TextIOWrapper) -> list[str]:
    return stream.buffer.getvalue().decode("utf-8").splitlines()  # type: ignore[attr-defined]


def test_valid_text_replaces_lone_surrogates_and_joins_pairs() -> None:
    assert valid_text("a\udcffb\ud800") == "a\ufffdb\ufffd"
    assert valid_text("smile \ud83d\ude00") == "smile \U0001f600"


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_logging_calls_with_lone_surrogates_or_tuple_keys_never_raise_nor_lose_their_line(make_pipeline: Any, fmt: str) -> None:
    stream = _strict_stream()
    configure_logging(LoggingConfig(stream=stream, format=fmt, enable_metrics=False))
    before = _sanitize._sanitized.value()  # noqa: SLF001 - the module's own count
    log = get_logger("svc")
    log.info("bad \ud800 message", value="x\udcff", nested={"k": ["\ud800"]}, table={("a", 1): "tuple key"})
    log.info("second", **{"key\udcff": "v"})
    logging.getLogger("lib").warning("stdlib %s", "\ud800")
    lines = _lines(stream)
    assert len(lines) == 3
    assert "bad \ufffd message" in lines[0] and "tuple key" in lines[0]
    assert "key\ufffd" in lines[1] and "stdlib \ufffd" in lines[2]
    if fmt == "json":
        first = json.loads(lines[0])
        assert first["value"] == "x\ufffd" and first["nested"] == {"k": ["\ufffd"]} and first["table"] == {"('a', 1)": "tuple key"}
    assert _sanitize._sanitized.value() - before >= 5  # noqa: SLF001


def test_one_bad_record_never_takes_the_otlp_batch_down(receiver: OtlpReceiver, make_pipeline: Any) -> None:
    provider = LoggerProvider(multi_log_record_processor=RedactingLogRecordProcessor())
    exporter = RecordIsolatingLogExporter(OTLPLogExporter(endpoint=f"{receiver.endpoint}/v1/logs", timeout=5))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter, max_export_batch_size=512, schedule_delay_millis=60_000))
    stream = _strict_stream()
    configure_logging(LoggingConfig(stream=stream, enable_metrics=False), logger_provider=provider)
    log = get_logger("batch")
    start = len(receiver.log_records())
    for i in range(100):
        log.info("good", n=i)
    log.info("surrogate in the message \udcff")
    log.info("surrogate in a value", value="\ud800")
    # Records from other sources pass the redacting processor, whose keys are not rewritten: the exporter's guard.
    provider.get_logger("foreign").emit(LogRecord(body="foreign", attributes={"key\ud800": "v"}))
    for i in range(100, 200):
        log.info("good", n=i)
    assert provider.force_flush(10_000)
    assert receiver.wait_for(lambda: len(receiver.log_records()) - start >= 203)
    records = receiver.log_records()[start:]
    bodies = [r.body.string_value for r in records]
    assert len(records) == 203 and bodies.count("good") == 200
    assert "surrogate in the message \ufffd" in bodies and "foreign" in bodies
    foreign = next(r for r in records if r.body.string_value == "foreign")
    assert attributes(foreign.attributes) == {"key\ufffd": "v"}
    assert len(_lines(stream)) == 202
    provider.shutdown()



def _record(body: str, trace_id: Any = 0) -> ReadableLogRecord:
    return ReadableLogRecord(LogRecord(body=body, trace_id=trace_id, span_id=0, timestamp=1), Resource.create({}))


def test_a_record_that_cannot_be_encoded_is_dropped_alone_counted_and_reported(
    receiver: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = RecordIsolatingLogExporter(OTLPLogExporter(endpoint=f"{receiver.endpoint}/v1/logs", timeout=5))
    start = len(receiver.log_records())
    dropped = _sanitize._dropped.value()  # noqa: SLF001
    batch = [_record(f"r{i}") for i in range(20)]
    batch[7] = _record("refused", trace_id="not a number")
    with caplog.at_level(logging.ERROR, logger="amas_otel.export"):
        assert exporter.export(batch) is LogRecordExportResult.SUCCESS
    assert receiver.wait_for(lambda: len(receiver.log_records()) - start >= 19)
    bodies = [r.body.string_value for r in receiver.log_records()[start:]]
    assert sorted(bodies) == sorted(f"r{i}" for i in range(20) if i != 7)
    assert _sanitize._dropped.value() == dropped + 1  # noqa: SLF001
    assert [r.getMessage() for r in caplog.records if "dropped a log record" in r.getMessage()]
    # Lines about dropped records are not held back by the exporters' once-a-minute filter.
    assert not logging.getLogger("amas_otel.export").filters


def test_a_failure_that_is_not_about_encoding_is_returned_as_it_was() -> None:
    # A closed loopback port: the exporter fails to send, every record encodes.
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    exporter = RecordIsolatingLogExporter(OTLPLogExporter(endpoint=f"http://127.0.0.1:{port}/v1/logs", timeout=0.5))
    dropped, sanitized = _sanitize._dropped.value(), _sanitize._sanitized.value()  # noqa: SLF001
    assert exporter.export([_record("a"), _record("b")]) is LogRecordExportResult.FAILURE
    assert (_sanitize._dropped.value(), _sanitize._sanitized.value()) == (dropped, sanitized)  # noqa: SLF001


CHILD = textwrap.dedent(
    """
    import amas_otel
    from amas_otel.logging import get_logger
    amas_otel.configure(service_name="sanitize-e2e")
    log = get_logger("e2e")
    for i in range(50):
        log.info("good", n=i)
    log.info("bad \\udcff", value="\\ud800", table={("a", 1): 2})
    amas_otel.shutdown(10)
    """
)


@pytest.mark.slow
def test_configure_exports_every_record_and_counts_the_sanitised_values(receiver: OtlpReceiver) -> None:
    env = python_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_TRACES_EXPORTER="none",
        OTEL_LOGS_EXPORTER="otlp",
        PROMETHEUS_ENABLED="false",
        PYTHONIOENCODING="utf-8:strict",
    )
    start = len(receiver.log_records())
    child = subprocess.run([PYTHON, "-c", CHILD], env=env, capture_output=True, timeout=60)
    assert child.returncode == 0, child.stderr.decode(errors="replace")[-3000:]
    assert receiver.wait_for(lambda: len(receiver.log_records()) - start >= 51)
    bodies = [r.body.string_value for r in receiver.log_records()[start:]]
    assert bodies.count("good") == 50 and "bad \ufffd" in bodies
    assert len(child.stdout.decode("utf-8").splitlines()) == 51
    assert receiver.wait_for(lambda: semconv.SANITIZED_VALUES in receiver.metric_names(), timeout=5)
