"""Correlation context: values that follow a request through logs, spans and outgoing calls.

:class:`LoggingContext` values live in the OpenTelemetry context (and in W3C
baggage, so instrumented outgoing requests carry them to other services);
contextvars carry them across ``await``, ``asyncio.create_task`` and
``asyncio.to_thread``.  :class:`CorrelationSpanProcessor` copies them onto
every span started inside the context; the log processors
(:mod:`amas_otel.logging.processors`) onto every record.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import baggage, context
from opentelemetry.sdk.trace import SpanProcessor

from amas_otel import semconv
from amas_otel._fastpath.context_keys import BAGGAGE_KEY
from amas_otel._fastpath.span_fields import set_valid_attributes

__all__ = [
    "CORRELATION_BAGGAGE_KEY",
    "LOGGING_CONTEXT_KEY",
    "LoggingContext",
    "CorrelationSpanProcessor",
    "context_with",
    "current_correlation_id",
]

#: Baggage entry carrying the correlation id between services.
CORRELATION_BAGGAGE_KEY = "correlation_id"
#: The OpenTelemetry context key holding the enclosing LoggingContext values (a dict).
LOGGING_CONTEXT_KEY = context.create_key("amas_otel.logging_context")


def current_correlation_id() -> str | None:
    """The correlation id of the current context (LoggingContext, else baggage), or None."""
    values = context.get_value(LOGGING_CONTEXT_KEY)
    if values and values.get("correlation_id") is not None:  # type: ignore[attr-defined]
        return str(values["correlation_id"])  # type: ignore[index]
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
        self._tokens.append(context.attach(context_with(self.values)) if self.values else None)
        return self

    def __exit__(self, *exc: Any) -> None:
        token = self._tokens.pop()
        if token is not None:
            context.detach(token)

    async def __aenter__(self) -> LoggingContext:
        return self.__enter__()

    async def __aexit__(self, *exc: Any) -> None:
        self.__exit__(*exc)


def context_with(values: dict[str, Any], base: context.Context | None = None) -> context.Context:
    """``base`` (default: the current context) plus ``values``, both as LoggingContext values and as baggage (strings).

    One new context built in one go: what ``set_value`` followed by a
    ``set_baggage`` per value gives, without a context copy per step.
    """
    current = context.get_current() if base is None else base
    outer = current.get(LOGGING_CONTEXT_KEY)
    merged = {**outer, **values} if outer else dict(values)
    if BAGGAGE_KEY is None:  # the API keeps baggage another way: its public setter, once per value
        built = context.set_value(LOGGING_CONTEXT_KEY, merged, current)
        for key, value in values.items():
            built = baggage.set_baggage(key, str(value), built)
        return built
    entries = current.get(BAGGAGE_KEY)
    bag = dict(entries) if entries else {}  # type: ignore[call-overload]
    for key, value in values.items():
        bag[key] = str(value)
    return context.Context({**current, LOGGING_CONTEXT_KEY: merged, BAGGAGE_KEY: bag})  # type: ignore[dict-item]


def _span_attribute(key: str) -> str:
    if key == "correlation_id":
        return semconv.CORRELATION_ID
    if key == "user_id":
        return semconv.USER_ID
    return semconv.CONTEXT_PREFIX + key


def _primitive(value: Any) -> Any:
    return value if isinstance(value, (str, bool, int, float)) else str(value)


class CorrelationSpanProcessor(SpanProcessor):
    """Sets the enclosing :class:`LoggingContext` values (or a baggage correlation id) on each span it starts."""

    def on_start(self, span: Any, parent_context: context.Context | None = None) -> None:
        ctx = context.get_current() if parent_context is None else parent_context
        # The values are made valid attribute values here (_primitive), so they
        # are written without the SDK validating them again.
        values = ctx.get(LOGGING_CONTEXT_KEY)
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
