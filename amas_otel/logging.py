"""Structured logging on structlog, correlated and exported through OpenTelemetry.

One processor chain serves both structlog loggers (:func:`get_logger`) and
records of the standard :mod:`logging` module (uvicorn, libraries): level,
timestamp, trace context (``trace_id``/``span_id`` as 32/16 lower-case hex
digits), the values of the enclosing :class:`LoggingContext`, redaction
(:mod:`amas_otel.redaction`), the ``amas.log.records`` count, a span event for
warnings and errors, and export as an OTel log record; then one renderer
(JSON lines or console) writes the line.

:class:`LoggingContext` values live in the OpenTelemetry context (and in W3C
baggage, so instrumented outgoing requests carry them to other services);
contextvars carry them across ``await``, ``asyncio.create_task`` and
``asyncio.to_thread``.  :class:`CorrelationSpanProcessor` copies them onto
every span started inside the context.
"""

from __future__ import annotations

import datetime
import enum
import json
import logging as _stdlib_logging
import os
import re
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
import structlog
from structlog.contextvars import merge_contextvars
from opentelemetry import baggage, context, trace
from opentelemetry._logs import LogRecord, SeverityNumber, get_logger_provider
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.metrics import CallbackOptions, Observation, get_meter_provider
from opentelemetry.sdk._logs import ReadWriteLogRecord
from opentelemetry.sdk.trace import SpanProcessor

from amas_otel import semconv
from amas_otel._fastpath.context_keys import BAGGAGE_KEY, SPAN_KEY
from amas_otel._fastpath.log_records import LOG_EXPORT, STRUCTLOG_BOUND, LogQueues, emit_directly, sdk_logger_parts
from amas_otel._fastpath.span_fields import set_valid_attributes
from amas_otel._counting import Tally
from amas_otel._sanitize import encodable
from amas_otel.baggage_limits import cap_baggage
from amas_otel.config import ConfigError
from amas_otel.scope import amas_meter
from amas_otel.redaction import (
    Redactor,
    SecurityLevel,
    configure_redaction,
    get_redactor,
)

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
    "SecurityLogger",
    "security_logger",
    "mark_logged",
    "exception_type_name",
    "route_server_loggers",
]

#: HTTP header carrying the correlation id in and out.
CORRELATION_HEADER = "X-Correlation-ID"
#: Baggage entry carrying the correlation id between services.
CORRELATION_BAGGAGE_KEY = "correlation_id"

_internal = _stdlib_logging.getLogger("amas_otel.logging")


class LogLevel(str, enum.Enum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


class LogFormat(str, enum.Enum):
    JSON = "json"
    CONSOLE = "console"


def _enum(kind: type[enum.Enum], value: Any, name: str, normalise: Callable[[str], str]) -> Any:
    try:
        return kind(normalise(str(getattr(value, "value", value)).strip()))
    except ValueError:
        accepted = ", ".join(member.value for member in kind)  # type: ignore[attr-defined]
        raise ConfigError([f"LoggingConfig.{name}: {value!r} is not accepted; expected one of {accepted}"]) from None


@dataclass(frozen=True)
class LoggingConfig:
    """What :func:`configure_logging` sets up; strings are accepted for the enum fields.

    ``redact_patterns`` are ``LOG_REDACT_PATTERNS`` entries (key names or
    regular expressions), ``allow_keys`` extends the ``maximum`` level's
    allow-list, ``stream`` is where lines go (default: ``sys.stdout``, the embedded default).
    """

    level: LogLevel = LogLevel.INFO
    format: LogFormat = LogFormat.JSON
    security_level: SecurityLevel = SecurityLevel.MEDIUM
    enable_correlation: bool = True
    enable_metrics: bool = True
    enable_audit: bool = True
    redact_patterns: tuple[str, ...] = ()
    allow_keys: tuple[str, ...] = ()
    stream: IO[str] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", _enum(LogLevel, self.level, "level", str.upper))
        object.__setattr__(self, "format", _enum(LogFormat, self.format, "format", str.lower))
        object.__setattr__(self, "security_level", _enum(SecurityLevel, self.security_level, "security_level", str.lower))
        for name in ("redact_patterns", "allow_keys"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))

    @classmethod
    def from_settings(cls, settings: Any = None) -> LoggingConfig:
        """The configuration described by ``LOG_*`` settings (``get_settings().logging`` by default)."""
        if settings is None:
            from amas_otel.config import get_settings

            settings = get_settings().logging
        return cls(
            level=settings.level,
            format=settings.format,
            security_level=settings.security_level,
            enable_correlation=settings.enable_correlation,
            enable_metrics=settings.enable_metrics,
            enable_audit=settings.enable_audit,
            redact_patterns=settings.redact_patterns,
        )


# --- correlation ---------------------------------------------------------------


