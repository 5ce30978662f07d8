"""Reading a finished span's fields and writing valid attributes onto a live span, through the SDK's fields.

The fast path ``span_fields`` (:data:`SPAN_FIELDS`), read-only where redaction
is concerned: :func:`span_parts` tells the redactor what to look at, and the
redactor rebuilds any span it changes through ``ReadableSpan``'s public
constructor (nothing here writes a finished span).  Public twins: the
``ReadableSpan`` properties (:func:`public_span_parts`, which copy events and
links and wrap the attributes on every access) and ``Span.set_attributes``
(which validates every value again).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.util import BoundedList

from amas_otel._fastpath.gate import FastPath
from amas_otel._fastpath.versions import OTEL_SDK

__all__ = ["SPAN_FIELDS", "SpanParts", "span_parts", "public_span_parts", "plain_mapping", "set_valid_attributes"]

#: (name, attributes or None, whether it has events or links, status description or None)
SpanParts = tuple[str, "Mapping[str, Any] | None", bool, "str | None"]


def public_span_parts(span: Any) -> SpanParts:
    """:data:`SpanParts` through ``ReadableSpan``'s public properties."""
    status = span.status
    return span.name, span.attributes, bool(span.events or span.links), status.description if status is not None else None


def span_parts(span: Any) -> SpanParts:
    """:data:`SpanParts` from the span's own fields while :data:`SPAN_FIELDS` is on, else :func:`public_span_parts`."""
    if SPAN_FIELDS.on or (not SPAN_FIELDS.checked and SPAN_FIELDS.enabled()):
        try:
            return _fields(span)
        except Exception as exc:  # noqa: BLE001 - the public properties answer
            SPAN_FIELDS.failed(exc)
    return public_span_parts(span)


def _fields(span: Any) -> SpanParts:
    events, links, status = span._events, span._links, span._status  # noqa: SLF001
    attributes = span._attributes  # noqa: SLF001
    return (
        span._name,  # noqa: SLF001
        # BoundedAttributes iterates through a lock per item; its dict is the same data.
        attributes._dict if type(attributes) is BoundedAttributes else attributes,  # noqa: SLF001
        bool((events._dq if type(events) is BoundedList else events) or (links._dq if type(links) is BoundedList else links)),  # noqa: SLF001
        status._description if status is not None else None,  # noqa: SLF001
    )


def plain_mapping(attributes: Mapping[str, Any]) -> Mapping[str, Any]:
    """The dict behind a ``BoundedAttributes`` while :data:`SPAN_FIELDS` is on (iterating it takes no lock), else ``attributes``."""
    if type(attributes) is BoundedAttributes and (SPAN_FIELDS.on or (not SPAN_FIELDS.checked and SPAN_FIELDS.enabled())):
        try:
            return attributes._dict  # noqa: SLF001
        except Exception as exc:  # noqa: BLE001
            SPAN_FIELDS.failed(exc)
    return attributes


def set_valid_attributes(span: Any, attributes: dict[str, Any]) -> None:
    """``span.set_attributes(attributes)`` for values that are valid as they are (str, bool, int, float; non-empty str keys).

    The SDK validates every value of every call again (some thousands of
    instructions per attribute, the largest part of a span's cost); an SDK
    span's attributes take them directly when no value-length limit applies and
    they fit under the count limit.  Anything else goes through the SDK.
    """
    if SPAN_FIELDS.on or (not SPAN_FIELDS.checked and SPAN_FIELDS.enabled()):
        try:
            if _set_directly(span, attributes):
                return
        except Exception as exc:  # noqa: BLE001 - the public path below
            SPAN_FIELDS.failed(exc)
    span.set_attributes(attributes)


def _set_directly(span: Any, attributes: dict[str, Any]) -> bool:
    target = getattr(span, "_attributes", None)
    if type(target) is BoundedAttributes and target.max_value_len is None:
        with target._lock:  # noqa: SLF001
            store = target._dict  # noqa: SLF001
            if not target._immutable and (target.maxlen is None or len(store) + len(attributes) <= target.maxlen):  # noqa: SLF001
                store.update(attributes)
                return True
    return False


def _self_test() -> None:
    """Canary spans read both ways give the same parts; attributes set both ways give the same span attributes."""
    from opentelemetry.sdk.trace import TracerProvider

    from amas_otel._fastpath.canary import canary_spans

    for span in canary_spans():
        fast, public = _fields(span), public_span_parts(span)
        if fast[0] != public[0] or fast[2:] != public[2:] or dict(fast[1] or {}) != dict(public[1] or {}):
            raise AssertionError(f"span fields read differently: {fast!r} vs {public!r}")
    provider = TracerProvider(shutdown_on_exit=False)
    tracer = provider.get_tracer("amas_otel.canary")
    values = {"amas.correlation.id": "req-1", "n": 1, "ok": True, "ratio": 0.5}
    with tracer.start_as_current_span("fast", attributes={"a": "1"}) as fast_span:
        if not _set_directly(fast_span, values):
            raise AssertionError("a live span's attributes are not the layout the fast path writes")
    with tracer.start_as_current_span("public", attributes={"a": "1"}) as public_span:
        public_span.set_attributes(values)
    if dict(fast_span.attributes or {}) != dict(public_span.attributes or {}):
        raise AssertionError(f"attributes set differently: {dict(fast_span.attributes or {})!r} vs {dict(public_span.attributes or {})!r}")
    provider.shutdown()


SPAN_FIELDS = FastPath("span_fields", OTEL_SDK, _self_test)
