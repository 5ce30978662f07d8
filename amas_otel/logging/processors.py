"""amas-otel's structlog processors: what each record carries, exception rendering, redaction, the JSON line.

Plain structlog processors (``processor(logger, method_name, event_dict)``),
composed only through a processor list, as structlog's own are.
:func:`amas_otel.logging.configure_logging` installs them as::

    [RecordFields(), CorrelationFields(), ExceptionFields(),
     *your_processors, redact, OTelLogExport(...), json_renderer()]

and an application with its own ``structlog.configure(processors=[...])``
places the same ones in its chain (see the README, "structlog chains").
"""

from __future__ import annotations

import datetime
import json
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
    "SpanIdCache",
    "redact",
    "json_renderer",
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


class RecordFields:
    """structlog's standard first steps in one pass, with identical output.

    ``merge_contextvars``, ``add_log_level``, the logger name (a standard
    library record's, or the one given to ``get_logger``) and
    ``TimeStamper(fmt="iso", utc=True)``.  One processor rather than four: each
    is a few dictionary writes, and the processor call around it would cost as much.
    """

    def __init__(self) -> None:
        self._second: tuple[int, str] = (-1, "")

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        if STRUCTLOG_BOUND:  # only once something was bound with structlog.contextvars
            merge_contextvars(logger, method_name, event_dict)
        event_dict["level"] = _LEVEL_NAMES.get(method_name, method_name)
        record = event_dict.get("_record")  # a standard-library record's logger name
        name = record.name if record is not None else getattr(logger, "name", None)
        if name:
            event_dict["logger"] = name
        event_dict["timestamp"] = self._iso(time.time_ns())
        return event_dict

    def _iso(self, now: int) -> str:
        """``now`` (ns) exactly as ``datetime.now(timezone.utc).isoformat()`` with ``Z``, date part cached per second."""
        second, micro = divmod(now // 1000, 1_000_000)
        cached = self._second
        if cached[0] != second:
            stamp = datetime.datetime.fromtimestamp(second, datetime.timezone.utc).replace(tzinfo=None).isoformat()
            cached = self._second = (second, stamp)
        return "%s.%06dZ" % (cached[1], micro) if micro else cached[1] + "Z"


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


class SpanIdCache:
    """A record's current context, its span and their :class:`SpanIds`, looked up once per record and ids once per span.

    :func:`~amas_otel.logging.configure_logging` gives one cache to both
    :class:`CorrelationFields` and the export step
    (:class:`~amas_otel.logging.bridge.OTelLogExport`): the second asks about
    the same event dict and gets the first one's answer.  Each step of a chain
    built otherwise has its own cache and looks the context up itself.
    """

    __slots__ = ("_ids", "_last")

    def __init__(self) -> None:
        self._ids = SpanIds(trace.INVALID_SPAN_CONTEXT)
        # (event dict, its context, span, ids), replaced as one tuple: a thread that
        # finds another record's entry here looks its own context up.
        self._last: tuple[Any, Any, Any, SpanIds] = (None, None, None, self._ids)

    def lookup(self, event_dict: dict[str, Any]) -> tuple[context.Context, Any, SpanIds]:
        """The current context, its span (INVALID_SPAN when none) and the span's ids, for the record ``event_dict``."""
        owner, ctx, span, ids = self._last
        if owner is event_dict:
            return ctx, span, ids
        ctx = context.get_current()
        # What trace.get_current_span(ctx) reads, without its two calls, when the key is known.
        span = ctx.get(SPAN_KEY) if SPAN_KEY is not None else trace.get_current_span(ctx)
        if span is None:
            span = trace.INVALID_SPAN
        span_context = span.get_span_context()
        ids = self._ids
        if ids.span_context is not span_context:
            ids = self._ids = SpanIds(span_context)
        self._last = (event_dict, ctx, span, ids)
        return ctx, span, ids


class CorrelationFields:
    """The correlation step: ``trace_id``/``span_id`` of the current span and the enclosing LoggingContext values.

    The record's own fields (and ``structlog.contextvars`` bindings) win over
    LoggingContext values of the same name.
    """

    def __init__(self, *, spans: SpanIdCache | None = None) -> None:
        self._spans = SpanIdCache() if spans is None else spans

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        ctx, _, ids = self._spans.lookup(event_dict)
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


_STACK_INFO = structlog.processors.StackInfoRenderer()


class ExceptionFields:
    """``StackInfoRenderer`` and ``format_exc_info``, except for an exception logged before (:func:`mark_logged`).

    A server's report (uvicorn's "Exception in ASGI application") of an
    exception the request layer logged already, with the request's ids, keeps
    the line and ``exception.type``, not the traceback again.
    """

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        if "stack_info" in event_dict:
            event_dict = _STACK_INFO(logger, method_name, event_dict)
        if "exc_info" in event_dict:
            if event_dict.get("_record") is not None and _logged_before(event_dict["exc_info"]):
                event_dict[semconv.EXCEPTION_TYPE] = exception_type_name(type(event_dict.pop("exc_info")[1]))
            else:
                event_dict = structlog.processors.format_exc_info(logger, method_name, event_dict)
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


def json_renderer() -> structlog.processors.JSONRenderer:
    """structlog's ``JSONRenderer`` over :func:`dumps_json`.

    Not ``serializer=orjson.dumps`` alone: that raises for the values
    :func:`dumps_json` hands to :mod:`json` (a line would be lost) and
    returns bytes where the text stream wants ``str``; for every other value
    the line is orjson's, byte for byte (tests/test_logging.py compares them).
    """
    return structlog.processors.JSONRenderer(serializer=dumps_json)


def console_renderer() -> Callable[..., str]:
    """structlog's ``ConsoleRenderer`` (no colours) whose lines UTF-8 can always encode (a key may hold a lone surrogate)."""
    renderer = structlog.dev.ConsoleRenderer(colors=False)

    def render(logger: Any, method_name: str, event_dict: dict[str, Any]) -> str:
        return encodable(renderer(logger, method_name, event_dict))

    return render