_CONTEXT_KEY = context.create_key("amas_otel.logging_context")
_CORRELATION_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def _context_values(ctx: context.Context | None = None) -> dict[str, Any] | None:
    return context.get_value(_CONTEXT_KEY, ctx)  # type: ignore[return-value]


def current_correlation_id() -> str | None:
    """The correlation id of the current context (LoggingContext, else baggage), or None."""
    values = _context_values()
    if values and values.get("correlation_id") is not None:
        return str(values["correlation_id"])
    found = baggage.get_baggage(CORRELATION_BAGGAGE_KEY)
    return None if found is None else str(found)


class LoggingContext:
    """Values attached to every log record and span inside the block.

    ``with LoggingContext(correlation_id="req-1", user_id="u-2"): ...`` or
    ``async with``.  Contexts nest (inner values win, outer ones stay); ``None``
    values are ignored.  The values live in the OpenTelemetry context and in
    baggage (as strings), so they follow ``await``, tasks and context-copying
    thread pools, and W3C propagation sends them on outgoing requests.
    """

    def __init__(self, **values: Any) -> None:
        self.values = {key: value for key, value in values.items() if value is not None}
        self._tokens: list[object] = []

    def __enter__(self) -> LoggingContext:
        # No values (``LoggingContext(correlation_id=None)``): nothing to add, no context switch.
        self._tokens.append(context.attach(_context_with(self.values)) if self.values else None)
        return self

    def __exit__(self, *exc: Any) -> None:
        token = self._tokens.pop()
        if token is not None:
            context.detach(token)

    async def __aenter__(self) -> LoggingContext:
        return self.__enter__()

    async def __aexit__(self, *exc: Any) -> None:
        self.__exit__(*exc)


def _context_with(values: dict[str, Any], base: context.Context | None = None) -> context.Context:
    """``base`` (default: the current context) plus ``values``, both as LoggingContext values and as baggage (strings).

    One new context built in one go: what ``set_value`` followed by a
    ``set_baggage`` per value gives, without a context copy per step.
    """
    current = context.get_current() if base is None else base
    outer = current.get(_CONTEXT_KEY)
    merged = {**outer, **values} if outer else dict(values)
    if BAGGAGE_KEY is None:  # the API keeps baggage another way: its public setter, once per value
        built = context.set_value(_CONTEXT_KEY, merged, current)
        for key, value in values.items():
            built = baggage.set_baggage(key, str(value), built)
        return built
    entries = current.get(BAGGAGE_KEY)
    bag = dict(entries) if entries else {}  # type: ignore[call-overload]
    for key, value in values.items():
        bag[key] = str(value)
    return context.Context({**current, _CONTEXT_KEY: merged, BAGGAGE_KEY: bag})  # type: ignore[dict-item]


def _span_attribute(key: str) -> str:
    if key == "correlation_id":
        return semconv.CORRELATION_ID
    if key == "user_id":
        return semconv.USER_ID
    return semconv.CONTEXT_PREFIX + key


class CorrelationSpanProcessor(SpanProcessor):
    """Sets the enclosing :class:`LoggingContext` values (or a baggage correlation id) on each span it starts."""

    def on_start(self, span: Any, parent_context: context.Context | None = None) -> None:
        # Two dict lookups on one context when there is nothing to copy.
        ctx = context.get_current() if parent_context is None else parent_context
        # The values are made valid attribute values here (_primitive), so they
        # are written without the SDK validating them again.
        values = ctx.get(_CONTEXT_KEY)
        if values:
            if len(values) == 1 and "correlation_id" in values:  # type: ignore[arg-type] # the per-request case
                set_valid_attributes(span, {semconv.CORRELATION_ID: _primitive(values["correlation_id"])})  # type: ignore[index]
            else:
                set_valid_attributes(span, {_span_attribute(k): _primitive(v) for k, v in values.items()})  # type: ignore[attr-defined]
            return
        entries = ctx.get(BAGGAGE_KEY) if BAGGAGE_KEY is not None else baggage.get_all(ctx)
        found = entries.get(CORRELATION_BAGGAGE_KEY) if entries else None  # type: ignore[attr-defined]
        if found is not None:
            set_valid_attributes(span, {semconv.CORRELATION_ID: str(found)})

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _primitive(value: Any) -> Any:
    return value if isinstance(value, (str, bool, int, float)) else str(value)


def _valid_correlation_id(raw: str | None) -> str | None:
    if raw is None:
        return None
    raw = raw.strip()
    return raw if _CORRELATION_ID.fullmatch(raw) else None


