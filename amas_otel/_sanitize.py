"""Telemetry every sink can encode: bad values are replaced and counted, one bad record never costs its batch.

A Python ``str`` may hold lone surrogates (``"\\udcff"`` from a mis-decoded
file name, ``"\\ud800"`` from a JSON escape) that UTF-8 cannot encode: written
to stdout they raise ``UnicodeEncodeError`` into the logging call, and in an
OTLP log batch they make the encoder refuse the whole batch.  The redaction
engine passes every string through :func:`valid_text`, the renderers their
lines through :func:`encodable`, and :class:`RecordIsolatingLogExporter`
guards the OTLP log exporter against what is left (keys, values of types
the encoder refuses).  Each replaced value is counted in
:data:`amas_otel.semconv.SANITIZED_VALUES`, each record that still could not
be encoded in :data:`amas_otel.semconv.DROPPED_RECORDS`, and each dropped
record is reported on the ``amas_otel.export`` logger (not under the
exporter's once-a-minute filter: a lost record is news).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from amas_otel import semconv
from amas_otel._counting import Tally
from amas_otel._fastpath.log_encoding import encodes
from amas_otel.scope import amas_meter

__all__ = ["valid_text", "is_encodable", "encodable", "register", "RecordIsolatingLogExporter"]

_log = logging.getLogger("amas_otel.export")
_sanitized = Tally()
_dropped = Tally()
_registered: set[int] = set()
_INT64 = (-(2**63), 2**63 - 1)


def valid_text(text: str) -> str:
    """``text`` (which UTF-8 cannot encode) with each lone surrogate replaced by U+FFFD, counted.

    A pair written as two code points (``"\\ud83d\\ude00"``) becomes the character it stands for.
    """
    next(_sanitized)
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def is_encodable(text: str) -> bool:
    """True when UTF-8 can encode ``text``."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def encodable(text: str) -> str:
    """``text`` itself when UTF-8 can encode it (ASCII is recognised in O(1)), else :func:`valid_text`."""
    return text if is_encodable(text) else valid_text(text)


def register(meter_provider: Any) -> None:
    """Publish the two counts on ``meter_provider`` (once per provider)."""
    if id(meter_provider) in _registered:
        return
    _registered.add(id(meter_provider))
    meter = amas_meter(meter_provider)
    meter.create_observable_counter(
        semconv.SANITIZED_VALUES,
        callbacks=[lambda options: _observe(_sanitized)],
        unit="{value}",
        description="Telemetry strings that UTF-8 cannot encode (lone surrogates), replaced",
    )
    meter.create_observable_counter(
        semconv.DROPPED_RECORDS,
        callbacks=[lambda options: _observe(_dropped)],
        unit="{record}",
        description="Log records dropped because they could not be encoded even after sanitising",
    )


def _observe(counter: Tally) -> Iterable[Observation]:
    return [Observation(counter.value())]


def _clean(value: Any) -> Any:
    """``value`` as the OTLP encoder accepts it: valid strings, str keys, int64 integers, primitives and
    lists/maps of them; each value changed is counted."""
    kind = type(value)
    if kind is str:
        return encodable(value)
    if kind is bool or kind is float or value is None or kind is bytes:
        return value
    if kind is int and _INT64[0] <= value <= _INT64[1]:
        return value
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "items"):
        return {(encodable(k) if type(k) is str else _changed(str(k))): _clean(v) for k, v in value.items()}
    return _changed(str(value))


def _changed(text: str) -> str:
    next(_sanitized)
    return encodable(text)


def _make_encodable(record: Any) -> None:
    record.body = _clean(record.body)
    if record.attributes:
        record.attributes = _clean(record.attributes)
    if record.event_name is not None:
        record.event_name = encodable(str(record.event_name))


def _encodable(records: list[Any]) -> tuple[list[Any], bool]:
    """``(the records the OTLP encoder takes, sanitised where needed; whether any was sanitised or dropped)``.

    The batch is halved down to the records the encoder refuses; each is
    sanitised (:func:`_make_encodable`) and, when still refused, dropped,
    counted and reported (without its content).
    """
    if encodes(records) is not False:  # taken, or the encoder cannot be asked: as they are
        return records, False
    if len(records) > 1:
        middle = len(records) // 2
        first, first_changed = _encodable(records[:middle])
        second, second_changed = _encodable(records[middle:])
        return first + second, first_changed or second_changed
    record = records[0].log_record
    try:
        _make_encodable(record)
    except Exception:  # noqa: BLE001 - a value whose text cannot be taken: the record goes
        pass
    else:
        if encodes(records):
            return records, True
    next(_dropped)
    _log.error(
        "amas_otel: dropped a log record that cannot be encoded for OTLP, even sanitised (severity %s)",
        getattr(record, "severity_text", None) or "unset",
    )
    return [], True


class RecordIsolatingLogExporter(LogRecordExporter):
    """Wraps a log exporter so that a record it cannot encode costs that record, never the batch.

    The wrapped exporter runs first, untouched; only when it fails (or
    raises) is the batch tried through the OTLP encoder, halving it down to
    the records that fail: those are sanitised (:func:`_clean`), and the
    ones that still fail are dropped, counted and reported.  The rest is
    exported again.  A failure that is not about encoding (collector down)
    is returned as it was.
    """

    def __init__(self, exporter: LogRecordExporter) -> None:
        self._exporter = exporter

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        try:
            result = self._exporter.export(batch)
        except Exception:  # noqa: BLE001 - decided below: an encoding problem or not
            result = LogRecordExportResult.FAILURE
        if result is LogRecordExportResult.SUCCESS:
            return result
        good, changed = _encodable(list(batch))
        if not changed:
            return result  # every record encodes: the failure was elsewhere
        if not good:
            return LogRecordExportResult.SUCCESS
        try:
            return self._exporter.export(good)
        except Exception:  # noqa: BLE001 - the processor would only log it
            return LogRecordExportResult.FAILURE

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter.force_flush(timeout_millis)
