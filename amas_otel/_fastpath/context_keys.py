"""The context entries ``trace.set_span_in_context`` and ``baggage.set_baggage`` write, found through those functions.

Reading ``ctx.get(SPAN_KEY)`` is what ``trace.get_current_span(ctx)`` does,
without its two calls.  The keys are not imported (they are private names of
opentelemetry-api): each is found by calling the public setter on an empty
context and checked by reading it back through the public getter.  When the
API stores them differently, the key is None and callers use the public functions.
"""

from __future__ import annotations

from opentelemetry import baggage, context, trace

__all__ = ["SPAN_KEY", "BAGGAGE_KEY"]


def _span_key() -> str | None:
    probe = trace.NonRecordingSpan(trace.SpanContext(1, 1, is_remote=False))
    ctx = trace.set_span_in_context(probe, context.Context())
    keys = [key for key, value in ctx.items() if value is probe]
    if len(keys) == 1 and len(ctx) == 1 and trace.get_current_span(context.Context({keys[0]: probe})) is probe:
        return keys[0]
    return None


def _baggage_key() -> str | None:
    ctx = baggage.set_baggage("probe", "1", context.Context())
    keys = list(ctx)
    if len(keys) == 1 and baggage.get_all(context.Context({keys[0]: {"k": "v"}})) == {"k": "v"}:
        return keys[0]
    return None


SPAN_KEY = _span_key()
BAGGAGE_KEY = _baggage_key()
