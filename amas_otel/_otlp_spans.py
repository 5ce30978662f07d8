"""OTLP/HTTP span export with a direct protobuf encoder.

The SDK's exporter builds a protobuf object per span, per attribute and per
attribute value, and hashes each span's Resource (a JSON dump of every
resource attribute) to group the batch.  In a single-process ASGI server that
work runs on the export thread while holding the GIL, so it is paid for
directly in requests per second.  :func:`encode_spans` writes the same
``ExportTraceServiceRequest`` bytes straight from the spans instead: resources
and scopes are encoded once per object, ``(key, value)`` attributes once per
distinct pair (bounded cache), and only rare parts (events, links, non-scalar
values) go through the SDK's protobuf encoder.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common._internal import (
    _encode_instrumentation_scope,
    _encode_resource,
    _encode_value,
)
from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import _encode_events, _encode_links
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanKind

__all__ = ["encode_spans", "FastOTLPSpanExporter"]

_log = logging.getLogger("amas_otel.sdk")

# Span.kind (field 6): the SDK's SpanKind values are one less than OTLP's enum.
_KIND = {kind: bytes((0x30, kind.value + 1)) for kind in SpanKind}
# Span.start_time_unix_nano / end_time_unix_nano (fields 7, 8: fixed64).
_TIMES = struct.Struct("<BQBQ")
# Span.status (field 15) without a description, by code (UNSET, OK, ERROR).
_STATUS = {0: b"\x7a\x00", 1: b"\x7a\x02\x18\x01", 2: b"\x7a\x02\x18\x02"}
# Span.flags: SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK (| IS_REMOTE for a remote parent).
_FLAGS_LOCAL = b"\x85\x01" + struct.pack("<I", 0x100)
_FLAGS_REMOTE = b"\x85\x01" + struct.pack("<I", 0x300)
_ATTRIBUTE_CACHE_SIZE = 4096
_CACHED_TYPES = frozenset({str, int, bool})
# Encoded Span.attributes entries by (key, type, value): most values repeat
# (method, route, status, addresses); ids do not, hence the bound.
_attribute_cache: dict[tuple[str, type, Any], bytes] = {}
# Encoded Span.name fields: names are route templates, a small set.
_names: dict[str, bytes] = {}
# Resource / scope objects live as long as their provider / tracer: encode each once.
_block_cache: dict[int, tuple[Any, bytes]] = {}


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
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


def _attribute_fields(attributes: Any) -> list[bytes]:
    """The span's ``attributes`` as encoded ``Span.attributes`` (field 9) entries."""
    cache = _attribute_cache
    parts = []
    for key, value in attributes.items():
        # Only str / int / bool are cached: equal floats can differ in bytes (0.0, -0.0).
        cache_key = (key, value.__class__, value) if value.__class__ in _CACHED_TYPES else None
        if cache_key is not None:
            found = cache.get(cache_key)
            if found is not None:
                parts.append(found)
                continue
        try:
            encoded = _len_field(0x4A, _len_field(0x0A, key.encode("utf-8")) + _len_field(0x12, _scalar_value(value)))
        except Exception:  # noqa: BLE001 - like the SDK: skip the attribute, keep the span
            _log.exception("amas_otel: cannot encode span attribute %s", key)
            continue
        if cache_key is not None:
            if len(cache) >= _ATTRIBUTE_CACHE_SIZE:
                cache.clear()  # unique values (ids) filled it: start again, the hot ones return at once
            cache[cache_key] = encoded
        parts.append(encoded)
    return parts


def _block(obj: Any, encode: Any) -> bytes:
    found = _block_cache.get(id(obj))
    if found is not None and found[0] is obj:
        return found[1]
    encoded = encode(obj).SerializeToString()
    if len(_block_cache) >= 256:
        _block_cache.clear()
    _block_cache[id(obj)] = (obj, encoded)
    return encoded