class CorrelationMiddleware:
    """Pure ASGI middleware: one correlation id per request, in context and on the response.

    The id comes from the ``X-Correlation-ID`` request header, else from the
    ``correlation_id`` entry of the W3C ``baggage`` header, else a new UUID;
    values that are not 1-128 characters of ``A-Z a-z 0-9 . _ : -`` are
    replaced (no log injection).  The request runs inside
    ``LoggingContext(correlation_id=...)``, the current span gets
    ``amas.correlation.id``, and the response carries ``X-Correlation-ID``.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], *, header: str = CORRELATION_HEADER) -> None:
        self.app = app
        self._header = _header_name(header)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        correlation_id = _request_correlation_id(scope.get("headers") or (), self._header)
        header = self._header
        added = ((header, correlation_id.encode("latin-1")),)

        async def send_with_header(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = _with_headers(message, added, header)
            await send(message)

        # What ``LoggingContext(correlation_id=...)`` does, without the object.
        token = context.attach(_context_with({"correlation_id": correlation_id}))
        try:
            span = trace.get_current_span()
            if span.is_recording():
                span.set_attribute(semconv.CORRELATION_ID, correlation_id)
            await self.app(scope, receive, send_with_header)
        finally:
            context.detach(token)


def _header_name(header: str) -> bytes:
    """``header`` as ASGI servers hand request header names over: lower-cased bytes."""
    return header.lower().encode("latin-1")


def _request_correlation_id(
    headers: Iterable[tuple[bytes, bytes]], header: bytes, extracted: context.Context | None = None
) -> str:
    """A request's correlation id, for :class:`CorrelationMiddleware` and amas_otel.fastapi's request middleware.

    From ``header`` (a lower-cased name), else from the ``correlation_id``
    baggage entry, else a new UUID; values that are not 1-128 characters of
    ``A-Z a-z 0-9 . _ : -`` are not taken (no log injection).  ``extracted``:
    the context the request's ``baggage`` header was already parsed into (by
    the global propagator), so the header is parsed once per request.
    """
    # ASGI servers hand request header names over lower-cased.
    baggage_header = None
    for name, value in headers:
        if name == header:
            found = _valid_correlation_id(value.decode("latin-1"))
            if found:
                return found
        elif name == b"baggage":
            baggage_header = value.decode("latin-1")
    if baggage_header:
        if extracted is None:
            extracted = W3CBaggagePropagator().extract({"baggage": cap_baggage(baggage_header)})
        found = _valid_correlation_id(_as_str(baggage.get_baggage(CORRELATION_BAGGAGE_KEY, extracted)))
        if found:
            return found
    return _new_correlation_id()


_Header = tuple[bytes, bytes]


def _with_headers(
    message: MutableMapping[str, Any], added: Sequence[_Header], replaced: bytes = b""
) -> MutableMapping[str, Any]:
    """``message`` (an ``http.response.start``) with ``added`` after the application's headers.

    ``replaced`` (a lower-cased name, e.g. the correlation header's) drops the
    application's own headers of that name, in any case: the added one replaces
    them rather than going out twice.  The one place response headers are
    added: CorrelationMiddleware, RateLimitMiddleware and the request
    middleware (RateLimit-* and the correlation header in one list).

    A copy, not ``message`` changed in place: an application may send the same
    dict on every response (or from concurrent requests), and changed in place
    it would carry one request's headers into the next; copying a three-key
    dict costs a few hundred instructions.
    """
    headers = message.get("headers") or ()
    if replaced:
        # ASGI does not promise lower-cased names from an application, so any case
        # must match; lower() (an allocation) only for names of the right length.
        size = len(replaced)
        for name, _ in headers:
            if len(name) == size and name.lower() == replaced:
                headers = [h for h in headers if h[0].lower() != replaced]
                break
    copy = dict(message)
    copy["headers"] = [*headers, *added]
    return copy


def _new_correlation_id() -> str:
    """A random (version 4) UUID string, as ``str(uuid.uuid4())`` gives, without building a UUID object."""
    while True:
        try:
            return _id_pool.pop()
        except IndexError:
            _fill_id_pool()


def _fill_id_pool() -> None:
    # One urandom read per batch of ids rather than a system call per request.
    h = os.urandom(16 * _ID_POOL_SIZE).hex()
    # Version nibble 4; variant bits 10xx (RFC 4122) in the next group's first nibble.
    _id_pool.extend(
        f"{h[i:i + 8]}-{h[i + 8:i + 12]}-4{h[i + 13:i + 16]}-{_UUID_VARIANT[h[i + 16]]}{h[i + 17:i + 20]}-{h[i + 20:i + 32]}"
        for i in range(0, len(h), 32)
    )


_UUID_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
_ID_POOL_SIZE = 64
_id_pool: list[str] = []
# A forked worker must not hand out the ids its parent had drawn.
os.register_at_fork(after_in_child=_id_pool.clear)


def _as_str(value: object) -> str | None:
    return None if value is None else str(value)


# --- processors ----------------------------------------------------------------

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


_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def _dumps(value: Any, default: Callable[[Any], Any]) -> str:
    """``value`` as JSON text, non-ASCII kept as is; never raises for a key or a string.

    orjson renders a log line several times faster than :func:`json.dumps`
    (which builds a new encoder per call when given options); what it refuses,
    such as integers beyond 64 bits, keys that are tuples or strings holding
    lone surrogates, goes through :mod:`json` instead, with keys JSON cannot
    hold written as text and the result made encodable (see :mod:`amas_otel._sanitize`).
    """
    try:
        return orjson.dumps(value, default=default, option=_ORJSON_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        pass
    try:
        text = json.dumps(value, default=default, ensure_ascii=False)
    except TypeError:  # keys json cannot hold either
        text = json.dumps(_text_keys(value), default=default, ensure_ascii=False)
    return encodable(text)


def _text_keys(value: Any) -> Any:
    """``value`` with every mapping key that is not a JSON scalar written as ``str(key)``."""
    if isinstance(value, dict):
        return {
            (k if k is None or isinstance(k, (str, int, float, bool)) else str(k)): _text_keys(v) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_text_keys(v) for v in value]
    return value


def _structlog_default(value: Any) -> Any:
    """structlog's JSONRenderer fallback: ``__structlog__()`` when defined, else ``repr``."""
    try:
        return value.__structlog__()
    except AttributeError:
        return repr(value)


def _render_json(logger: Any, method_name: str, event_dict: dict[str, Any]) -> str:
    """The JSON line renderer (structlog's ``JSONRenderer`` contract, rendered by orjson)."""
    return _dumps(event_dict, _structlog_default)


def _encodable_lines(renderer: Callable[..., str]) -> Callable[..., str]:
    """``renderer`` whose lines UTF-8 can always encode (a key may still hold a lone surrogate)."""

    def render(logger: Any, method_name: str, event_dict: dict[str, Any]) -> str:
        return encodable(renderer(logger, method_name, event_dict))

    return render


def _attribute_value(value: Any) -> Any:
    if type(value) in _PRIMITIVES or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, bool, int, float)) for v in value):
        return tuple(value)
    if isinstance(value, (dict, list, tuple)):
        return _dumps(value, str)
    return str(value)


