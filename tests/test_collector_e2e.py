"""End to end through the real amas-otelcol running the shipped ``otel-collector.yaml`` unchanged (its ports
moved through its environment variables), with Debian's Prometheus scraping it through ``collector/prometheus.yml``
and evaluating ``collector/alerts.yml``.  Traces and logs go on, through an ``otlphttp`` exporter merged over the
shipped file, to an OTLP receiver in the test.  Everything listens on 127.0.0.1."""

from __future__ import annotations

import logging
import math
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, free_port, python_env
from tests.support import prometheus
from tests.support.collector import Collector, binary, otlphttp_overlay
from tests.support.otlp import OtlpReceiver, attributes
from tests.test_e2e import App, drive_failure_traffic, run_app

COLLECTOR_DIR = REPO / "collector"
#: Export every second (metrics) and every 200 ms (spans, logs) so that the tests need not wait long.
FAST_EXPORT = {
    "AMAS_CUSTOM_METRICS_INTERVAL": "1",
    "OTEL_BSP_SCHEDULE_DELAY": "200",
    "OTEL_BLRP_SCHEDULE_DELAY": "200",
    "PROMETHEUS_ENABLED": "false",
}


@pytest.fixture(scope="module")
def downstream() -> Iterator[OtlpReceiver]:
    """Where the collector sends traces and logs on (a tracing/logging backend in production)."""
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory, downstream: OtlpReceiver) -> Iterator[Collector]:
    with Collector(tmp_path_factory.mktemp("collector"), overlay=otlphttp_overlay(downstream.endpoint, "traces", "logs")) as running:
        yield running


def _prometheus_config(tmp_path: Path, target: str) -> Path:
    """collector/prometheus.yml with its otel-collector job pointed at ``target``, scraping every second."""
    doc = yaml.safe_load((COLLECTOR_DIR / "prometheus.yml").read_text())
    job = next(job for job in doc["scrape_configs"] if job["job_name"] == "otel-collector")
    job["static_configs"] = [{"targets": [target]}]
    doc.update(
        scrape_configs=[job],
        rule_files=[str(COLLECTOR_DIR / "alerts.yml")],
        **{"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}},
    )
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _through_collector(collector: Collector, service: str, protocol: str = "http/protobuf") -> dict[str, str]:
    endpoint = collector.otlp_grpc if protocol == "grpc" else collector.otlp_http
    return {"OTEL_SERVICE_NAME": service, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, **FAST_EXPORT}


def _value(result: list[dict[str, Any]]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])


# --- 1. PromQL through Prometheus, and the breaker alert firing -------------------------------------------


@contextmanager
def _steady_orders(*apps: App) -> Iterator[None]:
    """Background order lookups, about 10 per second per app, bounded in count, until the block ends."""
    stop = threading.Event()

    def lookups(app: App) -> None:
        for number in range(1000):
            if stop.wait(0.1):
                return
            app.request("GET", f"/api/orders/steady-{number}")

    workers = [threading.Thread(target=lookups, args=(app,)) for app in apps]
    [worker.start() for worker in workers]
    try:
        yield
    finally:
        stop.set()
        [worker.join(15) for worker in workers]


