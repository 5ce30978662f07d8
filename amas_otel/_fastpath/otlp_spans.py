"""OTLP/HTTP span export with a direct protobuf encoder.

The SDK's exporter builds a protobuf object per span, per attribute and per
attribute value, and hashes each span's Resource (a JSON dump of every
resource attribute) to group the batch.  In a single-process ASGI server that
work runs on the export thread while holding the GIL, so it is paid for
directly in requests per second.  :func:`encode_spans` writes the same
``ExportTraceServiceRequest`` bytes straight from the spans instead: resources
and scopes are encoded once per object, ``(key, value)`` attributes once per
distinct pair (bounded cache), and only rare parts (events, links, non-scalar
values) go through the SDK's protobuf encoder.  :class:`EncodingBatchSpanProcessor`
encodes each span when it ends, so its export queue holds bytes, not span objects.

The fast path ``span_export`` (:data:`SPAN_EXPORT`): its public twin is the
SDK's encoder (``opentelemetry.exporter.otlp.proto.common.trace_encoder.encode_spans``)
behind the SDK's ``BatchSpanProcessor`` and ``OTLPSpanExporter``.  When the
gate is closed, ``configure()`` uses those; when the encoder raises at run
time, the fast path switches off and the span goes through the SDK's encoder.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import Any

from opentelemetry.exporter.otlp.proto.common._internal import (
    _encode_instrumentation_scope,
    _encode_resource,
    _encode_value,
)
from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import _encode_events, _encode_links
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.trace import DEFAULT_TRACE_STATE, SpanKind

from amas_otel._fastpath.batch_queue import enqueue, enqueues
from amas_otel._fastpath.gate import FastPath
from amas_otel._fastpath.versions import OTEL_SDK, OTLP_EXPORTER
from amas_otel.semconv import CORRELATION_ID

__all__ = ["SPAN_EXPORT", "encode_span", "encode_request", "encode_spans", "FastOTLPSpanExporter", "EncodingBatchSpanProcessor"]

_log = logging.getLogger("amas_otel.sdk")

# Span.kind (field 6) by SpanKind value: the SDK's values are one less than OTLP's enum.
_KIND = {kind.value: bytes((0x30, kind.value + 1)) for kind in SpanKind}
# Span.trace_id, span_id (fields 1, 2): 16 and 8 bytes, big-endian; the trace id in two halves.
_IDS = struct.Struct(">2sQQ2sQ")
_LOW_64 = (1 << 64) - 1
# Span.start_time_unix_nano / end_time_unix_nano (fields 7, 8: fixed64).
_TIMES = struct.Struct("<BQBQ")
# Span.status (field 15) without a description, by code (UNSET, OK, ERROR).
_STATUS = {0: b"\x7a\x00", 1: b"\x7a\x02\x18\x01", 2: b"\x7a\x02\x18\x02"}
# Span.flags: SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK (| IS_REMOTE for a remote parent).
_FLAGS_LOCAL = b"\x85\x01" + struct.pack("<I", 0x100)
_FLAGS_REMOTE = b"\x85\x01" + struct.pack("<I", 0x300)
_ATTRIBUTE_CACHE_SIZE = 4096
_CACHED_TYPES = frozenset({str, int, bool})
# Attributes whose values differ on every span: caching them would only push the repeating ones out.
_UNIQUE_KEYS = frozenset({CORRELATION_ID})
# Encoded Span.attributes entries by (key, type, value): most values repeat
# (method, route, status, addresses); ids do not, hence the bound.
_attribute_cache: dict[tuple[str, type, Any], bytes] = {}
# Encoded Span.name fields: names are route templates, a small set.
_names: dict[str, bytes] = {}
# Encoded fields of resource / scope objects, which live as long as their provider / tracer: encoded once each.
_fields_cache: dict[int, tuple[Any, tuple[bytes, bytes]]] = {}
# A span as the export queue holds it: (resource fields, scope fields, ScopeSpans.spans entry).
EncodedSpan = tuple[tuple[bytes, bytes], tuple[bytes, bytes], bytes]


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    if value < 0x4000:  # a span's length, usually
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _len_field(tag: int, payload: bytes) -> bytes:
    return bytes((tag,)) + _varint(len(payload)) + payload


def _scalar_value(value: Any) -> bytes:
    """An encoded ``AnyValue`` for a str / bool / int / float, or for anything else through the SDK."""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _len_field(0x0A, value.encode("utf-8"))
    if isinstance(value, int):
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return b"\x21" + struct.pack("<d", value)
    return _encode_value(value).SerializeToString()


def _attribute_field(key: str, value: Any) -> bytes:
    """One encoded ``Span.attributes`` entry (a ``KeyValue``)."""
    if value.__class__ is str:  # most misses are strings (ids, paths): their lengths fit in one byte each
        k, v = key.encode("utf-8"), value.encode("utf-8")
        size = len(k) + len(v) + 6
        if size < 0x80:  # one formatting call: tag, length, key field, value field
            return b"J%c\n%c%b\x12%c\n%c%b" % (size, len(k), k, len(v) + 2, len(v), v)
    return _len_field(0x4A, _len_field(0x0A, key.encode("utf-8")) + _len_field(0x12, _scalar_value(value)))


def _attribute_fields(attributes: dict[str, Any]) -> list[bytes]:
    """The span's ``attributes`` as encoded ``Span.attributes`` (field 9) entries."""
    values = attributes.values()
    # Cache lookups for every attribute at C speed (no Python call per value);
    # only str / int / bool are cached: equal floats can differ in bytes (0.0, -0.0).
    try:
        found: list[bytes | None] = list(map(_attribute_cache.get, zip(attributes, map(type, values), values)))
    except TypeError:  # an unhashable value (a mapping): encode the span's attributes one by one
        found = [None] * len(attributes)
    misses = found.count(None)
    if misses:
        # Only the misses (a request id, a new path) are visited, found at C speed.
        items = attributes.items()
        for _ in range(misses):
            index = found.index(None)
            found[index] = _encoded_miss(*next(islice(items, index, None)))
    return found  # type: ignore[return-value]


