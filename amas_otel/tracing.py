"""API-facing helpers: tracers, meters and the :func:`traced` decorator.

These talk only to the OpenTelemetry API, so they are safe to call before
:func:`amas_otel.configure` (spans and instruments are then no-ops, and start
recording as soon as the providers are set).  The first call of a
:func:`traced` function configures amas-otel when nothing has yet
(:func:`amas_otel.sdk.configure_on_first_use`); decorating does nothing.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from opentelemetry import metrics, trace
from opentelemetry.trace import Status, StatusCode

from amas_otel.sdk import configure_on_first_use
from amas_otel.scope import amas_meter, amas_tracer

__all__ = ["get_tracer", "get_meter", "traced"]

_F = TypeVar("_F", bound=Callable[..., Any])


def get_tracer(name: str | None = None, version: str | None = None) -> trace.Tracer:
    """A tracer for instrumentation scope ``name`` (default: amas_otel's own, :func:`amas_otel.scope.amas_tracer`)."""
    return trace.get_tracer(name, version) if name else amas_tracer()


def get_meter(name: str | None = None, version: str | None = None) -> metrics.Meter:
    """A meter for instrumentation scope ``name`` (default: amas_otel's own, :func:`amas_otel.scope.amas_meter`)."""
    return metrics.get_meter(name, version) if name else amas_meter()


@overload
def traced(func: _F) -> _F: ...
@overload
def traced(
    name: str | None = None,
    *,
    attributes: Mapping[str, Any] | None = None,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    tracer: trace.Tracer | None = None,
) -> Callable[[_F], _F]: ...


def traced(
    name: Any = None,
    *,
    attributes: Mapping[str, Any] | None = None,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    tracer: trace.Tracer | None = None,
) -> Any:
    """Run the decorated function (sync or async) in a span.

    Use bare (``@traced``) or with a span name (``@traced("charge card")``);
    the default name is the function's qualified name.  An exception is
    recorded on the span, sets its status to ERROR, and propagates unchanged.
    """
    if callable(name):
        return traced()(name)

    def decorate(func: _F) -> _F:
        span_name = name or func.__qualname__

        def _tracer() -> trace.Tracer:
            configure_on_first_use("traced")  # at the first call, not at decoration (import) time
            return tracer or get_tracer(func.__module__)

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with _tracer().start_as_current_span(
                    span_name, kind=kind, attributes=attributes, record_exception=False, set_status_on_exception=False
                ) as span:
                    try:
                        return await func(*args, **kwargs)
                    except BaseException as exc:
                        _record(span, exc)
                        raise

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _tracer().start_as_current_span(
                span_name, kind=kind, attributes=attributes, record_exception=False, set_status_on_exception=False
            ) as span:
                try:
                    return func(*args, **kwargs)
                except BaseException as exc:
                    _record(span, exc)
                    raise

        return wrapper  # type: ignore[return-value]

    return decorate


def _record(span: trace.Span, exc: BaseException) -> None:
    # Cancellation and exits are control flow, not failures of the operation.
    if isinstance(exc, (GeneratorExit, KeyboardInterrupt, SystemExit)) or type(exc).__name__ == "CancelledError":
        span.set_attribute("error.type", "cancelled" if type(exc).__name__ == "CancelledError" else type(exc).__qualname__)
        return
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__qualname__}: {exc}"))
    span.set_attribute("error.type", type(exc).__qualname__)
