"""The OpenTelemetry log bridge: each structlog record counted, a span event for warnings and errors, and an OTel log record.

:class:`OTelLogExport` is the processor (it goes after redaction: what it
exports is what the line shows); :class:`LogRecordCounter` backs the
``amas.log.records`` counter.  Records go out through the logger provider's
``Logger.emit``, or straight into its batch queues when the ``log_export``
fast path (:mod:`amas_otel._fastpath.log_records`) serves.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from opentelemetry import context
from opentelemetry._logs import LogRecord, SeverityNumber, get_logger_provider
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk._logs import ReadWriteLogRecord

from amas_otel import semconv
from amas_otel._counting import Tally
from amas_otel._fastpath.log_records import LOG_EXPORT, LogQueues, Route, emit_directly, sdk_logger_parts
from amas_otel.logging.processors import RecordState, SpanIds, dumps_json, level_name
from amas_otel.scope import amas_meter

__all__ = ["OTelLogExport", "LogRecordCounter", "record_counter", "attribute_value"]

_log = logging.getLogger("amas_otel.logging")

_SEVERITY = {
    "debug": SeverityNumber.DEBUG,
    "info": SeverityNumber.INFO,
    "warning": SeverityNumber.WARN,
    "warn": SeverityNumber.WARN,
    "error": SeverityNumber.ERROR,
    "exception": SeverityNumber.ERROR,
    "critical": SeverityNumber.FATAL,
    "fatal": SeverityNumber.FATAL,
}
_SEVERITY_TEXT = {level: (level.upper(), number) for level, number in _SEVERITY.items()}
_EVENT_LEVELS = frozenset({"warning", "warn", "error", "exception", "critical", "fatal"})
# Keys the OTel record carries elsewhere (body, severity, timestamps, trace context, scope).
_NOT_ATTRIBUTES = frozenset(
    {"event", "level", "timestamp", "logger", "trace_id", "span_id", "event_name", "exception", "_record", "_from_structlog"}
)
_NOT_EVENT_ATTRIBUTES = frozenset(
    {"event", "level", "timestamp", "trace_id", "span_id", "exception", "_record", "_from_structlog"}
)
_PRIMITIVES = frozenset({str, bool, int, float})


def attribute_value(value: Any) -> Any:
    """``value`` as an OTel attribute value: primitives and sequences of them as they are, anything else as text (JSON for containers)."""
    if type(value) in _PRIMITIVES or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, bool, int, float)) for v in value):
        return tuple(value)
    if isinstance(value, (dict, list, tuple)):
        return dumps_json(value, str)
    return str(value)


def _attributes(event_dict: dict[str, Any], skip: frozenset[str]) -> dict[str, Any]:
    """OTel attributes for the fields of ``event_dict`` not in ``skip`` (which holds "exception"); None values dropped."""
    attributes = {}
    for key, value in event_dict.items():
        if key not in skip:
            if type(value) in _PRIMITIVES:
                attributes[key] = value
            elif value is not None:
                attributes[key] = attribute_value(value)
    exception = event_dict.get("exception")
    if exception is not None:
        attributes[semconv.EXCEPTION_STACKTRACE] = str(exception)
    return attributes


class LogRecordCounter:
    """``amas.log.records`` as an observable counter: the hot path steps a lock-free count, collection reads it."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str | None], Tally] = {}
        self._lock = threading.Lock()  # only for a (level, component) seen for the first time
        self._providers: set[int] = set()

    def register(self, meter_provider: Any) -> None:
        """Observe the counts on ``meter_provider`` (once per provider)."""
        if id(meter_provider) in self._providers:
            return
        self._providers.add(id(meter_provider))
        # The one amas_otel scope (version, schema URL), not a second version-less one.
        meter = amas_meter(meter_provider)
        meter.create_observable_counter(
            semconv.LOG_RECORDS, callbacks=[self._observe], unit="{record}", description="Log records by level and component"
        )

    def add(self, level: str, component: str | None) -> None:
        counter = self._counts.get((level, component))
        if counter is None:
            with self._lock:
                counter = self._counts.setdefault((level, component), Tally())
        next(counter)

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        for (level, component), counter in list(self._counts.items()):
            attributes = {semconv.LOG_LEVEL: str(level)}
            if component is not None:
                attributes[semconv.COMPONENT] = str(component)
            yield Observation(counter.value(), attributes)


