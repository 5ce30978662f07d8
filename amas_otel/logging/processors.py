"""amas-otel's structlog processors: what each record carries, exception rendering, redaction, the JSON line.

Plain structlog processors (``processor(logger, method_name, event_dict)``),
composed only through a processor list, as structlog's own are.
:func:`amas_otel.logging.configure_logging` installs them as::

    [RecordFields(state=s), CorrelationFields(state=s), ExceptionFields(),
     *your_processors, redact, OTelLogExport(..., state=s), json_renderer()]

``s`` being the chain's :class:`RecordState` (without processors of yours:
as one :class:`~amas_otel.logging.pipeline.RecordSteps` over the same step
objects).  An application with its own ``structlog.configure(processors=[...])``
places the same ones in its chain (see the README, "structlog chains").
"""

from __future__ import annotations

import datetime
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson
import structlog
from opentelemetry import context, trace
from structlog.contextvars import merge_contextvars

from amas_otel import semconv
from amas_otel._fastpath.context_keys import SPAN_KEY
from amas_otel._fastpath.log_records import STRUCTLOG_BOUND
from amas_otel._sanitize import encodable
from amas_otel.logging.correlation import LOGGING_CONTEXT_KEY
from amas_otel.redaction import get_redactor

__all__ = [
    "RecordFields",
    "CorrelationFields",
    "ExceptionFields",
    "SpanIds",
    "RecordState",
    "redact",
    "json_renderer",
    "JSONLineRenderer",
    "json_default",
    "console_renderer",
    "dumps_json",
    "level_name",
    "mark_logged",
    "exception_type_name",
]

# add_log_level's names: "warn" is the standard library's alias, exception() logs an error.
_LEVEL_NAMES = {"warn": "warning", "exception": "error"}


def level_name(method_name: str) -> str:
    """The ``level`` structlog's ``add_log_level`` gives a record logged with ``method_name``."""
    return _LEVEL_NAMES.get(method_name, method_name)


class SpanIds:
    """What a record needs of a span context, read once per span: its fields are properties.

    ``trace_hex``/``span_hex`` are the ids as the OTel spec writes them (32
    and 16 lower-case hex digits), None outside a valid span.
    """

    __slots__ = ("span_context", "trace_hex", "span_hex", "trace_id", "span_id", "trace_flags")

    def __init__(self, span_context: Any) -> None:
        self.span_context = span_context
        self.trace_id, self.span_id, self.trace_flags = span_context.trace_id, span_context.span_id, span_context.trace_flags
        valid = span_context.is_valid
        self.trace_hex = format(self.trace_id, "032x") if valid else None
        self.span_hex = format(self.span_id, "016x") if valid else None


class RecordState:
    """What the steps of one chain share about the record passing through: its time, context, span and :class:`SpanIds`.

    Each is looked up once per record (ids once per span): the second step
    asking about the same event dict gets the first one's answer.
    :func:`~amas_otel.logging.configure_logging` gives one state to
    :class:`RecordFields`, :class:`CorrelationFields` and the export step
    (:class:`~amas_otel.logging.bridge.OTelLogExport`); each step of a chain
    built otherwise has its own and looks the context up (and takes the time) itself.
    """

    __slots__ = ("_ids", "_last", "_time")

    def __init__(self) -> None:
        self._ids = SpanIds(trace.INVALID_SPAN_CONTEXT)
        # (event dict, its context, span, ids) and (event dict, its time), each replaced as
        # one tuple: a thread that finds another record's entry here looks its own up.
        self._last: tuple[Any, Any, Any, SpanIds] = (None, None, None, self._ids)
        self._time: tuple[Any, int] = (None, 0)

    def note_time(self, event_dict: dict[str, Any], now: int) -> None:
        """Remember ``now`` (ns) as the time of the record ``event_dict``."""
        self._time = (event_dict, now)

    def time_of(self, event_dict: dict[str, Any]) -> int:
        """The time noted for the record ``event_dict``; the current time when none was."""
        owner, now = self._time
        return now if owner is event_dict else time.time_ns()

    def current(self) -> tuple[context.Context, Any, SpanIds]:
        """The current context, its span (INVALID_SPAN when none) and the span's ids."""
        ctx = context.get_current()
        # What trace.get_current_span(ctx) reads, without its two calls, when the key is known.
        span = ctx.get(SPAN_KEY) if SPAN_KEY is not None else trace.get_current_span(ctx)
        if span is None:
            span = trace.INVALID_SPAN
        span_context = span.get_span_context()
        ids = self._ids
        if ids.span_context is not span_context:
            ids = self._ids = SpanIds(span_context)
        return ctx, span, ids

    def lookup(self, event_dict: dict[str, Any]) -> tuple[context.Context, Any, SpanIds]:
        """:meth:`current` for the record ``event_dict``, looked up once per record."""
        owner, ctx, span, ids = self._last
        if owner is event_dict:
            return ctx, span, ids
        ctx, span, ids = self.current()
        self._last = (event_dict, ctx, span, ids)
        return ctx, span, ids

    def assign(self, event_dict: dict[str, Any], span_context: Any) -> SpanIds:
        """Make the record ``event_dict`` carry ``span_context``'s ids: a report written outside the context it belongs to."""
        ctx, span, _ = self.lookup(event_dict)
        ids = SpanIds(span_context)
        self._last = (event_dict, ctx, span, ids)
        return ids