def _assert_promql(server: prometheus.PrometheusServer, jobs: dict[str, str]) -> None:
    for job in jobs:
        selector = f'job="{job}"'
        rates = server.wait_for(
            f'sum by (http_route) (rate(http_server_request_duration_seconds_count{{{selector}}}[10s])) > 0')
        assert "/api/orders/{order_id}" in {r["metric"].get("http_route") for r in rates}, job
        p95 = _value(server.wait_for(
            "histogram_quantile(0.95, sum by (le) (rate(http_server_request_duration_seconds_bucket"
            f'{{{selector},http_route="/api/orders/{{order_id}}"}}[10s])))'))
        assert 0 < p95 < 1, f"{job}: p95 {p95}s from the sub-second buckets"
        buckets = server.query(f'http_server_request_duration_seconds_bucket{{{selector},http_route="/api/orders/{{order_id}}"}}')
        assert {"0.005", "0.01", "0.025", "0.1", "+Inf"} <= {b["metric"]["le"] for b in buckets}
        # A gauge of unit 1 (hw.status style): the collector's exporter adds the `_ratio` suffix.
        assert _value(server.wait_for(f'amas_breaker_state_ratio{{{selector},amas_breaker_state="open"}} == 1')) == 1
        assert _value(server.query(f'amas_breaker_state_ratio{{{selector},amas_breaker_state="closed"}}')) == 0
        # Unit "1": the collector's exporter adds the _ratio suffix (collector/alerts.yml matches both names).
        health = server.wait_for(f'amas_health_check_status_ratio{{{selector},amas_health_check_name="downstream"}}')
        assert {s["metric"]["amas_health_check_result"]: s["value"][1] for s in health} == {
            "healthy": "0", "degraded": "0", "unhealthy": "1"}, job
        assert _value(server.wait_for(
            f'amas_breaker_calls_total{{{selector},amas_breaker_outcome="rejected"}}')) == 2
        errors = server.wait_for(f"sum by (error_type) (amas_errors_total{{{selector}}})")
        assert {e["metric"]["error_type"]: float(e["value"][1]) for e in errors} == {
            "CircuitBreakerOpenException": 2, "ValidationError": 1}, job


def test_app_over_http_and_grpc_answers_promql_and_fires_the_breaker_alert(collector: Collector, tmp_path: Path) -> None:
    jobs = {"amas-e2e-http": "http/protobuf", "amas-e2e-grpc": "grpc"}
    with prometheus.launch(_prometheus_config(tmp_path, collector.prometheus_target), tmp_path) as server:
        with run_app(tmp_path, **_through_collector(collector, "amas-e2e-http")) as over_http, \
                run_app(tmp_path, **_through_collector(collector, "amas-e2e-grpc", "grpc")) as over_grpc:
            for app in (over_http, over_grpc):
                drive_failure_traffic(app)
            with _steady_orders(over_http, over_grpc):  # so that rate() sees the counters move
                _assert_promql(server, jobs)
            # AmasCircuitBreakerOpen has `for: 1m`: pending first, firing a minute later, for each app.
            pending = server.wait_for('ALERTS{alertname="AmasCircuitBreakerOpen"}')
            assert {a["metric"]["job"] for a in pending} == set(jobs)
            deadline = time.monotonic() + 100
            firing: set[str] = set()
            while firing != set(jobs):
                assert time.monotonic() < deadline, f"breaker alert firing only for {firing}"
                time.sleep(1)
                firing = {a["metric"]["job"] for a in server.query('ALERTS{alertname="AmasCircuitBreakerOpen",alertstate="firing"}')}
            alert = server.query('ALERTS{alertname="AmasCircuitBreakerOpen",job="amas-e2e-grpc"}')[0]["metric"]
            assert alert["severity"] == "warning" and alert["amas_breaker_name"] == "downstream"


# --- 2. metric names and labels: the app's own /metrics and the collector's exporter ----------------------

#: prometheus_client's default collectors, registered on the app's own endpoint only: they are not OTel
#: instruments, so nothing sends them over OTLP (process.memory.usage is the OTel instrument for RSS).
APP_ENDPOINT_ONLY = {
    "process_cpu_seconds", "process_max_fds", "process_open_fds", "process_resident_memory_bytes",
    "process_start_time_seconds", "process_virtual_memory_bytes", "python_gc_collections",
    "python_gc_objects_collected", "python_gc_objects_uncollectable", "python_info",
}
#: Gauges of unit "1": the collector's exporter adds the Prometheus unit suffix _ratio, the Python exporter does not.
RATIO_SUFFIX = {"amas_breaker_state", "amas_health_check_status", "system_cpu_utilization", "system_filesystem_utilization",
                "system_memory_utilization"}


