"""Structured logging on structlog, correlated and exported through OpenTelemetry: the public names.

One processor chain serves both structlog loggers (:func:`get_logger`) and
records of the standard :mod:`logging` module (uvicorn, libraries): level,
timestamp, trace context (``trace_id``/``span_id`` as 32/16 lower-case hex
digits), the values of the enclosing :class:`LoggingContext`, your own
processors, redaction (:mod:`amas_otel.redaction`), the ``amas.log.records``
count, a span event for warnings and errors, and export as an OTel log
record; then one renderer (JSON lines or console) writes the line.

The work is done in the modules of this package, one job each:
:mod:`~amas_otel.logging.correlation` (LoggingContext in the OTel context and
baggage), :mod:`~amas_otel.logging.processors` (the structlog processors),
:mod:`~amas_otel.logging.bridge` (OTel log records and their count),
:mod:`~amas_otel.logging.pipeline` (setting it all up) and
:mod:`~amas_otel.logging.audit` (audit records); the ASGI correlation
middleware is :mod:`amas_otel._asgi`'s.
"""

from __future__ import annotations

from amas_otel._asgi import CORRELATION_HEADER, CorrelationMiddleware
from amas_otel.logging.audit import SecurityLogger, security_logger
from amas_otel.logging.correlation import (
    CORRELATION_BAGGAGE_KEY,
    CorrelationSpanProcessor,
    LoggingContext,
    current_correlation_id,
)
from amas_otel.logging.pipeline import LogFormat, LoggingConfig, LogLevel, configure_logging, get_logger, route_server_loggers
from amas_otel.logging.processors import exception_type_name, mark_logged
from amas_otel.redaction import SecurityLevel

__all__ = [
    "LogLevel",
    "LogFormat",
    "SecurityLevel",
    "LoggingConfig",
    "configure_logging",
    "get_logger",
    "LoggingContext",
    "current_correlation_id",
    "CorrelationMiddleware",
    "CorrelationSpanProcessor",
    "CORRELATION_HEADER",
    "CORRELATION_BAGGAGE_KEY",
    "SecurityLogger",
    "security_logger",
    "mark_logged",
    "exception_type_name",
    "route_server_loggers",
]
