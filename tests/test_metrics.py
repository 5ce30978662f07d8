"""amas_otel.metrics: recorders on OTel instruments, Prometheus output, cardinality."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics._internal.exemplar import AlwaysOffExemplarFilter, AlwaysOnExemplarFilter
from prometheus_client import CollectorRegistry

from amas_otel.metrics import MetricsService, metric_views
from tests.support import prometheus
from tests.test_first_use import run_child



def promtool_check(text: str) -> None:
    result = subprocess.run([prometheus.binary("promtool"), "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), result.stdout + result.stderr


@pytest.fixture
def service() -> MetricsService:
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)], views=metric_views(50))
    return MetricsService(meter_provider=provider, registry=registry)


def _series(service: MetricsService, family: str) -> list[dict]:
    return service.get_metrics("dict").get(family, [])


def test_guide_recorders_reach_prometheus_with_semconv_names(service: MetricsService) -> None:
    service.record_http_request(method="GET", endpoint="/api/users", status_code=200, duration=0.150, request_size=1024, response_size=2048)
    service.record_http_request(method="BREW", endpoint="/api/users", status_code=503, duration=0.05)
    service.record_error("validation_error", "user_service")
    service.record_business_event("user_registration", value=1.0)
    service.record_performance("data_processing", duration_ms=150.0)
    service.record_database_query("postgresql", "SELECT", "success", 0.002)
    service.record_authentication(True, method="password")
    service.record_authentication(False)
    service.record_agent_execution("planner", 1.5)
    service.record_task("ingest", 0.25, success=False)

    http = {s["labels"]["http_request_method"]: s for s in _series(service, "http_server_request_duration_seconds")}
    assert http["GET"]["labels"]["http_route"] == "/api/users"
    assert http["GET"]["labels"]["http_response_status_code"] == "200"
    assert http["GET"]["value"] == {"count": 1.0, "sum": 0.15}
    assert http["_OTHER"]["labels"]["error_type"] == "503"
    assert _series(service, "http_server_request_body_size_bytes")[0]["value"]["sum"] == 1024
    assert _series(service, "amas_errors_total")[0] == {
        "labels": {"amas_component": "user_service", "error_type": "validation_error"},
        "value": 1.0,
    }
    assert _series(service, "amas_business_events_total")[0]["value"] == 1.0
    assert _series(service, "amas_operation_duration_seconds")[0]["value"]["sum"] == pytest.approx(0.15)
    db = _series(service, "db_client_operation_duration_seconds")[0]
    assert db["labels"] == {"db_system_name": "postgresql", "db_operation_name": "SELECT"}  # no error.type on success
    auth = {s["labels"]["amas_auth_outcome"]: s["value"] for s in _series(service, "amas_auth_attempts_total")}
    assert auth == {"success": 1.0, "failure": 1.0}
    assert _series(service, "amas_agent_execution_duration_seconds")[0]["labels"]["amas_agent_name"] == "planner"
    assert _series(service, "amas_task_duration_seconds")[0]["labels"]["amas_outcome"] == "failure"

    text = service.get_metrics()
    assert 'http_server_request_duration_seconds{' in text and "count=1 sum=0.15" in text
    assert "amas_errors_total{" in text
    promtool_check(service.get_metrics("prometheus"))


def test_cache_hit_ratio(service: MetricsService) -> None:
    for hit in (True, True, True, False):
        service.record_cache_operation("redis", "get", hit=hit)
    service.record_cache_operation("redis", "set")
    assert service.cache_hit_ratio("redis") == 0.75
    assert service.cache_hit_ratio("other") is None
    assert _series(service, "amas_cache_hit_ratio") == [{"labels": {"amas_cache_name": "redis"}, "value": 0.75}]
    ops = {(s["labels"]["amas_cache_operation"], s["labels"].get("amas_cache_result", "")): s["value"] for s in _series(service, "amas_cache_operations_total")}
    assert ops == {("get", "hit"): 3.0, ("get", "miss"): 1.0, ("set", ""): 1.0}


def test_system_gauges_are_observable(service: MetricsService) -> None:
    families = service.get_metrics("dict")
    for name in (
        "system_cpu_utilization",
        "system_memory_usage_bytes",
        "system_memory_utilization",
        "system_filesystem_usage_bytes",
        "system_filesystem_utilization",
        "process_memory_usage_bytes",
    ):
        assert families[name], name
    assert 0 <= families["system_memory_utilization"][0]["value"] <= 1
    assert families["process_memory_usage_bytes"][0]["value"] > 1_000_000


def test_http_duration_attributes_follow_the_server_convention(service: MetricsService) -> None:
    service.record_http_request("GET", "/a", 200, 0.01, scheme="https", protocol_version="2")
    service.record_http_request("get", "", 404, 0.01, scheme="http", protocol_version="1.1")  # methods are case-sensitive
    service.record_http_request("GET", "/b", 500, 0.01, scheme="http", protocol_version="1.1", error_type="shop.PaymentError")
    labels = {s["labels"]["http_response_status_code"]: s["labels"] for s in _series(service, "http_server_request_duration_seconds")}
    assert labels == {
        "200": {"http_request_method": "GET", "http_response_status_code": "200", "http_route": "/a", "network_protocol_version": "2", "url_scheme": "https"},
        "404": {"http_request_method": "_OTHER", "http_response_status_code": "404", "network_protocol_version": "1.1", "url_scheme": "http"},
        "500": {"error_type": "shop.PaymentError", "http_request_method": "GET", "http_response_status_code": "500", "http_route": "/b", "network_protocol_version": "1.1", "url_scheme": "http"},
    }


def test_cardinality_is_capped_and_overflow_counted() -> None:
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)], views=metric_views(10))
    service = MetricsService(meter_provider=provider, registry=registry, system_metrics=False)
    for i in range(1000):
        service.record_http_request("GET", f"/raw/{i}", 200, 0.001)
    series = _series(service, "http_server_request_duration_seconds")
    assert len(series) == 11
    overflow = [s for s in series if s["labels"].get("otel_metric_overflow") == "true"]
    assert overflow[0]["value"]["count"] == 990
    promtool_check(service.get_metrics("prometheus"))


def test_status_code_classes() -> None:
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    service = MetricsService(meter_provider=provider, registry=registry, status_code_classes=True, system_metrics=False)
    for code in (200, 201, 204, 404, 500):
        service.record_http_request("GET", "/x", code, 0.01)
    series = _series(service, "http_server_request_duration_seconds")
    # A class is no status code: its own attribute, http.response.status_code stays an integer or absent.
    assert sorted(s["labels"]["amas_http_response_status_class"] for s in series) == ["2xx", "4xx", "5xx"]
    assert not any("http_response_status_code" in s["labels"] for s in series)
    assert {s["labels"].get("error_type") for s in series} == {None, "500"}


def test_database_operations_carry_error_type_not_an_outcome() -> None:
    reader = InMemoryMetricReader()
    service = MetricsService(meter_provider=MeterProvider(metric_readers=[reader]), system_metrics=False)
    service.record_database_query("postgresql", "SELECT", "success", 0.002)
    service.record_database_query("postgresql", "SELECT", "timeout", 0.5)
    service.record_database_query("postgresql", "INSERT", "error", 0.01)
    service.record_database_query("postgresql", "INSERT", "error", 0.01, error_type="psycopg.errors.UniqueViolation")
    points = [p for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics for m in sm.metrics
              if m.name == "db.client.operation.duration" for p in m.data.data_points]
    seen = {(p.attributes["db.operation.name"], p.attributes.get("error.type")) for p in points}
    assert seen == {("SELECT", None), ("SELECT", "timeout"), ("INSERT", "_OTHER"), ("INSERT", "psycopg.errors.UniqueViolation")}
    assert not any("amas.outcome" in p.attributes for p in points)


def _system_points(reader: InMemoryMetricReader) -> dict[str, Any]:
    return {m.name: m for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def test_system_usages_are_up_down_counters_split_by_state() -> None:
    reader = InMemoryMetricReader()
    MetricsService(meter_provider=MeterProvider(metric_readers=[reader]), custom_metrics=False)
    found = _system_points(reader)
    for name in ("system.memory.usage", "system.filesystem.usage", "process.memory.usage"):
        assert type(found[name].data).__name__ == "Sum" and found[name].data.is_monotonic is False, name
        assert found[name].unit == "By"
    memory = {p.attributes["system.memory.state"]: p.value for p in found["system.memory.usage"].data.data_points}
    assert {"used", "free"} <= set(memory) <= {"used", "free", "buffers", "cached"}
    import psutil

    assert sum(memory.values()) == pytest.approx(psutil.virtual_memory().total, rel=0.01)  # states add up to the total
    disk = {p.attributes["system.filesystem.state"]: p.value for p in found["system.filesystem.usage"].data.data_points}
    assert set(disk) == {"used", "free", "reserved"}
    assert sum(disk.values()) == pytest.approx(psutil.disk_usage("/").total, rel=0.01)
    assert [dict(p.attributes) for p in found["process.memory.usage"].data.data_points] == [{}]


def test_cpu_utilization_has_its_own_window_back_to_back_collections_agree() -> None:
    readers = [InMemoryMetricReader(), InMemoryMetricReader()]
    MetricsService(meter_provider=MeterProvider(metric_readers=readers), custom_metrics=False)
    deadline = time.monotonic() + 1.2
    while time.monotonic() < deadline:  # busy for longer than the 1 s window
        pass

    def cpu(reader: InMemoryMetricReader) -> float:
        (point,) = _system_points(reader)["system.cpu.utilization"].data.data_points
        return point.value

    first = cpu(readers[0])
    # psutil.cpu_percent() would read ~0 here: each collection reset its window.
    assert first > 0
    assert cpu(readers[0]) == first and cpu(readers[1]) == first


def test_bad_input_is_named(service: MetricsService) -> None:
    with pytest.raises(ValueError, match="status_code must be an HTTP status code \\(100-599\\), got 999"):
        service.record_http_request("GET", "/x", 999, 0.1)
    with pytest.raises(ValueError, match="duration_ms must be a non-negative number, got -1"):
        service.record_performance("op", -1)
    with pytest.raises(ValueError, match="value must be a non-negative number, got nan"):
        service.record_business_event("e", float("nan"))
    with pytest.raises(ValueError, match="format must be 'text', 'dict' or 'prometheus', got 'xml'"):
        service.get_metrics("xml")
    with pytest.raises(ValueError, match="cardinality_limit must be a positive integer, got 0"):
        metric_views(0)


def test_get_metrics_service_is_one_per_process() -> None:
    from amas_otel import metrics as module

    saved = module._service, module._service_kwargs
    module._service, module._service_kwargs = None, {}
    try:
        first = module.get_metrics_service(system_metrics=False)
        assert module.get_metrics_service() is first
        with pytest.raises(ValueError, match="already created the service with"):
            module.get_metrics_service(status_code_classes=True)
    finally:
        module._service, module._service_kwargs = saved


def test_custom_metrics_disabled_registers_no_amas_business_instruments() -> None:
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    service = MetricsService(meter_provider=provider, registry=registry, system_metrics=False, custom_metrics=False)
    service.record_http_request("GET", "/api/users", 200, 0.1)
    service.record_database_query("postgresql", "SELECT", "success", 0.002)
    service.record_error("validation_error", "user_service")
    service.record_business_event("user_registration")
    service.record_performance("data_processing", duration_ms=1.0)
    service.record_authentication(False)
    service.record_agent_execution("planner", 1.0)
    service.record_task("ingest", 0.5)
    service.record_cache_operation("redis", hit=True)
    families = set(service.get_metrics("dict"))
    assert {"http_server_request_duration_seconds", "db_client_operation_duration_seconds"} <= families
    assert not [name for name in families if name.startswith("amas_")], families
    with pytest.raises(ValueError, match="value must be a non-negative number"):
        service.record_business_event("refund", value=-1)  # still checked, though not recorded


def test_guide_module_functions_and_custom_metrics_setting(tmp_path: Path) -> None:
    code = """
        from amas_otel.metrics import get_metrics_service, record_error, record_http_request
        record_http_request(method="GET", endpoint="/api/users", status_code=200, duration=0.150)
        record_error("validation_error", "user_service")
        get_metrics_service().record_business_event("user_registration", value=1.0)
        print(get_metrics_service().get_metrics("prometheus"))
        """
    enabled = run_child(code, tmp_path).stdout
    assert 'http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/api/users"' in enabled
    assert 'amas_errors_total{amas_component="user_service",error_type="validation_error"' in enabled
    assert 'amas_business_events_total{amas_event_name="user_registration"' in enabled
    disabled = run_child(code, tmp_path, AMAS_CUSTOM_METRICS_ENABLED="false").stdout
    assert "http_server_request_duration_seconds_count{" in disabled
    assert "amas_errors_total" not in disabled and "amas_business_events_total" not in disabled


def _points(reader: InMemoryMetricReader) -> dict[tuple, tuple]:
    data = reader.get_metrics_data()
    found = {}
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == "http.server.request.duration":
                    for point in metric.data.data_points:
                        found[tuple(sorted(point.attributes.items()))] = (
                            point.count, round(point.sum, 9), tuple(point.bucket_counts), point.min, point.max, len(point.exemplars)
                        )
    return found


@pytest.mark.parametrize("exemplar_filter", [None, AlwaysOnExemplarFilter(), AlwaysOffExemplarFilter()])
def test_bound_http_recording_equals_the_sdk_public_path(exemplar_filter: Any) -> None:
    durations = [0.001 * (i % 13) + 0.0004 * i for i in range(300)]
    keys = [("GET", "/a", 200), ("POST", "/b/{id}", 201), ("GET", "/a", 503), ("BREW", "", 404)]
    fast, public = InMemoryMetricReader(), InMemoryMetricReader()
    config = {"exemplar_filter": exemplar_filter} if exemplar_filter else {}
    service = MetricsService(meter_provider=MeterProvider(metric_readers=[fast], **config), system_metrics=False)
    histogram = MetricsService(meter_provider=MeterProvider(metric_readers=[public], **config), system_metrics=False)._http_duration
    for i, value in enumerate(durations):
        method, route, status = keys[i % len(keys)]
        service.record_http_request(method, route, status, value)
        histogram.record(value, service._http_attrs[(method, route, status, None, None, None)].attributes)
    found = _points(fast)
    assert len(found) == 4
    assert found == _points(public)
    if not isinstance(exemplar_filter, AlwaysOnExemplarFilter):  # measurements went to the bound aggregations, not through the public path
        assert all(bound._targets for bound in service._http_attrs.values())


def test_bound_http_recording_with_a_delta_reader_loses_nothing() -> None:
    from opentelemetry.sdk.metrics import Histogram
    from opentelemetry.sdk.metrics.export import AggregationTemporality

    delta = InMemoryMetricReader(preferred_temporality={Histogram: AggregationTemporality.DELTA})
    service = MetricsService(meter_provider=MeterProvider(metric_readers=[delta]), system_metrics=False)
    counts = []
    for _ in range(3):
        for _ in range(5):
            service.record_http_request("GET", "/a", 200, 0.01)
        counts.append([point[0] for point in _points(delta).values()])
    assert counts == [[5], [5], [5]]


def _fast_and_public(**provider_options: Any) -> tuple[MetricsService, Any, InMemoryMetricReader, InMemoryMetricReader]:
    """A service on one reader, and the same histogram on another for the SDK's public path."""
    fast, public = InMemoryMetricReader(), InMemoryMetricReader()
    service = MetricsService(meter_provider=MeterProvider(metric_readers=[fast], **provider_options), system_metrics=False)
    histogram = MetricsService(meter_provider=MeterProvider(metric_readers=[public], **provider_options), system_metrics=False)._http_duration
    return service, histogram, fast, public