class RecordFields:
    """structlog's standard first steps in one pass, with identical output.

    ``merge_contextvars``, ``add_log_level``, the logger name (a standard
    library record's, or the one given to ``get_logger``) and
    ``TimeStamper(fmt="iso", utc=True)``.  One processor rather than four: each
    is a few dictionary writes, and the processor call around it would cost as much.
    The instant stamped is noted in ``state`` (a :class:`RecordState`), where
    the export step sharing it finds it: the OTel record and the line carry
    the same time.
    """

    def __init__(self, *, state: RecordState | None = None) -> None:
        self._state = RecordState() if state is None else state
        self._second: tuple[int, str] = (-1, "")

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        now = time.time_ns()
        self._state.note_time(event_dict, now)
        return self.fill(logger, method_name, event_dict, now)

    def fill(self, logger: Any, method_name: str, event_dict: dict[str, Any], now: int) -> dict[str, Any]:
        """The step's work on ``event_dict``, stamped with ``now`` (ns since the epoch)."""
        if STRUCTLOG_BOUND:  # only once something was bound with structlog.contextvars
            merge_contextvars(logger, method_name, event_dict)
        event_dict["level"] = _LEVEL_NAMES.get(method_name, method_name)
        record = event_dict.get("_record")  # a standard-library record's logger name
        if record is not None:
            event_dict.pop("color_message", None)  # uvicorn's copy of the message with ANSI colours
        name = record.name if record is not None else getattr(logger, "name", None)
        if name:
            event_dict["logger"] = name
        # ``now`` exactly as ``datetime.now(timezone.utc).isoformat()`` with ``Z``, the date part made once per second.
        second, micro = divmod(now // 1000, 1_000_000)
        cached = self._second
        if cached[0] != second:
            stamp = datetime.datetime.fromtimestamp(second, datetime.timezone.utc).replace(tzinfo=None).isoformat()
            cached = self._second = (second, stamp)
        event_dict["timestamp"] = "%s.%06dZ" % (cached[1], micro) if micro else cached[1] + "Z"
        return event_dict


class CorrelationFields:
    """The correlation step: ``trace_id``/``span_id`` of the current span and the enclosing LoggingContext values.

    The record's own fields (and ``structlog.contextvars`` bindings) win over
    LoggingContext values of the same name.
    """

    def __init__(self, *, state: RecordState | None = None) -> None:
        self._state = RecordState() if state is None else state

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        ctx, _, ids = self._state.lookup(event_dict)
        return self.fill(event_dict, ctx, ids)

    @staticmethod
    def fill(event_dict: dict[str, Any], ctx: context.Context, ids: SpanIds) -> dict[str, Any]:
        """The step's work on ``event_dict``, for the context ``ctx`` and the ids of its span."""
        if ids.trace_hex is not None:
            event_dict["trace_id"], event_dict["span_id"] = ids.trace_hex, ids.span_hex
        values = ctx.get(LOGGING_CONTEXT_KEY)
        if values:
            for key, value in values.items():  # type: ignore[attr-defined]
                event_dict.setdefault(key, value)
        return event_dict


_LOGGED_MARK = "__amas_otel_logged__"


def mark_logged(exc: BaseException) -> None:
    """Note that ``exc`` was logged with its traceback, so a later standard-library record of it shows only its line.

    For an exception that is answered, logged and then raised on to the
    server (as Starlette does): the server's own report of it, routed through
    this pipeline, would print the same traceback a second time.  Called in
    the request's context: that later report carries the request's trace and span ids.
    """
    try:
        setattr(exc, _LOGGED_MARK, trace.get_current_span().get_span_context())
    except Exception:  # noqa: BLE001 - an exception class that refuses attributes is simply reported twice
        pass


def _logged_in(exc_info: Any) -> Any:
    """The span context ``exc_info``'s exception was logged in by :func:`mark_logged`; None if it was not."""
    if type(exc_info) is tuple and len(exc_info) == 3:
        logged_in = getattr(exc_info[1], _LOGGED_MARK, None)
        return logged_in if isinstance(logged_in, trace.SpanContext) else None
    return None


def _raised(exc_info: Any) -> BaseException | None:
    """The exception an ``exc_info`` value (``True``, an exception, a ``sys.exc_info()`` tuple) stands for."""
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple):
        return exc_info[1] if len(exc_info) == 3 and isinstance(exc_info[1], BaseException) else None
    return sys.exc_info()[1] if exc_info else None


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - an exception whose __str__ fails still gets its record
        return f"<unprintable {type(exc).__name__}>"


