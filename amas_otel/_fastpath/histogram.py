"""A histogram bound to one attribute set, aggregating straight into the SDK's aggregations.

The fast path ``histogram`` (:data:`HISTOGRAM`): :class:`BoundHistogram` skips
the SDK's per-call attribute validation, copy, sort and hash for a fixed
attribute set.  Its public twin is ``Histogram.record(value, attributes)``,
which it calls for everything it does not handle itself; the self-test
records the same values both ways into two meter providers and compares the
collected points.
"""

from __future__ import annotations

import math
from time import time_ns
from typing import Any

from opentelemetry.context import get_current

from amas_otel._fastpath.context_keys import SPAN_KEY
from amas_otel._fastpath.gate import FastPath
from amas_otel._fastpath.versions import OTEL_SDK

__all__ = ["HISTOGRAM", "BoundHistogram"]

try:  # the SDK internals BoundHistogram works with
    from opentelemetry.sdk.metrics._internal import _ProxyMeterConfig
    from opentelemetry.sdk.metrics._internal._view_instrument_match import _hash_attributes
    from opentelemetry.sdk.metrics._internal.exemplar import AlwaysOffExemplarFilter, TraceBasedExemplarFilter
    from opentelemetry.sdk.metrics._internal.measurement import Measurement as _Measurement
except ImportError:  # another SDK layout, or the API alone: public recording only
    _ProxyMeterConfig = _hash_attributes = _Measurement = None  # type: ignore[assignment,misc]
    AlwaysOffExemplarFilter = TraceBasedExemplarFilter = None  # type: ignore[assignment,misc]


def _measurement_by_dict(value: float, time_unix_nano: int, instrument: Any, context: Any) -> Any:
    """``Measurement(value, time_unix_nano, instrument, context)`` without the frozen dataclass's ``__init__``.

    That ``__init__`` sets each field through ``object.__setattr__`` and then
    runs ``__post_init__``, which does nothing without attributes; storing the
    fields in the instance dict gives an equal instance at a third of the cost.
    """
    measurement = object.__new__(_Measurement)
    fields = measurement.__dict__
    fields["value"] = value
    fields["time_unix_nano"] = time_unix_nano
    fields["instrument"] = instrument
    fields["context"] = context
    fields["attributes"] = None
    return measurement


def _measurement_factory() -> Any:
    """:func:`_measurement_by_dict` if it builds what the SDK's constructor builds, else that constructor."""
    if _Measurement is None:
        return None
    try:
        sentinel = object()
        made, expected = _measurement_by_dict(1.5, 7, sentinel, sentinel), _Measurement(1.5, 7, sentinel, sentinel)  # type: ignore[arg-type]
        if made == expected and vars(made) == vars(expected):
            return _measurement_by_dict
    except (AttributeError, TypeError):
        pass
    return _Measurement


def _filters_declining_without_span() -> frozenset[type]:
    """The SDK's stock exemplar filters that, as installed, answer no when no span is current.

    Deciding those from the context alone (one dict lookup) skips the
    filter's ``trace.get_current_span`` on every request: the middleware
    records outside the request span's context, so no span is the usual case.
    """
    if SPAN_KEY is None or _Measurement is None:
        return frozenset()
    from opentelemetry.context import Context

    stock = (AlwaysOffExemplarFilter, TraceBasedExemplarFilter)
    return frozenset(kind for kind in stock if kind().should_sample(1.0, 0, None, Context()) is False)


_new_measurement = _measurement_factory()
_DECLINING_WITHOUT_SPAN = _filters_declining_without_span()
_INF = math.inf


def _may_sample_exemplar(exemplar_filter: Any, value: float, time_unix_nano: int, attributes: Any, context: Any) -> bool:
    """The answer of ``exemplar_filter.should_sample``, without the call when the stock filter's answer is known."""
    if type(exemplar_filter) in _DECLINING_WITHOUT_SPAN and context.get(SPAN_KEY) is None:
        return False
    return bool(exemplar_filter.should_sample(value, time_unix_nano, attributes, context))