def test_bound_http_recording_samples_exemplars_under_a_sampled_span_only() -> None:
    from opentelemetry import context, trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    service, histogram, fast, public = _fast_and_public()  # the SDK's default trace-based exemplar filter
    unsampled = trace.set_span_in_context(NonRecordingSpan(SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(0))))
    tracer = TracerProvider().get_tracer("test")
    for value in (0.01, 0.02, 0.03):  # binds on the first measurement, then a fast one
        service.record_http_request("GET", "/a", 200, value)
    token = context.attach(unsampled)
    try:
        service.record_http_request("GET", "/a", 200, 0.04)
    finally:
        context.detach(token)
    with tracer.start_as_current_span("request"):
        service.record_http_request("GET", "/a", 200, 0.05)
    attributes = service._http_attrs[("GET", "/a", 200, None, None, None)].attributes
    for value in (0.01, 0.02, 0.03, 0.04):
        histogram.record(value, attributes)
    with tracer.start_as_current_span("request"):
        histogram.record(0.05, attributes)
    found = _points(fast)
    assert [point[-1] for point in found.values()] == [1]  # the sampled span's measurement only
    assert found == _points(public)
    assert service._http_attrs[("GET", "/a", 200, None, None, None)]._targets


def test_bound_http_recording_follows_the_meter_being_disabled_and_enabled_again() -> None:
    from opentelemetry.sdk.metrics._internal import _default_meter_configurator, _disable_meter_configurator

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    service = MetricsService(meter_provider=provider, system_metrics=False)
    for _ in range(3):
        service.record_http_request("GET", "/a", 200, 0.01)
    assert service._http_attrs[("GET", "/a", 200, None, None, None)]._targets
    provider._set_meter_configurator(meter_configurator=_disable_meter_configurator)
    for _ in range(4):
        service.record_http_request("GET", "/a", 200, 0.01)
    provider._set_meter_configurator(meter_configurator=_default_meter_configurator)
    service.record_http_request("GET", "/a", 200, 0.01)
    assert [point[0] for point in _points(reader).values()] == [4]