#: The process's ``amas.log.records`` counts (one counter, whichever pipeline counts).
record_counter = LogRecordCounter()


class _Record(LogRecord):
    """An API log record built from values the pipeline already holds (no second context lookup).

    Slots keep a record small while it waits in a batch queue.
    ``amas_otel_redacted`` tells :class:`~amas_otel.redaction.RedactingLogRecordProcessor`
    the record was cleaned already; ``__copy__`` is the batch processor's
    per-record shallow copy, without :mod:`copy`'s generic reduce protocol.
    """

    __slots__ = _RECORD_FIELDS = (
        "timestamp",
        "observed_timestamp",
        "context",
        "trace_id",
        "span_id",
        "trace_flags",
        "severity_text",
        "severity_number",
        "body",
        "attributes",
        "event_name",
        "exception",
    )
    amas_otel_redacted = True

    def __init__(  # noqa: D107, PLR0913 - every LogRecord field
        self,
        timestamp: int,
        ctx: Any,
        ids: SpanIds,
        severity_text: str,
        severity_number: SeverityNumber,
        body: Any,
        attributes: dict[str, Any],
        event_name: str | None,
    ) -> None:
        self.timestamp = self.observed_timestamp = timestamp
        self.context = ctx
        self.trace_id, self.span_id, self.trace_flags = ids.trace_id, ids.span_id, ids.trace_flags
        self.severity_text = severity_text
        self.severity_number = severity_number
        self.body = body
        self.attributes = attributes
        self.event_name = event_name
        self.exception = None

    def __copy__(self) -> _Record:
        copied = object.__new__(_Record)
        for name in self._RECORD_FIELDS:
            setattr(copied, name, getattr(self, name))
        copied.__dict__.update(self.__dict__)  # whatever a processor added
        return copied


class _WritableRecord(ReadWriteLogRecord):
    """The SDK's writable record, keeping attributes that are already clean when within the limits.

    ``ReadWriteLogRecord`` re-validates every attribute into a
    ``BoundedAttributes``; the pipeline's attributes are primitives (or tuples
    of primitives) by construction, so only the limits need checking.
    """

    def __post_init__(self) -> None:
        if len(self.log_record.attributes) > _attribute_cap(self.limits):
            super().__post_init__()


def _attribute_cap(limits: Any) -> int:
    """How many attributes the SDK keeps as they are under ``limits``; -1 when it would rewrite values (a length limit)."""
    if limits.max_log_record_attribute_length is not None:
        return -1
    return sys.maxsize if limits.max_log_record_attributes is None else limits.max_log_record_attributes


class _Target(NamedTuple):
    """Where one logger name's records go."""

    #: The OTel logger; None for OpenTelemetry's own records (never fed back into the SDK).
    otel_logger: Any
    #: Its record limits when it is an SDK logger the log_export fast path can serve; else None (``Logger.emit``).
    limits: Any
    #: :func:`_attribute_cap` of ``limits``.
    cap: int
    #: The SDK's own record count; None when its internal metrics are off.
    count: Callable[[], None] | None


_NO_TARGET = _Target(None, None, -1, None)
# Read per record as plain globals: Python 3.11 reads an enum member through its
# class with the enum metaclass's attribute hook, on every access.
_EMIT, _NOWHERE = Route.EMIT, Route.NOWHERE
_EMPTY_CONTEXT = context.Context()


def _from_sdk(logger_name: str | None) -> bool:
    """A record of OpenTelemetry's own loggers: never fed back into its spans or log records."""
    return logger_name is not None and logger_name.startswith("opentelemetry")