def _families(text: str, job: str | None = None) -> dict[str, tuple[str, frozenset[str], frozenset[float]]]:
    """{family name: (type, label names, histogram bucket bounds)}, of one ``job`` when given."""
    families = {}
    for family in text_string_to_metric_families(text):
        samples = [s for s in family.samples if job is None or s.labels.get("job") == job]
        if samples:
            labels = frozenset(name for s in samples for name in s.labels if name != "le")
            # Bounds as numbers: the app writes le="1.0", the collector le="1" (the same bucket to Prometheus).
            bounds = frozenset(float(s.labels["le"]) for s in samples if "le" in s.labels)
            families[family.name] = (family.type, labels, bounds)
    return families


def test_metric_names_and_labels_match_the_apps_own_endpoint_except_the_documented(collector: Collector, tmp_path: Path) -> None:
    def scrape_after_traffic(app_env: dict[str, str], url: str | None) -> dict[str, tuple[str, frozenset[str], frozenset[float]]]:
        with run_app(tmp_path, **app_env) as app:
            drive_failure_traffic(app)
            time.sleep(2.5)  # a metric export and a health run after the traffic
            if url:
                return _families(urllib.request.urlopen(url, timeout=5).read().decode())
            return _families(collector.scrape(), job="amas-e2e-names")

    for attempt in range(3):  # the free port chosen for /metrics may be taken by another process before the app binds it
        metrics_port = free_port()
        try:
            own = scrape_after_traffic({"PROMETHEUS_PORT": str(metrics_port), "AMAS_CUSTOM_METRICS_INTERVAL": "1"},
                                       f"http://127.0.0.1:{metrics_port}/metrics")
            break
        except AssertionError as exc:
            if "address already in use" not in str(exc) or attempt == 2:
                raise
    exported = scrape_after_traffic(_through_collector(collector, "amas-e2e-names"), None)
    assert set(own) - set(exported) == APP_ENDPOINT_ONLY | RATIO_SUFFIX
    assert set(exported) - set(own) == {f"{name}_ratio" for name in RATIO_SUFFIX}
    for name in set(own) & set(exported):
        own_type, own_labels, own_bounds = own[name]
        exported_type, exported_labels, exported_bounds = exported[name]
        assert (own_type, own_bounds) == (exported_type, exported_bounds), name
        # The collector's exporter labels every series with job=service.name and instance=service.instance.id
        # (so target_info drops those two); from the app's endpoint Prometheus adds job and instance itself.
        moved = {"service_name", "service_instance_id"} if name == "target_info" else set()
        assert exported_labels == (own_labels - moved) | {"job", "instance"}, name
    readme = (REPO / "README.md").read_text()
    for name in sorted(RATIO_SUFFIX | {"process_cpu_seconds", "python_gc_objects_collected"}):
        assert f"`{name}" in readme, f"{name} differs on the collector path and is not documented"


# --- 3. the collector redacts what a plain OpenTelemetry SDK sends ----------------------------------------

PLAIN_SECRETS = {
    "password": "Plain-Client-Pa55word!",
    "user.api_key": "ak_live_7f6e5d4c3b2a1900",
    "http.request.header.authorization": "Basic dXNlcjpwYXNzd29yZA==",
    "db.connection.session_token": "sess-0a1b2c3d4e5f",
    "note": "Bearer plain.bearer.token-123",
}