def test_fast_measurement_equals_the_sdk_constructed_one() -> None:
    from opentelemetry.context import get_current
    from opentelemetry.sdk.metrics._internal.measurement import Measurement

    from amas_otel._fastpath import histogram as module

    histogram = MetricsService(meter_provider=MeterProvider(), system_metrics=False)._http_duration
    made = module._new_measurement(0.25, 123, histogram, get_current())
    expected = Measurement(0.25, 123, histogram, get_current())
    assert module._new_measurement is not Measurement  # the installed SDK matched: the cheap construction is in use
    assert type(made) is Measurement and made == expected and vars(made) == vars(expected)


def test_bound_http_recording_to_two_readers_equals_the_sdk_public_path() -> None:
    first, second, public = InMemoryMetricReader(), InMemoryMetricReader(), InMemoryMetricReader()
    service = MetricsService(meter_provider=MeterProvider(metric_readers=[first, second]), system_metrics=False)
    histogram = MetricsService(meter_provider=MeterProvider(metric_readers=[public]), system_metrics=False)._http_duration
    for value in (0.001, 0.2, 3.0, 0.04):
        service.record_http_request("PUT", "/c", 204, value)
        histogram.record(value, service._http_attrs[("PUT", "/c", 204, None, None, None)].attributes)
    assert len(service._http_attrs[("PUT", "/c", 204, None, None, None)]._targets) == 2
    assert _points(first) == _points(second) == _points(public)
