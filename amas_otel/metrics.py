"""The metrics service: the AMAS metric kinds (HTTP, errors, business events, …) on OpenTelemetry instruments.

>>> metrics = get_metrics_service()
>>> metrics.record_http_request(method="GET", endpoint="/api/users/{user_id}", status_code=200, duration=0.15)
>>> metrics.record_error("validation_error", "user_service")
>>> print(metrics.get_metrics())                 # readable; get_metrics("prometheus") for the exposition text

Every recorder writes to an OTel instrument of the amas_otel meter, so the
values go wherever the configured readers send them (the embedded Prometheus
endpoint, OTLP).  Names and units are listed in :class:`amas_otel.semconv.Metric`:
OTel semantic-convention names where one exists (``http.server.request.duration``
in seconds, ``db.client.operation.duration``, ``system.memory.usage``…), ``amas.*``
otherwise.  System, process and cache-ratio values are *observable* instruments
(usages split by state as up-down counters, utilizations and ratios as gauges),
read only when a reader collects.

Cardinality is bounded three ways: HTTP recorders take route templates
(``/api/orders/{order_id}``; :mod:`amas_otel.fastapi` passes the matched route,
never the raw path) and unknown methods become ``_OTHER``; status codes can be
recorded as classes (``amas.http.response.status_class`` = ``2xx``, never in
``http.response.status_code``, which is an integer); and :func:`metric_views` caps distinct attribute
sets per instrument with the SDK's cardinality limit, beyond which
measurements are counted on one ``otel.metric.overflow=true`` point instead of
growing memory.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from amas_otel._fastpath.histogram import BoundHistogram
from amas_otel.http_origin import known_http_methods, normalise_method
from amas_otel.scope import amas_meter
from amas_otel.sdk import configure_on_first_use
from amas_otel.semconv import COMPONENT, ERROR_TYPE, INSTRUMENTATION_SCOPE, HttpAttr, Metric, MetricAttr

__all__ = [
    "MetricsService",
    "get_metrics_service",
    "record_http_request",
    "record_error",
    "CUSTOM_METRICS",
    "metric_views",
    "DEFAULT_CARDINALITY_LIMIT",
    "HTTP_DURATION_BUCKETS",
]

#: The application's own instruments that ``AMAS_CUSTOM_METRICS_ENABLED=false`` leaves unregistered.
CUSTOM_METRICS = tuple(
    spec[0]
    for spec in (
        Metric.ERRORS,
        Metric.BUSINESS_EVENTS,
        Metric.OPERATION_DURATION,
        Metric.AUTH_ATTEMPTS,
        Metric.AGENT_DURATION,
        Metric.TASK_DURATION,
        Metric.CACHE_OPERATIONS,
        Metric.CACHE_HIT_RATIO,
    )
)

#: Distinct attribute sets kept per instrument before measurements go to the overflow point.
DEFAULT_CARDINALITY_LIMIT = 2000

#: Bucket boundaries the HTTP semantic conventions recommend for http.server.request.duration (s).
HTTP_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

_OUTCOME = {True: "success", False: "failure"}
# record_database_query statuses that mean the operation succeeded (no error.type).
_DB_SUCCESS = frozenset({"success", "succeeded", "ok"})
# Statuses that say only "it failed": error.type is then the convention's fallback _OTHER.
_DB_GENERIC_FAILURE = frozenset({"error", "failure", "failed", "fail"})
# Attribute dicts for HTTP requests are reused; this many distinct ones are cached at most.
_HTTP_ATTR_CACHE_SIZE = 4096
# At most this many cache names get a hit ratio (names are chosen by developers, not by traffic).
_MAX_CACHES = 256


def metric_views(cardinality_limit: int = DEFAULT_CARDINALITY_LIMIT) -> list[Any]:
    """Views for ``MeterProvider(views=...)`` capping every instrument at ``cardinality_limit`` attribute sets.

    Uses the SDK's own limit: past it, measurements are aggregated on a single
    point with ``otel.metric.overflow=true``, so the overflow is counted and
    memory stays flat.  One wildcard view, so no instrument is duplicated.
    """
    from opentelemetry.sdk.metrics.view import View

    if isinstance(cardinality_limit, bool) or not isinstance(cardinality_limit, int) or cardinality_limit < 1:
        raise ValueError(f"cardinality_limit must be a positive integer, got {cardinality_limit!r}")
    return [View(instrument_name="*", aggregation_cardinality_limit=cardinality_limit)]


def _non_negative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


@dataclass(slots=True)
class _Lookups:
    """One cache's lookups since start (only caches looked up at least once are kept)."""

    hits: int = 0
    misses: int = 0

    def hit_ratio(self) -> float:
        return self.hits / (self.hits + self.misses)