def test_collector_masks_secrets_from_a_client_that_does_not_redact(collector: Collector, downstream: OtlpReceiver) -> None:
    resource = Resource.create({"service.name": "plain-sdk-client"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{collector.otlp_http}/v1/traces")))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{collector.otlp_http}/v1/logs")))
    plain_logger = logging.getLogger("plain-sdk-client")
    plain_logger.propagate = False
    plain_logger.addHandler(LoggingHandler(logger_provider=logger_provider))
    try:
        with tracer_provider.get_tracer("plain").start_as_current_span("plain-client-span", attributes=PLAIN_SECRETS):
            plain_logger.warning("plain client log", extra=PLAIN_SECRETS)
            # A structured body, through the OTel logs API: its fields are masked by key too.
            logger_provider.get_logger("plain").emit(body={"event": "plain body", **PLAIN_SECRETS})
    finally:
        tracer_provider.shutdown()
        logger_provider.shutdown()

    def sent() -> tuple[list[Any], list[Any], list[Any]]:
        spans = [s for s in downstream.spans() if s.name == "plain-client-span"]
        records = [r for r in downstream.log_records() if r.body.string_value == "plain client log"]
        bodies = [attributes(r.body.kvlist_value.values) for r in downstream.log_records() if r.body.HasField("kvlist_value")]
        return spans, records, [b for b in bodies if b.get("event") == "plain body"]

    assert downstream.wait_for(lambda: all(sent()), timeout=15), "the plain client's span and logs never came through"
    spans, records, bodies = sent()
    for item in (spans[0], records[0]):
        seen = attributes(item.attributes)
        assert {key: seen[key] for key in PLAIN_SECRETS} == dict.fromkeys(PLAIN_SECRETS, "****"), seen
        assert seen["redaction.masked.count"] == len(PLAIN_SECRETS)
    assert bodies[0] == {"event": "plain body", **dict.fromkeys(PLAIN_SECRETS, "****")}
    wire = downstream.all_bytes()
    for key, secret in PLAIN_SECRETS.items():
        assert secret.encode() not in wire, f"{key} left the collector unmasked"


# --- 4. spans and logs pass through intact --------------------------------------------------------------


def test_spans_and_logs_keep_service_parent_links_and_trace_ids(collector: Collector, downstream: OtlpReceiver, tmp_path: Path) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    with run_app(tmp_path, **_through_collector(collector, "amas-e2e-traces")) as app:
        status = app.request("GET", "/api/data", headers={"traceparent": f"00-{trace_id}-{parent_id}-01"})[0]
        assert status == 200

        def arrived() -> tuple[list[Any], list[Any]]:
            spans = [s for s in downstream.spans() if s.trace_id.hex() == trace_id]
            records = [r for r in downstream.log_records() if r.trace_id.hex() == trace_id]
            return spans, records

        assert downstream.wait_for(lambda: all(arrived()), timeout=15), "the request's span or log did not come through"
    spans, records = arrived()
    server = next(s for s in spans if s.kind == 2)
    assert server.parent_span_id.hex() == parent_id, "the server span lost its parent from traceparent"
    assert attributes(server.attributes)["http.route"] == "/api/data"
    for child in (s for s in spans if s is not server):
        assert child.parent_span_id == server.span_id
    logged = next(r for r in records if r.body.string_value == "Fetching data" or "Fetching data" in str(r.body))
    assert logged.span_id == server.span_id
    services = {
        attributes(group.resource.attributes)["service.name"]
        for path, groups in (("/v1/traces", "resource_spans"), ("/v1/logs", "resource_logs"))
        for request in downstream.of(path)
        for group in getattr(request, groups)
        if any(item.trace_id.hex() == trace_id for scope in (group.scope_spans if path == "/v1/traces" else group.scope_logs)
               for item in (scope.spans if path == "/v1/traces" else scope.log_records))
    }
    assert services == {"amas-e2e-traces"}


