"""amas_otel._fastpath: the gate (tested versions, self-tests, switching off), and SDK changes simulated by renaming
the private fields the fast paths read: nothing unredacted is exported and nothing is lost."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs import Logger as SDKLogger
from opentelemetry.sdk._logs._internal import LogRecord as APILogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from amas_otel._fastpath import check_all, fast_paths, gate
from amas_otel._fastpath.histogram import HISTOGRAM
from amas_otel._fastpath.log_records import LOG_EXPORT
from amas_otel._fastpath.otlp_spans import SPAN_EXPORT, EncodingBatchSpanProcessor, FastOTLPSpanExporter
from amas_otel._fastpath.span_fields import SPAN_FIELDS
from amas_otel.logging import LoggingConfig, configure_logging, get_logger
from amas_otel.metrics import MetricsService
from amas_otel.redaction import RedactingLogRecordProcessor, RedactingSpanProcessor, Redactor
from amas_otel.semconv import FASTPATH_FAILURES, FASTPATH_NAME, REDACTION_DROPPED, REDACTION_SIGNAL
from tests.support.otlp import OtlpReceiver

SECRET = "hunter2-Sup3rSecret"


@pytest.fixture
def failures() -> Iterator[InMemoryMetricReader]:
    """A reader of the fast paths' failure count (and of anything else counted on the global meter)."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    gate.failures_meter_provider = provider
    yield reader
    gate.failures_meter_provider = None


def _counted(reader: InMemoryMetricReader, name: str) -> dict[tuple[tuple[str, Any], ...], int]:
    data = reader.get_metrics_data()
    return {
        tuple(sorted(point.attributes.items())): point.value
        for rm in (data.resource_metrics if data else ())
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == name
        for point in metric.data.data_points
    }


def _fresh(path: gate.FastPath) -> gate.FastPath:
    path.on, path.checked, path.reason = False, False, "not checked yet"
    return path


# --- the gate ----------------------------------------------------------------------


def test_every_fast_path_is_on_with_the_tested_versions_and_says_which() -> None:
    paths = check_all()
    assert set(paths) == {"span_export", "span_fields", "log_export", "histogram"}
    for path in paths.values():
        assert path.on, path.reason
        assert "opentelemetry-sdk 1.45" in path.reason


def test_an_untested_version_keeps_the_public_path_with_one_warning_naming_it(caplog: pytest.LogCaptureFixture) -> None:
    path = _fresh(SPAN_FIELDS)
    path.tested = {**path.tested, "opentelemetry-sdk": ("1.40", "1.45")}
    with caplog.at_level(logging.WARNING, logger="amas_otel.fastpath"):
        assert not path.check()
        assert not path.check()  # decided once
    warnings = [r.getMessage() for r in caplog.records if r.name == "amas_otel.fastpath"]
    assert len(warnings) == 1
    assert "fast path span_fields is off" in warnings[0] and "opentelemetry-sdk 1.45.2" in warnings[0]