class MetricsService:
    """Recorders of the AMAS metric kinds on one OTel meter.

    ``meter_provider`` defaults to the global one.  ``registry`` is the
    ``prometheus_client`` registry :meth:`get_metrics` reads (default: the one
    the embedded Prometheus endpoint serves).  ``status_code_classes`` records
    ``2xx``/``4xx``… (``amas.http.response.status_class``) instead of exact
    status codes (``http.response.status_code``, which never holds a class).  ``system_metrics`` adds the
    psutil gauges (CPU, memory, the filesystem holding ``filesystem_path``).
    ``custom_metrics`` (default ``AMAS_CUSTOM_METRICS_ENABLED``) registers the
    application's own ``amas.*`` instruments (:data:`CUSTOM_METRICS`); when
    False their recorders still check their arguments but record nothing, and
    the HTTP, database and system instruments are unaffected.
    """

    def __init__(
        self,
        *,
        meter_provider: Any = None,
        registry: Any = None,
        status_code_classes: bool = False,
        system_metrics: bool = True,
        filesystem_path: str = "/",
        custom_metrics: bool | None = None,
    ) -> None:
        if meter_provider is None:  # on the global provider
            configure_on_first_use("MetricsService")
        meter = amas_meter(meter_provider)
        if custom_metrics is None:
            from amas_otel.config import get_settings

            custom_metrics = get_settings().metrics.custom_metrics_enabled
        # The API's no-op meter: instruments whose measurements go nowhere, nothing registered.
        custom_meter = meter if custom_metrics else metrics.NoOpMeter(INSTRUMENTATION_SCOPE)
        self._registry = registry
        self.status_code_classes = status_code_classes
        self._http_attrs: dict[tuple[Any, ...], BoundHistogram] = {}
        self._known_methods = known_http_methods()
        self._cache_counts: dict[str, _Lookups] = {}
        self._cache_lock = threading.Lock()

        def histogram(
            spec: tuple[str, str], description: str, buckets: Iterable[float] | None = None, on: Any = meter
        ) -> Any:
            name, unit = spec
            return on.create_histogram(
                name,
                unit=unit,
                description=description,
                explicit_bucket_boundaries_advisory=list(buckets) if buckets else None,
            )

        def counter(spec: tuple[str, str], description: str) -> Any:  # every counter here is a custom metric
            name, unit = spec
            return custom_meter.create_counter(name, unit=unit, description=description)

        self._http_duration = histogram(
            Metric.HTTP_SERVER_DURATION, "Duration of HTTP server requests.", HTTP_DURATION_BUCKETS
        )
        self._http_request_size = histogram(Metric.HTTP_SERVER_REQUEST_SIZE, "Size of HTTP server request bodies")
        self._http_response_size = histogram(Metric.HTTP_SERVER_RESPONSE_SIZE, "Size of HTTP server response bodies")
        self._errors = counter(Metric.ERRORS, "Errors by type and component")
        self._business = counter(Metric.BUSINESS_EVENTS, "Business events, summed by value")
        self._operation = histogram(
            Metric.OPERATION_DURATION, "Duration of named operations", HTTP_DURATION_BUCKETS, custom_meter
        )
        self._db = histogram(Metric.DB_DURATION, "Duration of database operations", HTTP_DURATION_BUCKETS)
        self._auth = counter(Metric.AUTH_ATTEMPTS, "Authentication attempts by outcome")
        self._agent = histogram(Metric.AGENT_DURATION, "Duration of agent executions", HTTP_DURATION_BUCKETS, custom_meter)
        self._task = histogram(Metric.TASK_DURATION, "Duration of processed tasks", HTTP_DURATION_BUCKETS, custom_meter)
        self._cache_ops = counter(Metric.CACHE_OPERATIONS, "Cache operations by result")
        name, unit = Metric.CACHE_HIT_RATIO
        custom_meter.create_observable_gauge(
            name, callbacks=[self._observe_hit_ratio], unit=unit, description="Cache hits / lookups since start"
        )
        if system_metrics:
            _SystemGauges(meter, filesystem_path)

    # --- HTTP ------------------------------------------------------------------

    def record_http_request(
        self,
        method: str,
        endpoint: str,
        status_code: int,
        duration: float,
        request_size: int | None = None,
        response_size: int | None = None,
        *,
        scheme: str | None = None,
        protocol_version: str | None = None,
        error_type: str | None = None,
    ) -> None:
        """Record one served request: ``duration`` in seconds, ``endpoint`` a route template.

        Pass the route template (``/api/orders/{order_id}``), not the raw path:
        raw paths make a series per id (the cardinality limit then folds them
        into the overflow point); ``""`` when no route matched (no ``http.route``).
        Sizes are in bytes and optional.  ``scheme`` (``url.scheme``) and
        ``protocol_version`` (``network.protocol.version``) are recorded when
        given; ``error_type`` is ``error.type`` (for a 5xx, the status code by default).
        """
        key = (method, endpoint, status_code, scheme, protocol_version, error_type)
        bound = self._http_attrs.get(key)
        if bound is None:
            bound = self._bind_http_attrs(key)
        bound.record(duration)
        attrs = bound.attributes
        if request_size is not None:
            self._http_request_size.record(request_size, attrs)
        if response_size is not None:
            self._http_response_size.record(response_size, attrs)

    def _bind_http_attrs(self, key: tuple[Any, ...]) -> BoundHistogram:
        method, endpoint, status_code, scheme, protocol_version, error_type = key
        if isinstance(status_code, bool) or not isinstance(status_code, int) or not 100 <= status_code <= 599:
            raise ValueError(f"status_code must be an HTTP status code (100-599), got {status_code!r}")
        attrs: dict[str, Any] = {HttpAttr.REQUEST_METHOD: normalise_method(str(method), self._known_methods)[0]}
        if endpoint:
            attrs[HttpAttr.ROUTE] = str(endpoint)
        if self.status_code_classes:  # a class is not a status code: it has an attribute of its own
            attrs[HttpAttr.RESPONSE_STATUS_CLASS] = f"{status_code // 100}xx"
        else:
            attrs[HttpAttr.RESPONSE_STATUS_CODE] = status_code
        if scheme:
            attrs[HttpAttr.URL_SCHEME] = str(scheme)
        if protocol_version:
            attrs[HttpAttr.PROTOCOL_VERSION] = str(protocol_version)
        if error_type:
            attrs[ERROR_TYPE] = str(error_type)
        elif status_code >= 500:
            attrs[ERROR_TYPE] = str(status_code)
        bound = BoundHistogram(self._http_duration, attrs)
        if len(self._http_attrs) < _HTTP_ATTR_CACHE_SIZE:
            self._http_attrs[key] = bound
        return bound

    # --- errors, business, performance ----------------------------------------------

    def record_error(self, error_type: str, component: str) -> None:
        """Count one error of ``error_type`` (a class or code, not a message) in ``component``."""
        self._errors.add(1, {ERROR_TYPE: str(error_type), COMPONENT: str(component)})

    def record_business_event(self, name: str, value: float = 1.0) -> None:
        """Add ``value`` (non-negative) to business event ``name`` (e.g. ``user_registration``)."""
        self._business.add(_non_negative("value", value), {MetricAttr.EVENT_NAME: str(name)})

    def record_performance(self, operation: str, duration_ms: float) -> None:
        """Record how long ``operation`` took; ``duration_ms`` in milliseconds (stored in seconds)."""
        self._operation.record(_non_negative("duration_ms", duration_ms) / 1000.0, {MetricAttr.OPERATION: str(operation)})

    def record_database_query(
        self, database: str, operation: str, status: str, duration: float, *, error_type: str | None = None
    ) -> None:
        """Record one database operation: ``database`` system (``postgresql``), ``operation`` (``SELECT``),
        ``status`` (``success``/``ok``, or what failed: ``timeout``, ``error``…), ``duration`` in seconds.

        As the database conventions say, a failed operation carries ``error.type``: ``error_type``
        when given (an exception class or SQLSTATE), else ``status`` (``_OTHER`` for a bare
        ``error``/``failure``); a successful one carries none.
        """
        attrs = {MetricAttr.DB_SYSTEM: str(database), MetricAttr.DB_OPERATION: str(operation)}
        text = str(status).strip().lower()
        if error_type is not None:
            attrs[ERROR_TYPE] = str(error_type)
        elif text not in _DB_SUCCESS:
            attrs[ERROR_TYPE] = "_OTHER" if text in _DB_GENERIC_FAILURE else str(status)
        self._db.record(_non_negative("duration", duration), attrs)

    # --- authentication, agents, tasks --------------------------------------------

    def record_authentication(self, success: bool, *, method: str | None = None) -> None:
        """Count one authentication attempt; failures are the ``amas.auth.outcome=failure`` series."""
        attrs = {MetricAttr.AUTH_OUTCOME: _OUTCOME[bool(success)]}
        if method is not None:
            attrs[MetricAttr.AUTH_METHOD] = str(method)
        self._auth.add(1, attrs)

    def record_agent_execution(self, agent: str, duration: float, *, success: bool = True) -> None:
        """Record one agent execution of ``duration`` seconds (its count is the histogram's count)."""
        self._agent.record(
            _non_negative("duration", duration), {MetricAttr.AGENT_NAME: str(agent), MetricAttr.OUTCOME: _OUTCOME[bool(success)]}
        )

    def record_task(self, task_type: str, duration: float, *, success: bool = True) -> None:
        """Record one processed task of ``duration`` seconds."""
        self._task.record(
            _non_negative("duration", duration), {MetricAttr.TASK_TYPE: str(task_type), MetricAttr.OUTCOME: _OUTCOME[bool(success)]}
        )

    # --- cache -------------------------------------------------------------------

    def record_cache_operation(self, cache: str, operation: str = "get", *, hit: bool | None = None) -> None:
        """Count one cache ``operation``; for lookups pass ``hit`` so the hit ratio can be computed."""
        attrs = {MetricAttr.CACHE_NAME: str(cache), MetricAttr.CACHE_OPERATION: str(operation)}
        if hit is not None:
            attrs[MetricAttr.CACHE_RESULT] = "hit" if hit else "miss"
            with self._cache_lock:
                counts = self._cache_counts.get(cache)
                if counts is None and len(self._cache_counts) < _MAX_CACHES:
                    counts = self._cache_counts[cache] = _Lookups()
                if counts is not None:
                    if hit:
                        counts.hits += 1
                    else:
                        counts.misses += 1
        self._cache_ops.add(1, attrs)

    def cache_hit_ratio(self, cache: str) -> float | None:
        """Hits / lookups of ``cache`` since start, or None before its first lookup."""
        with self._cache_lock:
            counts = self._cache_counts.get(cache)
            return counts.hit_ratio() if counts else None

    def _observe_hit_ratio(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._cache_lock:
            snapshot = [(name, counts.hit_ratio()) for name, counts in self._cache_counts.items()]
        return [Observation(ratio, {MetricAttr.CACHE_NAME: name}) for name, ratio in snapshot]

    # --- reading -----------------------------------------------------------------

    def get_metrics(self, format: str = "text") -> Any:  # noqa: A002 - the public keyword callers pass
        """The current values.

        ``"text"`` (default): one readable line per series, e.g.
        ``http_server_request_duration_seconds{http_route="/api/data",…} count=3 sum=0.012 avg=0.004``.
        ``"dict"``: ``{family: [{"labels": {...}, "value": ...}]}``.  ``"prometheus"``:
        the exposition text a scrape would get.  Values come from the Prometheus
        registry the reader exports to (empty when metrics go only to OTLP).
        """
        from prometheus_client import REGISTRY, generate_latest

        registry = self._registry or REGISTRY
        if format == "prometheus":
            return generate_latest(registry).decode()
        if format not in ("text", "dict"):
            raise ValueError(f"format must be 'text', 'dict' or 'prometheus', got {format!r}")
        families = _families(registry)
        if format == "dict":
            return families
        lines = []
        for name, series in families.items():
            for item in series:
                labels = ",".join(f'{k}="{v}"' for k, v in item["labels"].items())
                value = item["value"]
                if isinstance(value, dict):
                    avg = value["sum"] / value["count"] if value["count"] else 0.0
                    shown = f"count={value['count']:g} sum={value['sum']:.6g} avg={avg:.6g}"
                else:
                    shown = f"{value:g}"
                lines.append(f"{name}{{{labels}}} {shown}" if labels else f"{name} {shown}")
        return "\n".join(lines)


def _families(registry: Any) -> dict[str, list[dict[str, Any]]]:
    """Series of ``registry`` without the scope/target bookkeeping; histograms as count/sum."""
    result: dict[str, list[dict[str, Any]]] = {}
    for family in registry.collect():
        if family.name == "target" or family.type == "info":
            continue
        series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        for sample in family.samples:
            labels = {k: v for k, v in sample.labels.items() if v != "" and not k.startswith("otel_scope_") and k != "le"}
            key = tuple(sorted(labels.items()))
            if family.type == "histogram":
                suffix = sample.name[len(family.name) :]
                if suffix in ("_count", "_sum"):
                    entry = series.setdefault(key, {"labels": labels, "value": {"count": 0.0, "sum": 0.0}})
                    entry["value"][suffix[1:]] = sample.value
            elif not sample.name.endswith("_created"):
                series[key] = {"labels": labels, "value": sample.value}
        name = family.name + ("_total" if family.type == "counter" else "")
        if series:
            result[name] = list(series.values())
    return result


class _SystemGauges:
    """psutil readings as the semantic conventions' ``system.*`` / ``process.*`` instruments.

    Usages are observable up-down counters split by state (their states add up to the
    total, as the conventions ask); utilizations are observable gauges.
    """

    def __init__(self, meter: Any, filesystem_path: str) -> None:
        import psutil

        self._psutil = psutil
        self._process = psutil.Process()
        self._path = filesystem_path
        self._cpu = _CpuUtilization(psutil)
        for (name, unit), callback, description in (
            (Metric.SYSTEM_CPU_UTILIZATION, self._cpu.observe, "Share of all CPUs' time not idle, over at least 1 s"),
            (Metric.SYSTEM_MEMORY_UTILIZATION, self._memory_utilization, "Memory by state / total (0-1)"),
            (Metric.SYSTEM_FILESYSTEM_UTILIZATION, self._disk_utilization, "Filesystem space in use / usable (0-1)"),
        ):
            meter.create_observable_gauge(name, callbacks=[callback], unit=unit, description=description)
        for (name, unit), callback, description in (
            (Metric.SYSTEM_MEMORY_USAGE, self._memory_usage, "Memory by state"),
            (Metric.SYSTEM_FILESYSTEM_USAGE, self._disk_usage, "Filesystem space by state"),
            (Metric.PROCESS_MEMORY_USAGE, self._rss, "Physical memory (RSS) of this process"),
        ):
            meter.create_observable_up_down_counter(name, callbacks=[callback], unit=unit, description=description)

    def _memory_by_state(self) -> tuple[float, dict[str, int]]:
        memory = self._psutil.virtual_memory()
        # buffers and cached exist on Linux only.  psutil's own "used" (total - available) overlaps
        # them; used is what the others leave of total (as the collector's hostmetrics receiver
        # computes it), so the states add up to total as the convention asks.
        states = {state: getattr(memory, state) for state in _MEMORY_STATES if hasattr(memory, state)}
        return memory.total, {"used": max(memory.total - sum(states.values()), 0), **states}

    def _memory_usage(self, options: CallbackOptions) -> list[Observation]:
        _, states = self._memory_by_state()
        return [Observation(value, {MetricAttr.MEMORY_STATE: state}) for state, value in states.items()]

    def _memory_utilization(self, options: CallbackOptions) -> list[Observation]:
        total, states = self._memory_by_state()
        return [Observation(value / total, {MetricAttr.MEMORY_STATE: state}) for state, value in states.items()]

    def _disk_usage(self, options: CallbackOptions) -> list[Observation]:
        usage = self._psutil.disk_usage(self._path)
        # reserved: kept for the superuser, neither used nor free to others.
        states = {"used": usage.used, "free": usage.free, "reserved": max(usage.total - usage.used - usage.free, 0)}
        return [
            Observation(value, {MetricAttr.FILESYSTEM_MOUNTPOINT: self._path, MetricAttr.FILESYSTEM_STATE: state})
            for state, value in states.items()
        ]

    def _disk_utilization(self, options: CallbackOptions) -> list[Observation]:
        usage = self._psutil.disk_usage(self._path)
        return [Observation(usage.percent / 100.0, {MetricAttr.FILESYSTEM_MOUNTPOINT: self._path})]

    def _rss(self, options: CallbackOptions) -> list[Observation]:
        return [Observation(self._process.memory_info().rss)]


#: system.memory.state values read from psutil.virtual_memory() (fields of the same names).
_MEMORY_STATES = ("free", "buffers", "cached")
#: Shortest window system.cpu.utilization is computed over; a collection sooner repeats the last value.
_CPU_UTILIZATION_WINDOW = 1.0


class _CpuUtilization:
    """``system.cpu.utilization`` from ``cpu_times()`` deltas, with a measurement window of its own.

    ``psutil.cpu_percent()`` measures since its previous call, so each collection (every
    scrape, every reader) would reset the window and a second scrape right after the
    first would read about 0.  Here a new value is computed only when at least
    :data:`_CPU_UTILIZATION_WINDOW` seconds passed since the last one; collections in
    between repeat it.
    """

    def __init__(self, psutil: Any, window: float = _CPU_UTILIZATION_WINDOW) -> None:
        self._psutil = psutil
        self._window = window
        self._lock = threading.Lock()
        self._last_times = self._busy_total()
        self._last_at = time.monotonic()
        self._value: float | None = None

    def _busy_total(self) -> tuple[float, float]:
        times = self._psutil.cpu_times()
        # Linux counts guest time inside user/nice; iowait is idle time spent waiting.
        total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
        idle = times.idle + getattr(times, "iowait", 0.0)
        return total - idle, total

    def value(self) -> float:
        with self._lock:
            now = time.monotonic()
            if self._value is None or now - self._last_at >= self._window:
                busy, total = self._busy_total()
                elapsed_busy, elapsed_total = busy - self._last_times[0], total - self._last_times[1]
                if elapsed_total > 0:  # else no tick yet: keep the window open
                    self._value = min(max(elapsed_busy / elapsed_total, 0.0), 1.0)
                    self._last_times, self._last_at = (busy, total), now
            return self._value if self._value is not None else 0.0

    def observe(self, options: CallbackOptions) -> list[Observation]:
        return [Observation(self.value())]


_service: MetricsService | None = None
_service_kwargs: dict[str, Any] = {}
_service_lock = threading.Lock()


def get_metrics_service(**kwargs: Any) -> MetricsService:
    """The process-wide :class:`MetricsService` on the global meter provider.

    Created on first call (keyword arguments apply then); later calls return
    the same service and refuse different arguments rather than ignoring them.
    The first call configures amas-otel when nothing has yet
    (:func:`amas_otel.sdk.configure_on_first_use`), so the values reach the
    configured readers.
    """
    global _service, _service_kwargs
    configure_on_first_use("get_metrics_service")
    with _service_lock:
        if _service is None:
            _service = MetricsService(**kwargs)
            _service_kwargs = dict(kwargs)
        elif kwargs and kwargs != _service_kwargs:
            raise ValueError(
                f"get_metrics_service() already created the service with {_service_kwargs!r}; "
                f"got {kwargs!r}. Create a MetricsService(...) for different settings"
            )
        return _service


def record_http_request(
    method: str,
    endpoint: str,
    status_code: int,
    duration: float,
    request_size: int | None = None,
    response_size: int | None = None,
    *,
    scheme: str | None = None,
    protocol_version: str | None = None,
    error_type: str | None = None,
) -> None:
    """Module-level form of :meth:`MetricsService.record_http_request` on :func:`get_metrics_service`."""
    get_metrics_service().record_http_request(
        method,
        endpoint,
        status_code,
        duration,
        request_size,
        response_size,
        scheme=scheme,
        protocol_version=protocol_version,
        error_type=error_type,
    )


def record_error(error_type: str, component: str) -> None:
    """Module-level form of :meth:`MetricsService.record_error` on :func:`get_metrics_service`."""
    get_metrics_service().record_error(error_type, component)