# --- 5. the collector stops for ten seconds mid-traffic ------------------------------------------------


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def test_collector_restart_mid_traffic_fails_no_request_and_telemetry_resumes(tmp_path: Path) -> None:
    with OtlpReceiver() as receiver, \
            Collector(tmp_path, overlay=otlphttp_overlay(receiver.endpoint, "traces", "logs")) as restarting, \
            run_app(tmp_path, **_through_collector(restarting, "amas-e2e-restart")) as app:
        phases: dict[str, list[tuple[str, float, int | str]]] = {"before": [], "down": [], "after": []}
        phase = ["before"]
        stop = threading.Event()

        def client() -> None:  # about 20 requests/s, bounded by the stop event and a count
            for number in range(2000):
                if stop.is_set():
                    return
                order = f"{phase[0]}-{number}"
                started = time.perf_counter()
                try:
                    status: int | str = app.request("GET", f"/api/orders/{order}")[0]
                except OSError as exc:
                    status = repr(exc)
                phases[phase[0]].append((order, time.perf_counter() - started, status))
                time.sleep(0.05)

        worker = threading.Thread(target=client)
        worker.start()
        try:
            time.sleep(4)
            phase[0] = "down"
            restarting.stop()
            time.sleep(10)
            restarting.start()
            phase[0] = "after"
            time.sleep(6)
        finally:
            stop.set()
            worker.join(15)
        everything = [row for rows in phases.values() for row in rows]
        failed = [row for row in everything if row[2] != 200]
        assert not failed, f"{len(failed)} requests failed while the collector restarted: {failed[:5]}"

        def received() -> set[str]:
            return {attributes(s.attributes).get("url.path", "").rsplit("/", 1)[-1] for s in receiver.spans()}

        after = {order for order, _, _ in phases["after"]}
        assert receiver.wait_for(lambda: after <= received(), timeout=20), "telemetry did not resume after the restart"
        time.sleep(1)
        lost = {name: len({order for order, _, _ in rows} - received()) for name, rows in phases.items()}
        scraped = restarting.scrape()
    latency = {name: statistics.median(d for _, d, _ in rows) for name, rows in phases.items()}
    p95 = {name: _percentile([d for _, d, _ in rows], 0.95) for name, rows in phases.items()}
    print(f"\ncollector restart: requests {({k: len(v) for k, v in phases.items()})}, spans lost {lost}, "
          f"median ms { {k: round(v * 1000, 1) for k, v in latency.items()} }, p95 ms { {k: round(v * 1000, 1) for k, v in p95.items()} }")
    # Lost: what the app's exporter tried to send while the collector was down.  A batch retries with backoff
    # (1 s, 2 s) within AMAS_OTLP_TIMEOUT_SECONDS (5 s) and is then dropped, so the spans of the outage's first
    # seconds go, and only those queued in its last seconds are delivered after the restart; of the spans before
    # the stop, only the last batch (OTEL_BSP_SCHEDULE_DELAY 200 ms, about 5 requests) can be caught.
    assert lost["after"] == 0 and lost["before"] <= 20, lost
    assert lost["down"] < len(phases["down"]), "no span queued during the outage survived it"
    assert p95["down"] <= 4 * p95["before"] + 0.25, f"latency rose while the collector was down: {p95}"
    # Metrics resume too: the exporter serves the app's cumulative request count again after the restart.
    counts = [f for f in text_string_to_metric_families(scraped) if f.name == "http_server_request_duration_seconds"]
    total = sum(s.value for f in counts for s in f.samples
                if s.name.endswith("_count") and s.labels.get("job") == "amas-e2e-restart")
    assert total >= len(everything), (total, len(everything))


# --- the second demo command ---------------------------------------------------------------------------


def test_demo_through_the_collector_prints_promql_answers() -> None:
    """`./scripts/demo --collector`: the demo's app through amas-otelcol into Prometheus, answers printed."""
    done = subprocess.run([sys.executable, "-m", "examples.demo", "--collector"], cwd=REPO, capture_output=True, text=True,
                          timeout=180, env=python_env(PROMETHEUS_BIN=prometheus.binary("prometheus"), AMAS_OTELCOL_BIN=binary()))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    answers = done.stdout.split("answers, scraping the collector", 1)[1].split("\n4. ", 1)[0]
    assert re.search(r"breakers open: .*\n +\{'amas_breaker_name': 'downstream', 'amas_breaker_state': 'open'\} 1\n", answers)
    assert re.search(r"\{'http_route': '/api/downstream'\} 5\n", answers)
    assert re.search(r"health checks not healthy: .*\n +\{'amas_health_check_critical': 'true', 'amas_health_check_name': "
                     r"'downstream', 'amas_health_check_result': 'unhealthy'\} 1\n", answers)
    assert "'alertname': 'AmasCircuitBreakerOpen', 'alertstate': 'pending'" in answers