def _attributes(event_dict: dict[str, Any], skip: frozenset[str]) -> dict[str, Any]:
    """OTel attributes for the fields of ``event_dict`` not in ``skip`` (which holds "exception"); None values dropped."""
    attributes = {}
    for key, value in event_dict.items():
        if key not in skip:
            if type(value) in _PRIMITIVES:
                attributes[key] = value
            elif value is not None:
                attributes[key] = _attribute_value(value)
    exception = event_dict.get("exception")
    if exception is not None:
        attributes[semconv.EXCEPTION_STACKTRACE] = str(exception)
    return attributes


class _LogRecordCounter:
    """``amas.log.records`` as an observable counter: the hot path steps a lock-free count, collection reads it."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str | None], Tally] = {}
        self._lock = threading.Lock()  # only for a (level, component) seen for the first time
        self._providers: set[int] = set()

    def register(self, meter_provider: Any) -> None:
        if id(meter_provider) in self._providers:
            return
        self._providers.add(id(meter_provider))
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


_record_counter = _LogRecordCounter()


# (span context, trace id and span id as the OTel spec writes them (32 and 16 lower-case hex digits; None
# outside a span), trace id, span id, trace flags): SpanContext's fields are properties, read once per span.
_SpanIds = tuple[Any, str | None, str | None, int, int, Any]


class _Record(LogRecord):
    """An API log record built from values the pipeline already holds (no second context lookup).

    Slots keep a record small while it waits in a batch queue.
    ``_amas_redacted`` tells :class:`~amas_otel.redaction.RedactingLogRecordProcessor`
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
    _amas_redacted = True

    def __init__(  # noqa: D107, PLR0913 - every LogRecord field
        self,
        timestamp: int,
        ctx: Any,
        ids: _SpanIds,
        severity_text: str,
        severity_number: SeverityNumber,
        body: Any,
        attributes: dict[str, Any],
        event_name: str | None,
    ) -> None:
        self.timestamp = self.observed_timestamp = timestamp
        self.context = ctx
        self.trace_id, self.span_id, self.trace_flags = ids[3], ids[4], ids[5]
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


_EMPTY_CONTEXT = context.Context()