def _span(span: ReadableSpan) -> bytes:
    context = span.context
    parent = span.parent
    parts = [b"\x0a\x10", context.trace_id.to_bytes(16, "big"), b"\x12\x08", context.span_id.to_bytes(8, "big")]
    trace_state = context.trace_state
    if trace_state:
        parts.append(_len_field(0x1A, ",".join(f"{k}={v}" for k, v in trace_state.items()).encode("utf-8")))
    if parent is not None:
        parts += (b"\x22\x08", parent.span_id.to_bytes(8, "big"))
    name = _names.get(span.name)
    if name is None:
        name = _len_field(0x2A, span.name.encode("utf-8"))
        if len(_names) >= _ATTRIBUTE_CACHE_SIZE:
            _names.clear()
        _names[span.name] = name
    parts += (name, _KIND[span.kind], _TIMES.pack(0x39, span.start_time or 0, 0x41, span.end_time or 0))
    # The public properties copy (events, links) or wrap twice (attributes) on
    # every access; read the snapshot's own fields.
    attributes = span._attributes  # noqa: SLF001
    if attributes:
        parts += _attribute_fields(getattr(attributes, "_dict", attributes))
    if span.dropped_attributes:
        parts += (b"\x50", _varint(span.dropped_attributes))
    if span._events:  # noqa: SLF001
        parts += [_len_field(0x5A, event.SerializeToString()) for event in _encode_events(span.events) or ()]
    if span.dropped_events:
        parts += (b"\x60", _varint(span.dropped_events))
    if span._links:  # noqa: SLF001
        parts += [_len_field(0x6A, link.SerializeToString()) for link in _encode_links(span.links) or ()]
    if span.dropped_links:
        parts += (b"\x70", _varint(span.dropped_links))
    status = span.status
    if status is not None:
        code = status.status_code.value
        if status.description:
            body = _len_field(0x12, status.description.encode("utf-8")) + (b"\x18" + _varint(code) if code else b"")
            parts.append(_len_field(0x7A, body))
        else:
            parts.append(_STATUS[code])
    parts.append(_FLAGS_REMOTE if parent is not None and parent.is_remote else _FLAGS_LOCAL)
    return b"".join(parts)


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """The serialized OTLP ``ExportTraceServiceRequest`` for ``spans``, as the SDK's encoder would produce it."""
    # resource id -> (resource, {scope id -> (scope, [encoded spans])})
    grouped: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
    for span in spans:
        resource, scope = span.resource, span.instrumentation_scope
        scopes = grouped.get(id(resource))
        if scopes is None:
            scopes = grouped[id(resource)] = (resource, {})
        entry = scopes[1].get(id(scope))
        if entry is None:
            entry = scopes[1][id(scope)] = (scope, [])
        entry[1].append(_len_field(0x12, _span(span)))
    out = []
    for resource, scopes in grouped.values():
        body = [_len_field(0x0A, _block(resource, _encode_resource))]
        for scope, encoded in scopes.values():
            scope_body = [_len_field(0x0A, _block(scope, _encode_instrumentation_scope) if scope else b""), *encoded]
            if scope is not None and scope.schema_url:
                scope_body.append(_len_field(0x1A, scope.schema_url.encode("utf-8")))
            body.append(_len_field(0x12, b"".join(scope_body)))
        if resource.schema_url:
            body.append(_len_field(0x1A, resource.schema_url.encode("utf-8")))
        out.append(_len_field(0x0A, b"".join(body)))
    return b"".join(out)


class FastOTLPSpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/HTTP span exporter (same options, transport, retries) with :func:`encode_spans`."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            _log.warning("amas_otel: span exporter already shut down, ignoring batch")
            return SpanExportResult.FAILURE
        try:
            data = encode_spans(spans)
        except Exception:  # noqa: BLE001 - a bad batch is dropped, never raised into the processor
            _log.exception("amas_otel: cannot encode a span batch")
            return SpanExportResult.FAILURE
        if 0 < self._max_request_size < len(data):
            _log.warning("amas_otel: dropping a span batch of %d bytes (max_request_size %d)", len(data), self._max_request_size)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS if self._client.export(data).success else SpanExportResult.FAILURE
