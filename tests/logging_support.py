"""Shared fixtures for the logging and redaction tests: real SDK providers with in-memory exporters."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import structlog
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from amas_otel import redaction
from amas_otel.logging import CorrelationSpanProcessor, LoggingConfig, configure_logging
from amas_otel.redaction import RedactingLogRecordProcessor, RedactingSpanProcessor


@dataclass
class Pipeline:
    stream: io.StringIO
    tracer_provider: TracerProvider
    spans: InMemorySpanExporter
    logger_provider: LoggerProvider
    logs: InMemoryLogRecordExporter
    meter_provider: MeterProvider
    reader: InMemoryMetricReader

    @property
    def tracer(self) -> Any:
        return self.tracer_provider.get_tracer("test")

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line.strip()]

    def metric_points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        return [
            point
            for rm in (data.resource_metrics if data else [])
            for sm in rm.scope_metrics
            for metric in sm.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


def build_pipeline(**config: Any) -> Pipeline:
    stream = io.StringIO()
    tracer_provider = TracerProvider(active_span_processor=RedactingSpanProcessor())
    spans = InMemorySpanExporter()
    tracer_provider.add_span_processor(CorrelationSpanProcessor())
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logger_provider = LoggerProvider(multi_log_record_processor=RedactingLogRecordProcessor())
    logs = InMemoryLogRecordExporter()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    configure_logging(
        LoggingConfig(stream=stream, **config), logger_provider=logger_provider, meter_provider=meter_provider
    )
    return Pipeline(stream, tracer_provider, spans, logger_provider, logs, meter_provider, reader)


@pytest.fixture
def make_pipeline() -> Iterator[Any]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    root.setLevel(logging.WARNING)  # as in a fresh process: the pipeline's LOG_LEVEL applies to the root logger
    yield build_pipeline
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)
    redaction.configure_redaction(None)  # type: ignore[arg-type]