class _RecordProcessor:
    """Context variables, level, logger name, timestamp, correlation, exception rendering, redaction, counting,
    span event and OTel export, in one pass.

    One processor instead of ten: the current context is read once, the
    trace ids are formatted once per span, the timestamp is taken once for
    the line and the OTel record, and the OTel record is built directly from
    the cleaned event dict.  Each step does exactly what the separate
    structlog processor would (``merge_contextvars``, ``add_log_level``,
    ``TimeStamper(fmt="iso", utc=True)``, ``StackInfoRenderer``,
    ``format_exc_info``) with identical output.
    """

    def __init__(
        self,
        redactor: Redactor,
        *,
        correlation: bool,
        counter: _LogRecordCounter | None,
        logger_provider: Any = None,
    ) -> None:
        self._redact = redactor.structlog_processor
        self._correlation = correlation
        self._counter = counter
        self._provider = logger_provider
        self._loggers: dict[str, Any] = {}
        self._second: tuple[int, str] = (-1, "")
        self._ids: _SpanIds = _span_ids(trace.INVALID_SPAN_CONTEXT)
        self._queues = LogQueues()

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        if STRUCTLOG_BOUND:  # only once something was bound with structlog.contextvars
            merge_contextvars(logger, method_name, event_dict)
        level = event_dict["level"] = _LEVEL_NAMES.get(method_name, method_name)
        record = event_dict.get("_record")  # a standard-library record's logger name
        name = record.name if record is not None else getattr(logger, "name", None)
        if name:
            event_dict["logger"] = name
        now = time.time_ns()
        event_dict["timestamp"] = self._iso(now)
        ctx = context.get_current()
        # What trace.get_current_span(ctx) reads, without its two calls, when the key is known.
        span = ctx.get(SPAN_KEY) if SPAN_KEY is not None else trace.get_current_span(ctx)
        if span is None:
            span = trace.INVALID_SPAN
        span_context = span.get_span_context()
        ids = self._ids  # the ids of the last span seen, read and formatted once per span
        if ids[0] is not span_context:
            ids = self._ids = _span_ids(span_context)
        if self._correlation:
            if ids[1] is not None:
                event_dict["trace_id"], event_dict["span_id"] = ids[1], ids[2]
            values = ctx.get(_CONTEXT_KEY)
            if values:
                for key, value in values.items():  # type: ignore[attr-defined]
                    event_dict.setdefault(key, value)
        if "stack_info" in event_dict:
            event_dict = _STACK_INFO(logger, method_name, event_dict)
        if "exc_info" in event_dict:
            if record is not None and _logged_before(event_dict["exc_info"]):
                # A server's report (uvicorn's "Exception in ASGI application") of an exception
                # the request layer logged already, with the request's ids: the line, not the
                # traceback again.
                event_dict[semconv.EXCEPTION_TYPE] = exception_type_name(type(event_dict.pop("exc_info")[1]))
            else:
                event_dict = structlog.processors.format_exc_info(logger, method_name, event_dict)
        event_dict = self._redact(logger, method_name, event_dict)
        if self._counter is not None:
            self._counter.add(level, event_dict.get("component"))
        # Not for the SDK's own warnings: it logs some (attribute limits) while holding
        # the span's lock, and adding an event to that span would wait on it forever.
        if level in _EVENT_LEVELS and "event_name" not in event_dict and span.is_recording() and not _from_sdk(name):
            attributes = _attributes(event_dict, _NOT_EVENT_ATTRIBUTES)
            attributes[semconv.LOG_LEVEL] = level
            attributes[semconv.LOG_MESSAGE] = str(event_dict.get("event", ""))
            span.add_event(semconv.LOG_EVENT, attributes)
        self._export(event_dict, level, now, ctx, ids)
        return event_dict

    def _iso(self, now: int) -> str:
        """``now`` (ns) exactly as ``datetime.now(timezone.utc).isoformat()`` with ``Z``, date part cached per second."""
        second, micro = divmod(now // 1000, 1_000_000)
        cached = self._second
        if cached[0] != second:
            stamp = datetime.datetime.fromtimestamp(second, datetime.timezone.utc).replace(tzinfo=None).isoformat()
            cached = self._second = (second, stamp)
        return "%s.%06dZ" % (cached[1], micro) if micro else cached[1] + "Z"

    def _export(self, event_dict: dict[str, Any], level: str, now: int, ctx: Any, ids: _SpanIds) -> None:
        name = event_dict.get("logger") or semconv.INSTRUMENTATION_SCOPE
        try:
            target = self._loggers.get(name)
            if target is None:
                target = self._loggers.setdefault(name, self._target(name))
            otel_logger, limits, cap, count = target
            if otel_logger is None:
                return
            queues = None
            if limits is not None:
                if LOG_EXPORT.on:
                    try:
                        queues = self._queues.of(otel_logger)
                    except Exception as exc:  # noqa: BLE001 - the fast path is off from now on: Logger.emit
                        LOG_EXPORT.failed(exc)
                    if queues == ():
                        return
                else:
                    limits = None
            attributes = _attributes(event_dict, _NOT_ATTRIBUTES)
            direct = queues is not None and len(attributes) <= cap
            severity = _SEVERITY_TEXT.get(level)
            body = event_dict.get("event", "")
            record = _Record(
                now,
                # What the batch processor keeps: not the request's context, which may be large.
                _EMPTY_CONTEXT if direct else ctx,
                ids,
                severity[0] if severity else level.upper(),
                severity[1] if severity else SeverityNumber.INFO,
                body if type(body) is str else _attribute_value(body),
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
            _internal.debug("amas_otel: cannot export a log record", exc_info=True)

    def _target(self, name: str) -> tuple[Any, Any, int, Callable[[], None] | None]:
        """``(otel logger, its record limits when it is the SDK's, their _attribute_cap, its record count)``.

        No logger for the SDK's own records; no count when the SDK's internal metrics are off (its no-op counter).
        """
        if _from_sdk(name):
            return None, None, -1, None  # the SDK's own complaints must not feed back into the SDK
        otel_logger = (self._provider or get_logger_provider()).get_logger(name)
        # The limits the SDK would apply itself when turning an API record into a writable one; None
        # (plain Logger.emit) for any other logger, or with the log_export fast path off.
        parts = sdk_logger_parts(otel_logger) if LOG_EXPORT.enabled() else None
        if parts is None:
            return otel_logger, None, -1, None
        limits, count = parts
        return otel_logger, limits, _attribute_cap(limits), count


def _from_sdk(logger_name: str | None) -> bool:
    """A record of OpenTelemetry's own loggers: never fed back into its spans or log records."""
    return logger_name is not None and logger_name.startswith("opentelemetry")


def _span_ids(span_context: Any) -> _SpanIds:
    """What the pipeline needs of ``span_context``: see :data:`_SpanIds`."""
    trace_id, span_id, flags = span_context.trace_id, span_context.span_id, span_context.trace_flags
    if not span_context.is_valid:
        return span_context, None, None, trace_id, span_id, flags
    return span_context, format(trace_id, "032x"), format(span_id, "016x"), trace_id, span_id, flags


_STACK_INFO = structlog.processors.StackInfoRenderer()
# add_log_level's names: "warn" is the standard library's alias, exception() logs an error.
_LEVEL_NAMES = {"warn": "warning", "exception": "error"}


_LOGGED_MARK = "__amas_otel_logged__"


def mark_logged(exc: BaseException) -> None:
    """Note that ``exc`` was logged with its traceback, so a later standard-library record of it shows only its line.

    For an exception that is answered, logged and then raised on to the
    server (as Starlette does): the server's own report of it, routed through
    this pipeline, would print the same traceback a second time.
    """
    try:
        setattr(exc, _LOGGED_MARK, True)
    except Exception:  # noqa: BLE001 - an exception class that refuses attributes is simply reported twice
        pass


def _logged_before(exc_info: Any) -> bool:
    return type(exc_info) is tuple and len(exc_info) == 3 and getattr(exc_info[1], _LOGGED_MARK, False) is True


def exception_type_name(cls: type) -> str:
    """``exception.type`` as OpenTelemetry's semantic conventions spell it: module-qualified, builtins bare."""
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


# --- configuration ---------------------------------------------------------------

_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error", "gunicorn.access")


class _Pipeline:
    config: LoggingConfig | None = None
    redactor: Redactor | None = None
    processors: list[Any] = []
    handler: _stdlib_logging.Handler | None = None
    stream: IO[str] | None = None
    root_level: int | None = None  # the root logger's level as amas-otel last set it


_pipeline = _Pipeline()


def configure_logging(
    config: LoggingConfig | None = None,
    *,
    logger_provider: Any = None,
    meter_provider: Any = None,
) -> LoggingConfig:
    """Set up structlog and the standard library's root logger; may be called again to reconfigure.

    ``config`` defaults to :meth:`LoggingConfig.from_settings`.  Records are
    exported through ``logger_provider`` and counted on ``meter_provider``
    (default: the global OpenTelemetry providers).  Invalid patterns raise
    :class:`~amas_otel.config.ConfigError` before anything changes.
    """
    config = config or LoggingConfig.from_settings()
    redactor = Redactor(config.security_level, config.redact_patterns, allow_keys=config.allow_keys)
    configure_redaction(redactor)

    stream = config.stream or sys.stdout
    if config.enable_metrics:
        _record_counter.register(meter_provider or get_meter_provider())
    record_processor = _RecordProcessor(
        redactor,
        correlation=config.enable_correlation,
        counter=_record_counter if config.enable_metrics else None,
        logger_provider=logger_provider,
    )
    renderer = _render_json if config.format is LogFormat.JSON else _encodable_lines(structlog.dev.ConsoleRenderer(colors=False))
    processors = [record_processor]
    level = getattr(_stdlib_logging, config.level.value)
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_LoggerFactory(stream),
        cache_logger_on_first_use=True,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), record_processor],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = _stdlib_logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = _stdlib_logging.getLogger()
    if _pipeline.handler is not None:
        root.removeHandler(_pipeline.handler)
    root.addHandler(handler)
    if root.level in (_stdlib_logging.WARNING, _pipeline.root_level):  # Python's default, or amas-otel's own
        root.setLevel(level)
        _pipeline.root_level = level
    elif root.level != level:
        # The application set the root logger's level itself before: its choice stays, said once.
        _internal.info(
            "amas_otel: the root logger's level %s, set by the application, is kept; LOG_LEVEL=%s applies to structlog loggers",
            _stdlib_logging.getLevelName(root.level),
            config.level.value,
        )
    _pipeline.handler = handler
    route_server_loggers()

    _pipeline.config, _pipeline.processors, _pipeline.stream = config, [*processors, renderer], stream
    _pipeline.redactor = redactor
    return config


