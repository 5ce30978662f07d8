"""ASGI plumbing for correlation ids: request headers in, response headers out, one id per request.

The request correlation id (from the ``X-Correlation-ID`` header, else the
``correlation_id`` baggage entry, else a new UUID), the response-header
helper every amas-otel middleware adds its headers through, and
:class:`CorrelationMiddleware`, the pure ASGI middleware built on them.
:mod:`amas_otel.fastapi` and :mod:`amas_otel.ratelimit` use the same helpers,
so a correlation id is chosen, put in context and sent back one way only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any

from opentelemetry import baggage, context, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator

from amas_otel import semconv
from amas_otel.baggage_limits import cap_baggage
from amas_otel.logging.correlation import CORRELATION_BAGGAGE_KEY, context_with

__all__ = [
    "CORRELATION_HEADER",
    "Header",
    "CorrelationMiddleware",
    "header_name",
    "with_headers",
    "request_correlation_id",
    "correlation_context",
    "new_correlation_id",
    "clear_id_pool",
    "ID_POOL_SIZE",
]

#: HTTP header carrying the correlation id in and out.
CORRELATION_HEADER = "X-Correlation-ID"
#: One ASGI header: (lower-cased name, value), both bytes.
Header = tuple[bytes, bytes]
#: What a correlation id taken from a request may be: no log injection through it.
_CORRELATION_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def header_name(header: str) -> bytes:
    """``header`` as ASGI servers hand request header names over: lower-cased bytes."""
    return header.lower().encode("latin-1")


def with_headers(message: MutableMapping[str, Any], added: Sequence[Header], replaced: bytes = b"") -> MutableMapping[str, Any]:
    """``message`` (an ``http.response.start``) with ``added`` after the application's headers.

    ``replaced`` (a lower-cased name, e.g. the correlation header's) drops the
    application's own headers of that name, in any case: the added one replaces
    them rather than going out twice.  The one place response headers are
    added: CorrelationMiddleware, RateLimitMiddleware and the request
    middleware (RateLimit-* and the correlation header in one list).

    A copy, not ``message`` changed in place: an application may send the same
    dict on every response (or from concurrent requests), and changed in place
    it would carry one request's headers into the next.
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


def _valid_correlation_id(raw: str | None) -> str | None:
    if raw is None:
        return None
    raw = raw.strip()
    return raw if _CORRELATION_ID.fullmatch(raw) else None


def request_correlation_id(headers: Iterable[Header], header: bytes, extracted: context.Context | None = None) -> str:
    """A request's correlation id: from ``header`` (a lower-cased name), else the ``correlation_id`` baggage entry, else a new UUID.

    Values that are not 1-128 characters of ``A-Z a-z 0-9 . _ : -`` are not
    taken (no log injection).  ``extracted``: the context the request's
    ``baggage`` header was already parsed into (by the global propagator), so
    the header is parsed once per request.
    """
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
        entry = baggage.get_baggage(CORRELATION_BAGGAGE_KEY, extracted)
        found = _valid_correlation_id(None if entry is None else str(entry))
        if found:
            return found
    return new_correlation_id()


def correlation_context(headers: Iterable[Header], header: bytes) -> tuple[str, context.Context]:
    """The request's correlation id and the current context with it, as ``LoggingContext(correlation_id=...)`` holds it.

    The current span, when recording, gets ``amas.correlation.id`` too: it was
    started before the id was known, so the span processor could not set it.
    """
    correlation_id = request_correlation_id(headers, header)
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(semconv.CORRELATION_ID, correlation_id)
    return correlation_id, context_with({"correlation_id": correlation_id})


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
        self._header = header_name(header)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = self._header
        correlation_id, ctx = correlation_context(scope.get("headers") or (), header)
        added = ((header, correlation_id.encode("latin-1")),)

        async def send_with_header(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = with_headers(message, added, header)
            await send(message)

        token = context.attach(ctx)
        try:
            await self.app(scope, receive, send_with_header)
        finally:
            context.detach(token)


def new_correlation_id() -> str:
    """A random (version 4) UUID string, as ``str(uuid.uuid4())`` gives, without building a UUID object."""
    while True:
        try:
            return _id_pool.pop()
        except IndexError:
            _fill_id_pool()


def _fill_id_pool() -> None:
    # One urandom read per batch of ids rather than a system call per request.
    h = os.urandom(16 * ID_POOL_SIZE).hex()
    # Version nibble 4; variant bits 10xx (RFC 4122) in the next group's first nibble.
    _id_pool.extend(
        f"{h[i:i + 8]}-{h[i + 8:i + 12]}-4{h[i + 13:i + 16]}-{_UUID_VARIANT[h[i + 16]]}{h[i + 17:i + 20]}-{h[i + 20:i + 32]}"
        for i in range(0, len(h), 32)
    )


def clear_id_pool() -> None:
    """Forget the ids drawn but not handed out yet (a forked worker must not hand out its parent's)."""
    _id_pool.clear()


_UUID_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
#: How many ids one urandom read makes.
ID_POOL_SIZE = 64
_id_pool: list[str] = []
os.register_at_fork(after_in_child=clear_id_pool)
