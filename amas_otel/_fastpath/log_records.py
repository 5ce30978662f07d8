"""Log records put straight into the SDK's batch export queues: what ``Logger.emit`` would queue, without its copies.

The fast path ``log_export`` (:data:`LOG_EXPORT`).  When an SDK logger's
processors are the SDK's ``BatchLogRecordProcessor``\\ s (behind the
redacting chain, which passes records the pipeline cleaned), ``Logger.emit`` would only wrap
the record (a writable copy, then a read-only copy per batch processor) and
queue it: :func:`emit_directly` queues the read-only record itself.  Its
public twin is ``Logger.emit``; the self-test sends a canary record through
both into in-memory exporters and compares what they export.

Also here: whether anything was bound with ``structlog.contextvars``
(:data:`STRUCTLOG_BOUND`), so records outside such a binding skip
``merge_contextvars``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import structlog
from opentelemetry.sdk._logs import Logger as SDKLogger
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

from amas_otel._fastpath.batch_queue import enqueue, enqueues
from amas_otel._fastpath.gate import FastPath
from amas_otel._fastpath.versions import OTEL_SDK, STRUCTLOG

__all__ = ["LOG_EXPORT", "STRUCTLOG_BOUND", "sdk_logger_parts", "LogQueues", "Route", "emit_directly"]

# What the fast path reads of an SDK Logger.
_SDK_LOGGER_INTERNALS = (
    "_log_record_limits",
    "_multi_log_record_processor",
    "_logger_config",
    "_resource",
    "_instrumentation_scope",
    "_logger_metrics",
)


def sdk_logger_parts(otel_logger: Any) -> tuple[Any, Callable[[], None] | None] | None:
    """``(record limits, the SDK's own record count or None when its metrics are off)`` of an SDK logger
    the fast path can serve; None (``Logger.emit`` for everything) otherwise.  The caller asks :data:`LOG_EXPORT` first."""
    if not (isinstance(otel_logger, SDKLogger) and all(hasattr(otel_logger, name) for name in _SDK_LOGGER_INTERNALS)):
        return None
    metrics = otel_logger._logger_metrics  # noqa: SLF001
    counting = type(metrics).__name__ != "NoOpLoggerMetrics"  # the SDK's no-op stand-in when its metrics are off
    return otel_logger._log_record_limits, metrics.emit_log if counting else None  # noqa: SLF001


class Route(enum.Enum):
    """Where a record emitted on an SDK logger goes when not straight into batch queues (:meth:`LogQueues.of`)."""

    #: Nobody reads the records: the logger is disabled, or there is no exporter (``OTEL_LOGS_EXPORTER=none``).
    NOWHERE = "nowhere"
    #: Another processor must get the record: through ``Logger.emit``.
    EMIT = "emit"


class LogQueues:
    """The batch queues a record emitted on an SDK logger ends in when nothing else would see it, kept per processor tuple.

    (Redaction is the provider's processor chain itself, not one of its processors:
    the pipeline's records are redacted already.)
    """

    __slots__ = ("_processors", "_queues")

    def __init__(self) -> None:
        self._processors: Any = None
        self._queues: tuple[Any, ...] | Route = Route.EMIT

    def of(self, otel_logger: Any) -> tuple[Any, ...] | Route:
        """The queues to put the record in (at least one), or the :class:`Route` it takes instead."""
        if not otel_logger._logger_config.is_enabled:  # noqa: SLF001 - Logger.emit's first check
            return Route.NOWHERE
        processors = otel_logger._multi_log_record_processor._log_record_processors  # noqa: SLF001
        if processors is self._processors:  # the SDK replaces the tuple whenever a processor is added
            return self._queues
        queues: tuple[Any, ...] = ()
        for processor in processors:
            queue = getattr(processor, "_batch_processor", None) if type(processor) is BatchLogRecordProcessor else None
            if not enqueues(queue):
                self._processors, self._queues = processors, Route.EMIT
                return Route.EMIT
            queues += (queue,)
        self._processors, self._queues = processors, queues or Route.NOWHERE
        return self._queues


class _ReadableRecord(ReadableLogRecord):
    """The batch processor's read-only record, in slots; frozen, so :func:`emit_directly` fills it through the descriptors."""

    __slots__ = ("log_record", "resource", "instrumentation_scope", "limits")


_new_readable = object.__new__
_set_log_record = _ReadableRecord.log_record.__set__  # type: ignore[attr-defined]
_set_resource = _ReadableRecord.resource.__set__  # type: ignore[attr-defined]
_set_scope = _ReadableRecord.instrumentation_scope.__set__  # type: ignore[attr-defined]
_set_limits = _ReadableRecord.limits.__set__  # type: ignore[attr-defined]


def emit_directly(otel_logger: Any, record: Any, limits: Any, count: Callable[[], None] | None, queues: tuple[Any, ...]) -> None:
    """What ``otel_logger.emit(record)`` and each batch processor's ``on_emit`` would queue, queued.

    ``record`` must hold valid attribute values within ``limits`` (the caller checks).
    """
    readable = _new_readable(_ReadableRecord)  # no __init__ frame per record
    _set_log_record(readable, record)
    _set_resource(readable, otel_logger._resource)  # noqa: SLF001
    _set_scope(readable, otel_logger._instrumentation_scope)  # noqa: SLF001
    _set_limits(readable, limits)
    if count is not None:
        count()  # the SDK's own log count
    for queue in queues:
        enqueue(queue, readable)


def _self_test() -> None:
    """A canary record through :func:`emit_directly` and through ``Logger.emit``: the exporters get equal records."""
    from opentelemetry._logs import LogRecord, SeverityNumber
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
    from opentelemetry.sdk.resources import Resource

    exported = []
    for direct in (True, False):
        exporter = InMemoryLogRecordExporter()
        provider = LoggerProvider(resource=Resource.create({"service.name": "amas-otel-canary"}), shutdown_on_exit=False)
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter, schedule_delay_millis=60_000))
        otel_logger = provider.get_logger("amas_otel.canary", "1.0")
        record = LogRecord(
            timestamp=1_700_000_000_123_456_789,
            observed_timestamp=1_700_000_000_123_456_789,
            trace_id=0x0AF7651916CD43DD8448EB211C80319C,
            span_id=0xB7AD6B7169203331,
            trace_flags=1,
            severity_text="WARN",
            severity_number=SeverityNumber.WARN,
            body="canary",
            attributes={"component": "canary", "count": 3, "ok": True, "ratio": 0.5, "tags": ("a", "b")},
            event_name="amas.canary",
        )
        if direct:
            parts = sdk_logger_parts(otel_logger)
            queues = LogQueues().of(otel_logger)
            if parts is None or isinstance(queues, Route):
                raise AssertionError("the SDK logger's layout is not the one the fast path reads")
            emit_directly(otel_logger, record, parts[0], parts[1], queues)
        else:
            otel_logger.emit(record)
        provider.force_flush()
        exported.append([item.to_json() for item in exporter.get_finished_logs()])
        provider.shutdown()
    if exported[0] != exported[1] or len(exported[0]) != 1:
        raise AssertionError(f"canary log records differ: direct {exported[0]!r}, Logger.emit {exported[1]!r}")


LOG_EXPORT = FastPath("log_export", OTEL_SDK, _self_test)

# structlog's registry of the variables bind_contextvars created (empty until one is bound), when the
# installed structlog is one this was tested with; otherwise a non-empty stand-in: always merge.
STRUCTLOG_BOUND: Any = (
    structlog.contextvars._CONTEXT_VARS  # noqa: SLF001
    if FastPath.within_tested(STRUCTLOG) and isinstance(getattr(structlog.contextvars, "_CONTEXT_VARS", None), dict)
    else {"always": "merge"}
)
