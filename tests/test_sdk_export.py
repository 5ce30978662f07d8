"""amas_otel._fastpath.otlp_spans: the direct OTLP encoder writes what the SDK's encoder writes, and exports over real HTTP."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from amas_otel._fastpath import otlp_spans as _otlp_spans
from amas_otel._fastpath.otlp_spans import EncodingBatchSpanProcessor, FastOTLPSpanExporter, encode_spans
from tests.support.otlp import OtlpReceiver, attributes


def _spans() -> list:
    memory = InMemorySpanExporter()
    providers = []
    for name in ("svc-a", "svc-b"):
        provider = TracerProvider(resource=Resource.create({"service.name": name, "deployment.environment": "test"}))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        providers.append(provider)
    remote = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(1), trace_state=TraceState([("vendor", "v1")]))
    tracer = providers[0].get_tracer("amas.test", "1.0", schema_url="https://opentelemetry.io/schemas/1.21.0")
    with tracer.start_as_current_span(
        "GET /items/{id}",
        context=trace.set_span_in_context(trace.NonRecordingSpan(remote)),
        kind=SpanKind.SERVER,
        attributes={"http.route": "/items/{id}", "ok": True, "no": False, "n": -7, "big": 2**62, "ratio": 0.25,
                    "zero": 0, "fzero": 0.0, "negzero": -0.0, "empty": "", "names": ["a", "b"], "counts": [1, 2], "unicode": "snowman ☃"},
    ) as span:
        span.add_event("amas.log", {"amas.log.level": "warning", "count": 3})
        with tracer.start_as_current_span("inner", links=[Link(remote, {"why": "batch"})]) as inner:
            inner.set_status(Status(StatusCode.ERROR, "boom"))
    providers[0].get_tracer("other").start_span("unscoped-version").end()
    providers[1].get_tracer("amas.test").start_span("second resource", kind=SpanKind.CLIENT).end()
    with providers[0].get_tracer("amas.test", "1.0", schema_url="https://opentelemetry.io/schemas/1.21.0").start_as_current_span("ok") as ok:
        ok.set_status(Status(StatusCode.OK))
    return list(memory.get_finished_spans())


def test_encoding_matches_the_sdk_encoder() -> None:
    spans = _spans()
    encoded = encode_spans(spans)
    assert encoded == sdk_encode_spans(spans).SerializeToString()
    ours = ExportTraceServiceRequest.FromString(encoded)
    assert sum(len(s.spans) for r in ours.resource_spans for s in r.scope_spans) == len(spans) == 5
    # Encoded twice (attribute and resource caches warm): the same bytes.
    assert encode_spans(spans) == encode_spans(spans)


def test_unique_values_beyond_the_cache_bound_encode_the_same() -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("amas.test")
    for i in range(5000):  # more distinct (key, value) pairs and names than the caches hold
        tracer.start_span(f"op-{i}", attributes={"amas.correlation.id": f"id-{i}", "n": i, "ok": True}).end()
    spans = memory.get_finished_spans()
    assert encode_spans(spans) == sdk_encode_spans(spans).SerializeToString()


def test_correlation_ids_do_not_push_repeating_attributes_out_of_the_cache() -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("amas.test")
    for i in range(_otlp_spans._ATTRIBUTE_CACHE_SIZE + 10):  # more unique ids than the cache holds
        tracer.start_span("GET /api", attributes={"http.route": "/api", "amas.correlation.id": f"req-{i}"}).end()
    spans = memory.get_finished_spans()
    encode_spans(spans[:1])
    route = _otlp_spans._attribute_cache[("http.route", str, "/api")]
    assert encode_spans(spans) == sdk_encode_spans(spans).SerializeToString()
    # The route's entry was never evicted, and no id was stored.
    assert _otlp_spans._attribute_cache[("http.route", str, "/api")] is route
    assert not any(key == "amas.correlation.id" for key, _, _ in _otlp_spans._attribute_cache)


def test_unhashable_attribute_values_encode_the_same() -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("amas.test")
    for _ in range(2):  # the second time with the scalar attributes cached
        tracer.start_span("op", attributes={"http.route": "/a", "n": 1, "flag": True, "ratio": 0.5, "map": {"k": "v", "n": 2}}).end()
    spans = memory.get_finished_spans()
    assert encode_spans(spans) == sdk_encode_spans(spans).SerializeToString()


def test_exporter_sends_spans_to_a_real_otlp_receiver(otlp_receiver: OtlpReceiver) -> None:
    exporter = FastOTLPSpanExporter(endpoint=f"{otlp_receiver.endpoint}/v1/traces", timeout=5)
    assert exporter.export(_spans()) is SpanExportResult.SUCCESS
    assert otlp_receiver.wait_for(lambda: len(otlp_receiver.spans()) >= 5)
    server = next(s for s in otlp_receiver.spans() if s.name == "GET /items/{id}")
    assert attributes(server.attributes)["http.route"] == "/items/{id}"
    assert server.parent_span_id == (0x5678).to_bytes(8, "big")
    exporter.shutdown()
    assert exporter.export(_spans()) is SpanExportResult.FAILURE


def _encoding_provider(receiver: OtlpReceiver, **options: Any) -> tuple[TracerProvider, EncodingBatchSpanProcessor, InMemorySpanExporter]:
    """A provider whose spans go to ``receiver`` through an EncodingBatchSpanProcessor, and to memory as the SDK sees them."""
    memory = InMemorySpanExporter()
    processor = EncodingBatchSpanProcessor(FastOTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces", timeout=5), **options)
    provider = TracerProvider(resource=Resource.create({"service.name": "svc-a"}))
    provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, processor, memory


def test_encoding_processor_sends_what_the_sdk_encoder_would(otlp_receiver: OtlpReceiver) -> None:
    provider, processor, memory = _encoding_provider(otlp_receiver)
    tracer = provider.get_tracer("amas.test", "1.0")
    for i in range(3):
        with tracer.start_as_current_span("GET /items/{id}", kind=SpanKind.SERVER, attributes={"http.route": "/items/{id}", "n": i}) as span:
            span.add_event("amas.log", {"amas.log.level": "warning"})
            provider.get_tracer("other").start_span("inner").end()
    assert processor.force_flush()
    sent = [body for path, body in otlp_receiver.raw if path == "/v1/traces"]
    assert sent == [sdk_encode_spans(memory.get_finished_spans()).SerializeToString()]
    provider.shutdown()


def test_encoding_processor_queues_only_sampled_spans_as_bytes_the_collector_never_visits(otlp_receiver: OtlpReceiver) -> None:
    provider, processor, _ = _encoding_provider(otlp_receiver, schedule_delay_millis=60_000)
    tracer = provider.get_tracer("amas.test")
    for i in range(10):
        tracer.start_span(f"op-{i}", attributes={"amas.correlation.id": f"id-{i}", "ok": True}).end()
    unsampled = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(0))
    provider.get_tracer("amas.test").start_span("not sampled", context=trace.set_span_in_context(trace.NonRecordingSpan(unsampled))).end()
    queued = list(processor._batch_processor._queue)
    assert len(queued) == 10 and all(type(item) is tuple for item in queued)
    gc.collect()
    gc.collect()  # a collection untracks a tuple whose items it found untracked: the outer ones on the second pass
    assert not any(gc.is_tracked(item) for item in queued)
    assert processor.force_flush()
    assert sorted(s.name for s in otlp_receiver.spans()) == sorted(f"op-{i}" for i in range(10))
    provider.shutdown()


def test_a_span_the_fast_encoder_fails_on_goes_through_the_sdk_encoder_and_the_fast_path_stops(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    provider, processor, _ = _encoding_provider(otlp_receiver, schedule_delay_millis=60_000)
    tracer = provider.get_tracer("amas.test")
    real = _otlp_spans._span

    def failing(span: Any) -> bytes:
        if span.name == "bad":
            raise ValueError("cannot encode")
        return real(span)

    monkeypatch.setattr(_otlp_spans, "_span", failing)
    for name in ("before", "bad", "after"):
        tracer.start_span(name).end()  # ending "bad" raised nothing
    assert processor.force_flush()
    # Nothing lost: "bad" and everything after it went through the SDK's encoder.
    assert sorted(s.name for s in otlp_receiver.spans()) == ["after", "bad", "before"]
    assert not _otlp_spans.SPAN_EXPORT.on
    warnings = [r for r in caplog.records if "fast path span_export failed" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
    provider.shutdown()


def test_encoding_processor_takes_only_the_fast_exporter() -> None:
    with pytest.raises(TypeError, match="span_exporter must be a FastOTLPSpanExporter, got InMemorySpanExporter"):
        EncodingBatchSpanProcessor(InMemorySpanExporter())  # type: ignore[arg-type]


def test_the_fast_exporter_records_the_sdk_exporters_own_metrics(otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")  # the SDK's switch for them
    reader = InMemoryMetricReader()
    exporter = FastOTLPSpanExporter(endpoint=f"{otlp_receiver.endpoint}/v1/traces", timeout=5, meter_provider=MeterProvider(metric_readers=[reader]))
    spans = _spans()
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exported = [
        point.value
        for rm in reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == "otel.sdk.exporter.span.exported"
        for point in metric.data.data_points
    ]
    assert exported == [len(spans)]