def route_server_loggers() -> None:
    """Route the servers' loggers (uvicorn, gunicorn) through amas-otel's pipeline, when it owns the root logger.

    :func:`configure_logging` does it; call again once the server has set its
    own handlers afterwards — uvicorn does when it starts, after
    ``amas-otel-instrument`` configured amas-otel: its handler would print
    tracebacks (exception messages, secrets included) unredacted.
    """
    if _pipeline.handler is None or _pipeline.handler not in _stdlib_logging.getLogger().handlers:
        return  # the application's own logging set-up since: its choice
    for name in _UVICORN_LOGGERS:
        server_logger = _stdlib_logging.getLogger(name)
        if not server_logger.propagate and not server_logger.handlers:
            # Silenced by the server itself (uvicorn --no-access-log): routing
            # it to the root logger would turn those logs back on.
            continue
        server_logger.handlers.clear()
        server_logger.propagate = True


def get_logger(name: str | None = None, component: str | None = None) -> Any:
    """A structlog logger whose records carry ``logger=name`` and, when given, ``component``.

    Safe before :func:`amas_otel.configure`: the logger's first use (its first
    record, ``bind``…) configures amas-otel from the resolved settings when
    nothing has yet (:func:`amas_otel.sdk.configure_on_first_use`), so no
    record is ever written unredacted.  Getting a logger does nothing, so
    module-level loggers leave an explicit ``configure(...)`` at start-up in charge.
    """
    return _FirstUseLogger((name,), {"component": component} if component else {})