def test_a_failing_self_test_keeps_the_public_path(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    path = _fresh(SPAN_EXPORT)

    def differs() -> None:
        raise AssertionError("encoded canary spans differ")

    monkeypatch.setattr(path, "self_test", differs)
    with caplog.at_level(logging.WARNING, logger="amas_otel.fastpath"):
        assert not path.enabled()
    assert "self-test failed" in path.reason
    assert any("span_export" in r.getMessage() and "canary spans differ" in r.getMessage() for r in caplog.records)


def test_amas_fast_paths_off_keeps_every_public_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMAS_FAST_PATHS", "off")
    for path in fast_paths().values():
        _fresh(path)
    assert not any(path.on for path in check_all().values())


def test_doctor_lists_the_fast_paths(capsys: pytest.CaptureFixture[str], clean_env: pytest.MonkeyPatch) -> None:
    from amas_otel import cli

    clean_env.setenv("OTEL_METRICS_EXPORTER", "none")
    cli.main(["doctor"])
    out = capsys.readouterr().out
    for name in ("span_export", "span_fields", "log_export", "histogram"):
        assert f"fast path {name}: on" in out


# --- spans: a renamed ReadableSpan field -------------------------------------------------

# What a release renaming the snapshot's fields would look like: the constructor stores them under new
# names and the properties read those; the old names are gone (reading them raises, writing them is ignored).
_RENAMED = {"_name": "_name2", "_attributes": "_attributes2", "_events": "_events2", "_links": "_links2", "_status": "_status2", "_context": "_context2"}


def _renaming_init(original: Any) -> Any:
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if type(self) is ReadableSpan:  # finished snapshots; live spans keep their fields
            for old, new in _RENAMED.items():
                setattr(self, new, self.__dict__.pop(old))

    return init


@pytest.fixture
def renamed_span_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    check_all()  # checked on the SDK as installed: the rename happens while the process runs

    def field(old: str) -> Any:
        return lambda self: getattr(self, _RENAMED[old] if type(self) is ReadableSpan else old)

    monkeypatch.setattr(ReadableSpan, "__init__", _renaming_init(ReadableSpan.__init__))
    monkeypatch.setattr(ReadableSpan, "name", property(field("_name")))
    monkeypatch.setattr(ReadableSpan, "attributes", property(lambda self: MappingProxyType(field("_attributes")(self) or {})))
    monkeypatch.setattr(ReadableSpan, "events", property(lambda self: tuple(field("_events")(self))))
    monkeypatch.setattr(ReadableSpan, "links", property(lambda self: tuple(field("_links")(self))))
    monkeypatch.setattr(ReadableSpan, "status", property(field("_status")))
    monkeypatch.setattr(ReadableSpan, "context", property(field("_context")))
    monkeypatch.setattr(ReadableSpan, "get_span_context", field("_context"))
    monkeypatch.setattr(ReadableSpan, "dropped_attributes", property(lambda self: getattr(field("_attributes")(self), "dropped", 0)))
    monkeypatch.setattr(ReadableSpan, "dropped_events", property(lambda self: getattr(field("_events")(self), "dropped", 0)))
    monkeypatch.setattr(ReadableSpan, "dropped_links", property(lambda self: getattr(field("_links")(self), "dropped", 0)))


def _secret_span(provider: TracerProvider) -> None:
    with provider.get_tracer("t").start_as_current_span(f"login token={SECRET}", attributes={"password": SECRET, "route": "/login"}) as span:
        span.add_event("auth", {"token": SECRET})
        span.set_status(StatusCode.ERROR, f"refused password={SECRET}")


@pytest.mark.usefixtures("renamed_span_fields")
def test_renamed_span_fields_nothing_unredacted_reaches_the_exporter(failures: InMemoryMetricReader) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(active_span_processor=RedactingSpanProcessor(Redactor("medium")))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    _secret_span(provider)
    (span,) = memory.get_finished_spans()
    wire = sdk_encode_spans([span]).SerializeToString()
    assert SECRET.encode() not in wire
    assert span.attributes["route"] == "/login" and span.attributes["password"] == "[REDACTED:password]"
    assert not SPAN_FIELDS.on  # the fast reads failed: switched off, counted
    assert _counted(failures, FASTPATH_FAILURES) == {((FASTPATH_NAME, "span_fields"),): 1}


@pytest.mark.usefixtures("renamed_span_fields")
def test_renamed_span_fields_the_exporter_sends_every_span_through_the_sdk_encoder(
    otlp_receiver: OtlpReceiver, failures: InMemoryMetricReader
) -> None:
    exporter = FastOTLPSpanExporter(endpoint=f"{otlp_receiver.endpoint}/v1/traces", timeout=5)
    processor = EncodingBatchSpanProcessor(exporter, schedule_delay_millis=60_000)
    provider = TracerProvider(active_span_processor=RedactingSpanProcessor(Redactor("medium")), resource=Resource.create({"service.name": "s"}))
    provider.add_span_processor(processor)
    _secret_span(provider)
    provider.get_tracer("t").start_span("plain").end()
    assert processor.force_flush()
    assert sorted(s.name for s in otlp_receiver.spans()) == ["login token=[REDACTED:token]", "plain"]
    assert SECRET.encode() not in otlp_receiver.all_bytes()
    assert not SPAN_EXPORT.on
    assert _counted(failures, FASTPATH_FAILURES)[((FASTPATH_NAME, "span_export"),)] == 1
    provider.shutdown()


def test_renamed_span_fields_at_start_the_self_tests_keep_the_public_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    _fresh(SPAN_FIELDS), _fresh(SPAN_EXPORT)
    monkeypatch.setattr(ReadableSpan, "__init__", _renaming_init(ReadableSpan.__init__))
    assert not SPAN_FIELDS.enabled() and "self-test failed" in SPAN_FIELDS.reason
    assert not SPAN_EXPORT.enabled() and "self-test failed" in SPAN_EXPORT.reason


def test_a_span_that_cannot_be_rebuilt_is_dropped_and_counted(monkeypatch: pytest.MonkeyPatch, failures: InMemoryMetricReader) -> None:
    from amas_otel import redaction

    monkeypatch.setattr(gate, "failures_meter_provider", None)
    reader = InMemoryMetricReader()
    monkeypatch.setattr(redaction, "_count_dropped", _counter_into(reader, REDACTION_DROPPED, REDACTION_SIGNAL))

    def refuses(*args: Any, **kwargs: Any) -> None:
        raise TypeError("ReadableSpan() got an unexpected keyword argument 'name'")  # a changed constructor

    monkeypatch.setattr(redaction, "ReadableSpan", refuses)
    memory = InMemorySpanExporter()
    provider = TracerProvider(active_span_processor=RedactingSpanProcessor(Redactor("medium")))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    _secret_span(provider)
    provider.get_tracer("t").start_span("clean").end()  # nothing to redact: sent as it is
    assert [s.name for s in memory.get_finished_spans()] == ["clean"]
    assert _counted(reader, REDACTION_DROPPED) == {((REDACTION_SIGNAL, "span"),): 1}


def _counter_into(reader: InMemoryMetricReader, name: str, attribute: str) -> Any:
    counter = MeterProvider(metric_readers=[reader]).get_meter("t").create_counter(name)
    return lambda signal: counter.add(1, {attribute: signal})


# --- log records -------------------------------------------------------------------------


def test_a_record_whose_redacted_body_does_not_stick_is_dropped_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    from amas_otel import redaction

    reader = InMemoryMetricReader()
    monkeypatch.setattr(redaction, "_count_dropped", _counter_into(reader, REDACTION_DROPPED, REDACTION_SIGNAL))
    # A release whose record keeps its body elsewhere: writing .body no longer changes what exporters read.
    monkeypatch.setattr(APILogRecord, "body", property(lambda self: self.__dict__["_sdk_body"], lambda self, value: None), raising=False)
    original = APILogRecord.__init__

    def init(self: Any, *args: Any, body: Any = None, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.__dict__["_sdk_body"] = body

    monkeypatch.setattr(APILogRecord, "__init__", init)
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(multi_log_record_processor=RedactingLogRecordProcessor(Redactor("medium")))
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    provider.get_logger("lib").emit(APILogRecord(body=f"password={SECRET}"))
    provider.get_logger("lib").emit(APILogRecord(body="all fine"))
    assert [r.log_record.body for r in memory.get_finished_logs()] == ["all fine"]
    assert _counted(reader, REDACTION_DROPPED) == {((REDACTION_SIGNAL, "log_record"),): 1}


def test_renamed_logger_fields_records_go_through_logger_emit(monkeypatch: pytest.MonkeyPatch, failures: InMemoryMetricReader) -> None:
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(
        resource=Resource.create({"service.name": "svc"}), multi_log_record_processor=RedactingLogRecordProcessor()
    )
    batch = BatchLogRecordProcessor(memory, schedule_delay_millis=60_000)
    provider.add_log_record_processor(batch)
    configure_logging(LoggingConfig(stream=io.StringIO(), enable_metrics=False), logger_provider=provider)
    log = get_logger("svc.orders")
    log.info("first", order=1)  # the fast path binds to this logger
    # A release renaming the logger's resource field: the SDK's own code reads the new name, the fast path's read raises.
    sdk_logger = provider.get_logger("svc.orders")
    sdk_logger._resource2 = sdk_logger.__dict__.pop("_resource")
    original_emit = SDKLogger.emit

    def emit(self: Any, *args: Any, **kwargs: Any) -> None:
        self._resource = self._resource2  # stands in for the renamed SDK's own reads
        try:
            original_emit(self, *args, **kwargs)
        finally:
            del self._resource

    monkeypatch.setattr(SDKLogger, "emit", emit)
    log.info("second", password=SECRET)
    log.info("third")
    provider.force_flush()
    records = [r for r in memory.get_finished_logs() if r.instrumentation_scope.name == "svc.orders"]
    assert [r.log_record.body for r in records] == ["first", "second", "third"]
    assert all(r.resource.attributes["service.name"] == "svc" for r in records)
    assert SECRET not in repr([dict(r.log_record.attributes) for r in records])
    assert not LOG_EXPORT.on
    assert _counted(failures, FASTPATH_FAILURES) == {((FASTPATH_NAME, "log_export"),): 1}
    provider.shutdown()


# --- metrics -----------------------------------------------------------------------------


class _RenamedStorages:
    """The SDK's measurement consumer as a release renaming its reader storages would look: what the SDK's
    own recording calls still works, the field the fast path reads is gone."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        if name == "_reader_storages":
            raise AttributeError(name)
        return getattr(self._real, name)


def test_renamed_meter_internals_measurements_go_through_histogram_record(failures: InMemoryMetricReader) -> None:
    reader = InMemoryMetricReader()
    service = MetricsService(meter_provider=MeterProvider(metric_readers=[reader]), system_metrics=False)
    for _ in range(3):  # the first binds, the next two aggregate directly
        service.record_http_request("GET", "/a", 200, 0.01)
    histogram = service._http_duration
    histogram._measurement_consumer = _RenamedStorages(histogram._measurement_consumer)
    for _ in range(2):
        service.record_http_request("GET", "/a", 200, 0.01)
    points = [
        point
        for rm in reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == "http.server.request.duration"
        for point in metric.data.data_points
    ]
    assert sum(point.count for point in points) == 5  # nothing lost
    assert not HISTOGRAM.on
    assert _counted(failures, FASTPATH_FAILURES) == {((FASTPATH_NAME, "histogram"),): 1}