def _encoded_miss(key: str, value: Any) -> bytes:
    """One attribute not in the cache, encoded (and cached when its type allows); b"" when it cannot be encoded."""
    try:
        encoded = _attribute_field(key, value)
    except Exception:  # noqa: BLE001 - like the SDK: skip the attribute, keep the span
        _log.exception("amas_otel: cannot encode span attribute %s", key)
        return b""
    if value.__class__ in _CACHED_TYPES and key not in _UNIQUE_KEYS:
        if len(_attribute_cache) >= _ATTRIBUTE_CACHE_SIZE:
            _attribute_cache.clear()  # unique values (ids) filled it: start again, the hot ones return at once
        _attribute_cache[(key, value.__class__, value)] = encoded
    return encoded


def _cached(obj: Any, build: Any) -> Any:
    """``build(obj)``, computed once per object (resources and scopes live as long as their provider or tracer)."""
    found = _fields_cache.get(id(obj))
    if found is not None and found[0] is obj:
        return found[1]
    value = build(obj)
    if len(_fields_cache) >= 256:
        _fields_cache.clear()
    _fields_cache[id(obj)] = (obj, value)
    return value


def _resource_fields(resource: Any) -> tuple[bytes, bytes]:
    """``ResourceSpans.resource`` and ``.schema_url`` (fields 1 and 3), encoded."""
    schema = _len_field(0x1A, resource.schema_url.encode("utf-8")) if resource.schema_url else b""
    return _len_field(0x0A, _encode_resource(resource).SerializeToString()), schema


def _scope_fields(scope: Any) -> tuple[bytes, bytes]:
    """``ScopeSpans.scope`` and ``.schema_url`` (fields 1 and 3), encoded."""
    if scope is None:
        return b"\x0a\x00", b""
    schema = _len_field(0x1A, scope.schema_url.encode("utf-8")) if scope.schema_url else b""
    return _len_field(0x0A, _encode_instrumentation_scope(scope).SerializeToString()), schema


def encode_span(span: ReadableSpan) -> EncodedSpan:
    """``span`` encoded, with its resource and scope (cached per object): an item :func:`encode_request` takes.

    Made only of bytes and tuples, which the garbage collector stops
    tracking: a queue of them adds nothing to the collector's work, where
    queued ``ReadableSpan`` objects (a dozen tracked objects each) trigger
    full collections of the whole process.
    """
    return (
        _cached(span._resource, _resource_fields),  # noqa: SLF001
        _cached(span._instrumentation_scope, _scope_fields),  # noqa: SLF001
        _span(span),
    )