class _FirstUseLogger:
    """What :func:`get_logger` returns: structlog's logger, once logging is set up.

    The first attribute asked for (``info``, ``bind``…) runs
    :func:`_ensure_logging`, then comes from ``structlog.get_logger``; while
    structlog caches loggers on first use (as :func:`configure_logging` sets
    it to), the attribute is kept on this object, so later calls cost what a
    cached structlog logger costs.
    """

    def __init__(self, args: tuple[Any, ...], values: dict[str, Any]) -> None:
        self._args = args
        self._values = values

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        _ensure_logging(f"get_logger({self._args[0]!r})")
        attribute = getattr(structlog.get_logger(*self._args, **self._values).bind(), name)
        if structlog.get_config()["cache_logger_on_first_use"]:
            self.__dict__[name] = attribute
        return attribute

    def __repr__(self) -> str:
        return f"<amas_otel logger {self._args[0]!r}{' ' + repr(self._values) if self._values else ''}>"


_first_use_lock = threading.Lock()


def _ensure_logging(entry_point: str) -> None:
    """Set logging up before its first record: :func:`amas_otel.configure` on first use, else from the settings.

    Does nothing once :func:`configure_logging` has run (through
    ``configure()`` or called by the application).  When the application set
    up OpenTelemetry itself, logging is configured from the ``LOG_*`` settings
    on the global providers; when the settings are invalid, with stricter
    redaction than the default (see :func:`_safe_without_settings`).
    """
    if _pipeline.config is not None:
        return
    from amas_otel.sdk import configure_on_first_use

    configure_on_first_use(entry_point)
    with _first_use_lock:
        if _pipeline.config is not None:
            return
        try:
            configure_logging(LoggingConfig.from_settings())
        except ConfigError as exc:
            _safe_without_settings(exc)


def _safe_without_settings(error: Exception) -> None:
    """Logging when the settings cannot be resolved (``error``): audit on, INFO, and redaction
    stricter than the default (fail closed): ``high``, or ``maximum`` when ``LOG_SECURITY_LEVEL`` says so.

    ``high`` rather than always ``maximum`` keeps the error that names the bad
    settings readable: ``maximum`` would blank every ``NAME: value`` in it.
    """
    if _pipeline.config is None:
        wanted = os.environ.get("LOG_SECURITY_LEVEL", "").strip().lower()
        level = SecurityLevel.MAXIMUM if wanted == SecurityLevel.MAXIMUM.value else SecurityLevel.HIGH
        configure_logging(LoggingConfig(security_level=level))


class _NamedWriteLogger(structlog.WriteLogger):
    """structlog's fast file logger, remembering the name given to :func:`get_logger`."""

    def __init__(self, file: IO[str], name: str | None) -> None:
        super().__init__(file)
        self.name = name


class _LoggerFactory:
    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        return _NamedWriteLogger(self._stream, args[0] if args and isinstance(args[0], str) else None)


# --- security and audit logging ---------------------------------------------------