def exception_type_name(cls: type) -> str:
    """``exception.type`` as OpenTelemetry's semantic conventions spell it: module-qualified, builtins bare."""
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


_STACK_INFO = structlog.processors.StackInfoRenderer()


class ExceptionFields:
    """``StackInfoRenderer`` and ``format_exc_info``, plus ``exception.type`` and ``exception.message``.

    The exceptions-in-logs convention: a record with an exception carries its
    type (module-qualified, builtins bare, as the SDK's ``record_exception``),
    message and stacktrace.  A server's report (uvicorn's "Exception in ASGI
    application") of an exception the request layer logged already
    (:func:`mark_logged`) keeps the line and ``exception.type``, not the
    traceback again, and the ids of the request it was logged in: given to
    ``state`` (the chain's :class:`RecordState`) for the OTel record too.
    """

    def __init__(self, *, state: RecordState | None = None) -> None:
        self._state = RecordState() if state is None else state

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        if "stack_info" in event_dict:
            event_dict = _STACK_INFO(logger, method_name, event_dict)
        if "exc_info" in event_dict:
            logged_in = _logged_in(event_dict["exc_info"]) if event_dict.get("_record") is not None else None
            if logged_in is not None:
                event_dict[semconv.EXCEPTION_TYPE] = exception_type_name(type(event_dict.pop("exc_info")[1]))
                if logged_in.is_valid and "trace_id" not in event_dict:  # reported outside the request's context
                    ids = self._state.assign(event_dict, logged_in)
                    event_dict["trace_id"], event_dict["span_id"] = ids.trace_hex, ids.span_hex
            else:
                raised = _raised(event_dict["exc_info"])
                event_dict = structlog.processors.format_exc_info(logger, method_name, event_dict)
                if raised is not None and "exception" in event_dict:
                    event_dict.setdefault(semconv.EXCEPTION_TYPE, exception_type_name(type(raised)))
                    event_dict.setdefault(semconv.EXCEPTION_MESSAGE, _message(raised))
        return event_dict


def redact(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """The redaction step: ``event_dict`` cleaned by the process's redactor (:func:`amas_otel.redaction.get_redactor`)."""
    return get_redactor().structlog_processor(logger, method_name, event_dict)


_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps_json(value: Any, default: Callable[[Any], Any]) -> str:
    """``value`` as JSON text, non-ASCII kept as is; never raises for a key or a string.

    orjson first; what it refuses, such as integers beyond 64 bits, keys that
    are tuples or strings holding lone surrogates, goes through :mod:`json`
    instead (whose output for those is what a line held before orjson), with
    keys JSON cannot hold written as text and the result made encodable (see
    :mod:`amas_otel._sanitize`): a line is never lost to its values.
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


def json_default(value: Any) -> Any:
    """What a JSON line holds for a value JSON has no type for: its ``__structlog__()``, else its ``repr``, as structlog's."""
    try:
        return value.__structlog__()
    except AttributeError:
        return repr(value)


class JSONLineRenderer(structlog.processors.JSONRenderer):
    """structlog's ``JSONRenderer`` over :func:`dumps_json` (fallback :func:`json_default`).

    Not ``serializer=orjson.dumps`` alone: that raises for the values
    :func:`dumps_json` hands to :mod:`json` (a line would be lost) and
    returns bytes where the text stream wants ``str``; for every other value
    the line is orjson's, byte for byte (tests/test_logging.py compares them).
    The call hands the fallback on by position: JSONRenderer's keyword call
    makes the serializer's call a generic one, on every line.
    """

    def __init__(self) -> None:
        super().__init__(serializer=dumps_json, default=json_default)

    def __call__(self, logger: Any, name: str, event_dict: dict[str, Any]) -> str:
        return dumps_json(event_dict, json_default)


def json_renderer() -> JSONLineRenderer:
    """The JSON line renderer: :class:`JSONLineRenderer`."""
    return JSONLineRenderer()


def console_renderer() -> Callable[..., str]:
    """structlog's ``ConsoleRenderer`` (no colours) whose lines UTF-8 can always encode (a key may hold a lone surrogate)."""
    renderer = structlog.dev.ConsoleRenderer(colors=False)

    def render(logger: Any, method_name: str, event_dict: dict[str, Any]) -> str:
        return encodable(renderer(logger, method_name, event_dict))

    return render