def _span(span: ReadableSpan) -> bytes:
    """One encoded ``ScopeSpans.spans`` entry (field 2, length included)."""
    # The public properties copy (events, links), wrap twice (attributes) or
    # are Python calls (enum values, lengths) on every access; the snapshot's
    # own fields and SpanContext's tuple items are read instead.
    trace_id, span_id, _, _, trace_state, _ = span._context  # noqa: SLF001
    parent = span._parent  # noqa: SLF001
    parts = [_IDS.pack(b"\x0a\x10", trace_id >> 64, trace_id & _LOW_64, b"\x12\x08", span_id)]
    # Spans started without a trace state share the default one; TraceState's length is a Python call.
    if trace_state is not DEFAULT_TRACE_STATE and trace_state:
        parts.append(_len_field(0x1A, ",".join(f"{k}={v}" for k, v in trace_state.items()).encode("utf-8")))
    if parent is not None:
        parts += (b"\x22\x08", parent[1].to_bytes(8, "big"))
    name = _names.get(span._name)  # noqa: SLF001
    if name is None:
        name = _len_field(0x2A, span._name.encode("utf-8"))  # noqa: SLF001
        if len(_names) >= _ATTRIBUTE_CACHE_SIZE:
            _names.clear()
        _names[span._name] = name  # noqa: SLF001
    parts += (
        name,
        _KIND[span._kind._value_],  # noqa: SLF001
        _TIMES.pack(0x39, span._start_time or 0, 0x41, span._end_time or 0),  # noqa: SLF001
    )
    attributes = span._attributes  # noqa: SLF001
    store = getattr(attributes, "_dict", attributes)  # BoundedAttributes' length is a Python call
    if store:
        parts += _attribute_fields(store)
    if getattr(attributes, "dropped", 0):
        parts += (b"\x50", _varint(attributes.dropped))  # type: ignore[union-attr]
    events, links = span._events, span._links  # noqa: SLF001
    if getattr(events, "_dq", events):
        parts += [_len_field(0x5A, event.SerializeToString()) for event in _encode_events(span.events) or ()]
    if getattr(events, "dropped", 0):
        parts += (b"\x60", _varint(events.dropped))
    if getattr(links, "_dq", links):
        parts += [_len_field(0x6A, link.SerializeToString()) for link in _encode_links(span.links) or ()]
    if getattr(links, "dropped", 0):
        parts += (b"\x70", _varint(links.dropped))
    status = span._status  # noqa: SLF001
    if status is not None:
        code = status._status_code._value_  # noqa: SLF001
        if status._description:  # noqa: SLF001
            body = _len_field(0x12, status._description.encode("utf-8")) + (b"\x18" + _varint(code) if code else b"")  # noqa: SLF001
            parts.append(_len_field(0x7A, body))
        else:
            parts.append(_STATUS[code])
    parts.append(_FLAGS_REMOTE if parent is not None and parent[2] else _FLAGS_LOCAL)
    body = b"".join(parts)
    return b"\x12" + _varint(len(body)) + body


def encode_request(items: Iterable[EncodedSpan]) -> bytes:
    """The serialized OTLP ``ExportTraceServiceRequest`` holding the spans :func:`encode_span` encoded.

    Spans are grouped by resource, then by scope, in order of first
    appearance, equal resources (and scopes) together: as the SDK's encoder does.
    """
    grouped: dict[tuple[bytes, bytes], dict[tuple[bytes, bytes], list[bytes]]] = {}
    last_resource = last_scope = None
    spans: list[bytes] = []
    for resource, scope, span in items:
        if resource is not last_resource or scope is not last_scope:  # batches are runs of one resource and scope
            spans = grouped.setdefault(resource, {}).setdefault(scope, [])
            last_resource, last_scope = resource, scope
        spans.append(span)
    out = []
    for (resource_field, resource_schema), scopes in grouped.items():
        body = [resource_field]
        body += [_len_field(0x12, b"".join([scope_field, *encoded, scope_schema])) for (scope_field, scope_schema), encoded in scopes.items()]
        body.append(resource_schema)
        out.append(_len_field(0x0A, b"".join(body)))
    return b"".join(out)


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """The serialized OTLP ``ExportTraceServiceRequest`` for ``spans``, as the SDK's encoder would produce it."""
    return encode_request(map(encode_span, spans))


class FastOTLPSpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/HTTP span exporter (same options, transport, retries, self-metrics) with :func:`encode_request`.

    ``export`` takes ``ReadableSpan`` objects, or the items
    :class:`EncodingBatchSpanProcessor` queued (spans encoded already).  With
    :data:`SPAN_EXPORT` off it is the SDK's exporter: spans not encoded yet
    go through the SDK's encoder.
    """

    def export(self, spans: Sequence[ReadableSpan | EncodedSpan]) -> SpanExportResult:
        encoded, plain = _encodable(spans)
        if not encoded:
            return super().export(plain)  # type: ignore[arg-type]
        if self._shutdown:
            _log.warning("amas_otel: span exporter already shut down, ignoring batch")
            return SpanExportResult.FAILURE
        with self._metrics.export_operation(len(spans)) as result:
            # Concatenated requests are one request: protobuf appends repeated fields.
            data = encode_request(encoded) + (sdk_encode_spans(plain).SerializePartialToString() if plain else b"")
            if 0 < self._max_request_size < len(data):
                _log.warning("amas_otel: dropping a span batch of %d bytes (max_request_size %d)", len(data), self._max_request_size)
                result.error = ValueError(f"span batch of {len(data)} bytes exceeds max_request_size {self._max_request_size}")
                return SpanExportResult.FAILURE
            sent = self._client.export(data)
            if not sent.success:
                result.error = sent.error
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS


def _encodable(spans: Sequence[ReadableSpan | EncodedSpan]) -> tuple[list[EncodedSpan], list[ReadableSpan]]:
    """``(encoded items, spans for the SDK's encoder)``: spans not encoded yet are encoded while the fast path is on.

    An encoder error switches the fast path off: that span and the rest go to the SDK's encoder.
    """
    encoded: list[Any] = []
    plain: list[Any] = []
    for span in spans:
        if span.__class__ is tuple:
            encoded.append(span)
            continue
        if SPAN_EXPORT.on:
            try:
                encoded.append(encode_span(span))  # type: ignore[arg-type]
                continue
            except Exception as exc:  # noqa: BLE001 - the public encoder takes it
                SPAN_EXPORT.failed(exc)
        plain.append(span)
    return encoded, plain


class EncodingBatchSpanProcessor(BatchSpanProcessor):
    """The SDK's ``BatchSpanProcessor`` (same options, queue, export thread) for a :class:`FastOTLPSpanExporter`,
    queueing each sampled span already encoded.

    The span is encoded when it ends, on the thread that ended it, instead of
    being kept as a ``ReadableSpan`` until the export thread encodes the
    batch: the same work, but the queue holds about 400 bytes per span that
    the garbage collector never visits, and the export thread only joins
    them and sends.  With :data:`SPAN_EXPORT` off (or switched off by an
    encoder error) spans are queued as the SDK's processor queues them.
    """

    def __init__(self, span_exporter: FastOTLPSpanExporter, *args: Any, **kwargs: Any) -> None:
        if not isinstance(span_exporter, FastOTLPSpanExporter):
            raise TypeError(f"span_exporter must be a FastOTLPSpanExporter, got {type(span_exporter).__name__}")
        super().__init__(span_exporter, *args, **kwargs)
        queue = self._batch_processor
        self._queue = queue if SPAN_EXPORT.enabled() and enqueues(queue) else None

    def on_end(self, span: ReadableSpan) -> None:
        queue = self._queue
        if queue is None or not SPAN_EXPORT.on:
            super().on_end(span)
            return
        try:
            context = span._context  # noqa: SLF001 - the property is a Python call
            if context is None or not context.trace_flags & 1:  # not sampled
                return
            enqueue(queue, encode_span(span))
        except Exception as exc:  # noqa: BLE001 - never raised into the code that ended the span
            SPAN_EXPORT.failed(exc)
            super().on_end(span)


def _self_test() -> None:
    """Canary spans through :func:`encode_spans` and the SDK's encoder: the same bytes, or an error."""
    from amas_otel._fastpath.canary import canary_spans

    spans = canary_spans()
    ours, theirs = encode_spans(spans), sdk_encode_spans(spans).SerializePartialToString()
    if ours != theirs:
        raise AssertionError(f"encoded canary spans differ from the SDK encoder's ({len(ours)} vs {len(theirs)} bytes)")


SPAN_EXPORT = FastPath("span_export", {**OTEL_SDK, **OTLP_EXPORTER}, _self_test)