class OTelLogExport:
    """The export step: count the record, add a span event for a warning or an error, emit it as an OTel log record.

    ``logger_provider`` (default: the global one) gets the records, under the
    record's logger name as instrumentation scope; ``counter`` (default: none)
    counts them; ``state``: the :class:`~amas_otel.logging.processors.RecordState`
    shared with the chain's RecordFields and CorrelationFields (the record's
    time and span, looked up once).  Export trouble is logged at DEBUG and
    never breaks logging.
    """

    def __init__(
        self, *, logger_provider: Any = None, counter: LogRecordCounter | None = None, state: RecordState | None = None
    ) -> None:
        self._provider = logger_provider
        self._counter = counter
        self._loggers: dict[str, _Target] = {}
        self._state = RecordState() if state is None else state
        self._queues = LogQueues()

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        state = self._state
        ctx, span, ids = state.lookup(event_dict)
        self.export(event_dict, level_name(method_name), state.time_of(event_dict), ctx, span, ids)
        return event_dict

    def export(self, event_dict: dict[str, Any], level: str, now: int, ctx: Any, span: Any, ids: SpanIds) -> None:
        """The step's work for the record ``event_dict`` logged at ``level`` at ``now`` (ns), in ``ctx`` inside ``span``."""
        if self._counter is not None:
            # An application's own ``component`` field (LoggingContext(component=...)) counts too.
            self._counter.add(level, event_dict.get(semconv.COMPONENT) or event_dict.get("component"))
        # Not for the SDK's own warnings: it logs some (attribute limits) while holding
        # the span's lock, and adding an event to that span would wait on it forever.
        if level in _EVENT_LEVELS and "event_name" not in event_dict and span.is_recording():
            if not _from_sdk(event_dict.get("logger")):
                attributes = _attributes(event_dict, _NOT_EVENT_ATTRIBUTES)
                attributes[semconv.LOG_LEVEL] = level
                attributes[semconv.LOG_MESSAGE] = str(event_dict.get("event", ""))
                span.add_event(semconv.LOG_EVENT, attributes)
        name = event_dict.get("logger") or semconv.INSTRUMENTATION_SCOPE
        try:
            target = self._loggers.get(name)
            if target is None:
                target = self._loggers.setdefault(name, self._target(name))
            otel_logger, limits, cap, count = target
            if otel_logger is None:
                return
            queues: tuple[Any, ...] | Route = _EMIT
            if limits is not None:
                if LOG_EXPORT.on:
                    try:
                        queues = self._queues.of(otel_logger)
                    except Exception as exc:  # noqa: BLE001 - the fast path is off from now on: Logger.emit
                        LOG_EXPORT.failed(exc)
                    if queues is _NOWHERE:
                        return
                else:
                    limits = None
            attributes = _attributes(event_dict, _NOT_ATTRIBUTES)
            direct = type(queues) is tuple and len(attributes) <= cap
            severity = _SEVERITY_TEXT.get(level)
            body = event_dict.get("event", "")
            record = _Record(
                now,
                # What the batch processor keeps: not the request's context, which may be large.
                _EMPTY_CONTEXT if direct else ctx,
                ids,
                severity[0] if severity else level.upper(),
                severity[1] if severity else SeverityNumber.INFO,
                body if type(body) is str else attribute_value(body),
                attributes,
                event_dict.get("event_name"),
            )
            if direct:
                try:
                    emit_directly(otel_logger, record, limits, count, queues)  # type: ignore[arg-type]
                    return
                except Exception as exc:  # noqa: BLE001 - the fast path is off from now on: Logger.emit
                    LOG_EXPORT.failed(exc)
                    limits = None
            if limits is None:
                otel_logger.emit(record)
            else:
                otel_logger.emit(_WritableRecord(record, otel_logger.resource, otel_logger.instrumentation_scope, limits))
        except Exception:  # noqa: BLE001 - export trouble must not break logging
            _log.debug("amas_otel: cannot export a log record", exc_info=True)

    def _target(self, name: str) -> _Target:
        if _from_sdk(name):
            return _NO_TARGET  # the SDK's own complaints must not feed back into the SDK
        otel_logger = (self._provider or get_logger_provider()).get_logger(name)
        # The limits the SDK would apply itself when turning an API record into a writable one; None
        # (plain Logger.emit) for any other logger, or with the log_export fast path off.
        parts = sdk_logger_parts(otel_logger) if LOG_EXPORT.enabled() else None
        if parts is None:
            return _Target(otel_logger, None, -1, None)
        limits, count = parts
        return _Target(otel_logger, limits, _attribute_cap(limits), count)