class BoundHistogram:
    """``histogram.record(value, attributes)`` for one fixed attribute set, without the SDK's per-call attribute work.

    On every ``record`` the SDK validates and copies the attributes, then
    copies, sorts and hashes them again to find their aggregation: most of
    the cost of a measurement, and the same result each time for a fixed
    set.  Here the key of each view's aggregation is computed once; a
    measurement then goes to those aggregations directly, as the SDK would
    hand it over.  Everything else takes the public ``record``: the first
    measurement (the SDK creates the aggregation, or counts the set on the
    cardinality-overflow point), a value the SDK would refuse, an exemplar
    to sample, a disabled meter, delta readers that reset on collection,
    and SDK versions whose internals differ.
    """

    __slots__ = ("attributes", "_histogram", "_meter_config", "_storages", "_targets")

    def __init__(self, histogram: Any, attributes: dict[str, Any]) -> None:
        self.attributes = attributes
        self._histogram = histogram
        self._meter_config: Any = None  # the SDK's proxy of the meter's config, updated in place when reconfigured
        self._storages: Any = None  # the SDK's reader storages _targets belong to
        # (view-instrument match, aggregation key) per view; () not bound yet, None public path only.
        self._targets: tuple[tuple[Any, Any], ...] | None = ()

    def record(self, value: float) -> None:
        if self._targets and 0.0 <= value < _INF and HISTOGRAM.on:
            try:
                if self._aggregate_directly(value):
                    return
            except Exception as exc:  # noqa: BLE001 - not the SDK this was written against: the public path
                HISTOGRAM.failed(exc)
                self._targets = None
        histogram = self._histogram
        histogram.record(value, self.attributes)
        if self._targets is not None and not (self._targets and self._storages is _storages(histogram)):
            if HISTOGRAM.enabled():
                self._bind()
            else:
                self._targets = None

    def _aggregate_directly(self, value: float) -> bool:
        """Aggregate ``value`` as the SDK would, or return False for the public path to do it."""
        histogram = self._histogram
        consumer = histogram._measurement_consumer  # noqa: SLF001
        # The meter's config may be swapped at runtime (MeterProvider._set_meter_configurator): read it each time.
        if consumer._reader_storages is not self._storages or not self._meter_config._config.is_enabled:  # noqa: SLF001
            return False
        context = get_current()
        now = time_ns()
        if _may_sample_exemplar(consumer._sdk_config.exemplar_filter, value, now, self.attributes, context):  # noqa: SLF001
            return False
        targets = self._targets
        if len(targets) == 1:  # one reader, one view: the usual case, without a comprehension per call
            ((match, key),) = targets
            aggregations: Any = (match._attributes_aggregation.get(key),)  # noqa: SLF001
        else:
            aggregations = [match._attributes_aggregation.get(key) for match, key in targets]  # noqa: SLF001
        if None in aggregations:
            return False
        measurement = _new_measurement(value, now, histogram, context)
        for aggregation in aggregations:
            aggregation.aggregate(measurement, False)
        return True

    def _bind(self) -> None:
        histogram = self._histogram
        storages = _storages(histogram)
        targets: tuple[tuple[Any, Any], ...] | None
        try:
            matches = [m for storage in storages.values() for m in storage._instrument_view_instrument_matches.get(histogram, ())]  # noqa: SLF001
            meter_config = histogram._meter_config  # noqa: SLF001
            # Delta readers swap their aggregations out under the SDK's lock: public path for those.
            if type(meter_config) is not _ProxyMeterConfig or any(match._reset_on_collect for match in matches):  # noqa: SLF001
                targets = None
            else:
                targets = tuple((match, _hash_attributes(_view_attributes(match, self.attributes))) for match in matches)  # type: ignore[misc]
                self._meter_config = meter_config
        except Exception as exc:  # noqa: BLE001
            HISTOGRAM.failed(exc)
            targets = None
        self._storages, self._targets = storages, targets


def _view_attributes(match: Any, attributes: dict[str, Any]) -> dict[str, Any]:
    keys = match._view._attribute_keys  # noqa: SLF001
    return dict(attributes) if keys is None else {k: v for k, v in attributes.items() if k in keys}


def _storages(histogram: Any) -> Any:
    return getattr(getattr(histogram, "_measurement_consumer", None), "_reader_storages", None)


def _self_test() -> None:
    """The same values through :class:`BoundHistogram` and through ``Histogram.record``: equal collected points."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.metrics.view import View

    attributes = {"http.request.method": "GET", "http.route": "/items/{id}", "http.response.status_code": 200}
    points = []
    for direct in (True, False):
        reader = InMemoryMetricReader()
        provider = MeterProvider(
            metric_readers=[reader], views=[View(instrument_name="*", aggregation_cardinality_limit=10)], shutdown_on_exit=False
        )
        histogram = provider.get_meter("amas_otel.canary").create_histogram("canary.duration", unit="s")
        histogram.record(0.004, attributes)  # the first value creates the aggregation, on either path
        bound = BoundHistogram(histogram, attributes)
        bound._bind()  # noqa: SLF001
        for value in (0.02, 0.3, 2.0, 0.02):
            if not direct:
                histogram.record(value, attributes)
            elif not bound._aggregate_directly(value):  # noqa: SLF001
                raise AssertionError("the meter provider's layout is not the one the fast path reads")
        data = reader.get_metrics_data()
        point = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points[0]
        points.append((dict(point.attributes), point.count, point.sum, point.min, point.max, list(point.bucket_counts)))
        provider.shutdown()
    if points[0] != points[1]:
        raise AssertionError(f"histogram points differ: direct {points[0]!r}, Histogram.record {points[1]!r}")


HISTOGRAM = FastPath("histogram", OTEL_SDK, _self_test)