_SECURITY_LEVELS = {"low": "info", "medium": "warning", "high": "error", "critical": "critical"}


class SecurityLogger:
    """Audit records: OTel log records with an event name, emitted whatever LOG_LEVEL says.

    With audit enabled (``LOG_ENABLE_AUDIT``) each call writes a record through
    the logging pipeline (redacted like every record) and adds a span event of
    the same name to the current span.  Authentication attempts are counted by
    :meth:`amas_otel.metrics.MetricsService.record_authentication` in any case.
    """

    def __init__(self, *, tracer_provider: Any = None) -> None:
        del tracer_provider  # events go on the *current* span, whichever provider made it

    def log_authentication(
        self, user: str, success: bool, ip_address: str | None = None, *, method: str | None = None, **details: Any
    ) -> None:
        """One authentication attempt by ``user`` from ``ip_address``."""
        outcome = "success" if success else "failure"
        self._count_authentication(bool(success), method)
        fields = {semconv.AUDIT_USER: user, semconv.AUDIT_OUTCOME: outcome, **details}
        if ip_address is not None:
            fields[semconv.CLIENT_ADDRESS] = ip_address
        if method is not None:
            fields["amas.auth.method"] = method
        self._emit(
            semconv.AUDIT_AUTHENTICATION,
            "info" if success else "warning",
            "authentication succeeded" if success else "authentication failed",
            fields,
        )

    def log_authorization(self, user: str, resource: str, action: str, granted: bool, **details: Any) -> None:
        """One access decision: ``user`` asked to ``action`` on ``resource``."""
        fields = {
            semconv.AUDIT_USER: user,
            semconv.AUDIT_RESOURCE: resource,
            semconv.AUDIT_ACTION: action,
            semconv.AUDIT_OUTCOME: "granted" if granted else "denied",
            **details,
        }
        self._emit(
            semconv.AUDIT_AUTHORIZATION,
            "info" if granted else "warning",
            "access granted" if granted else "access denied",
            fields,
        )

    def log_security_event(self, kind: str, severity: str = "medium", **details: Any) -> None:
        """A security-relevant event (``severity``: low, medium, high, critical)."""
        level = _SECURITY_LEVELS.get(str(severity).lower())
        if level is None:
            raise ValueError(f"severity: {severity!r} is not accepted; expected one of low, medium, high, critical")
        fields = {semconv.AUDIT_KIND: kind, semconv.AUDIT_SEVERITY: str(severity).lower(), **details}
        self._emit(semconv.AUDIT_SECURITY, level, f"security event: {kind}", fields)

    @staticmethod
    def _count_authentication(success: bool, method: str | None) -> None:
        try:
            from amas_otel.metrics import get_metrics_service

            get_metrics_service().record_authentication(success, method=method)
        except Exception:  # noqa: BLE001 - a metrics failure must not fail the login
            _internal.debug("amas_otel: cannot count an authentication attempt", exc_info=True)

    @staticmethod
    def _emit(event_name: str, level: str, message: str, fields: dict[str, Any]) -> None:
        _ensure_logging("security_logger")
        config = _pipeline.config
        if config is not None and not config.enable_audit:
            return
        event_dict: dict[str, Any] = {"event": message, "logger": "amas_otel.audit", "event_name": event_name, **fields}
        processors = _pipeline.processors or structlog.get_config()["processors"]
        try:
            # Run the pipeline directly: audit records bypass the level filter.
            for processor in processors:
                event_dict = processor(None, level, event_dict)
            if _pipeline.stream is not None and isinstance(event_dict, str):
                _pipeline.stream.write(event_dict + "\n")
                _pipeline.stream.flush()
        except Exception:  # noqa: BLE001 - see _count_authentication
            _internal.debug("amas_otel: cannot write an audit record", exc_info=True)
            return
        span = trace.get_current_span()
        if span.is_recording():
            cleaned, _ = get_redactor().redact_mapping(fields)
            span.add_event(event_name, {k: _attribute_value(v) for k, v in cleaned.items() if v is not None})


#: The process-wide :class:`SecurityLogger`.
security_logger = SecurityLogger()


def _on_configure(settings: Any, state: Any) -> None:
    kept = _pipeline.config if state.first_use else None
    if kept is None:
        configure_logging(
            LoggingConfig.from_settings(settings.logging),
            logger_provider=state.logger_provider,
            meter_provider=state.meter_provider,
        )
    else:
        # Configured on first use after the application called configure_logging()
        # itself: its pipeline stays (exporting through the providers set up now),
        # and so does its redactor for spans and the other signals.
        configure_redaction(_pipeline.redactor)
    if (kept or settings.logging).enable_correlation and state.tracer_provider is not None:
        state.tracer_provider.add_span_processor(CorrelationSpanProcessor())


def _register() -> None:
    from amas_otel.sdk import add_hooks

    add_hooks(on_configure=_on_configure, on_first_use_error=_safe_without_settings)


_register()
