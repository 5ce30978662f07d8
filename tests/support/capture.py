"""The example service's telemetry for one request mix, captured over OTLP on loopback.

:func:`capture_example` runs ``examples/app.py`` under ``amas-otel-instrument uvicorn`` exporting
OTLP/HTTP to an :class:`~tests.support.otlp.OtlpReceiver`, sends the request mix of ``_drive``
(2xx/4xx/5xx, an unhandled exception, a path parameter, a query, an incoming ``traceparent``, an
unknown method, an unmatched path, forwarded headers from a trusted proxy, ``/metrics``, the health
endpoints, a breaker opening and closing, a health check going unhealthy and back), stops the service with SIGTERM (which flushes every signal)
and returns what arrived, decoded into plain Python values, with the service's JSON log lines.
Semantic-convention tests assert on this one capture (session fixture ``example_capture``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import free_port, terminate
from tests.support.otlp import OtlpReceiver, attributes

__all__ = ["ADMIN", "QUERY_SECRET", "QUERY_SIGNATURE", "INCOMING_TRACE_ID", "Capture", "LogRecord", "MetricPoint", "Response", "Span", "capture_example"]

BIN = Path(sys.executable).parent
ADMIN = {"Authorization": "Bearer change-me"}
INCOMING_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
_INCOMING_TRACEPARENT = f"00-{INCOMING_TRACE_ID}-00f067aa0ba902b7-01"
# The address the trusted proxy claims for the client, and the public origin it forwards.
FORWARDED_CLIENT = "203.0.113.7"
FORWARDED_HEADERS = {"X-Forwarded-For": FORWARDED_CLIENT, "X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com:8443"}
QUERY_SECRET = "s3cr3t-query-token-value"
# A signed URL's signature: the HTTP conventions name `sig` among the query keys to redact.
QUERY_SIGNATURE = "Zm9vYmFyc2lnbmF0dXJl"


@dataclass(frozen=True)
class Response:
    label: str
    method: str
    path: str
    status: int
    headers: dict[str, str]


@dataclass(frozen=True)
class Span:
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    status_code: int
    scope: str
    schema_url: str


@dataclass(frozen=True)
class MetricPoint:
    name: str
    kind: str  # "sum" (monotonic), "updowncounter" (non-monotonic sum), "gauge", "histogram"
    unit: str
    attributes: dict[str, Any]
    value: Any  # number; for histograms (count, sum)
    scope: str
    scope_version: str
    schema_url: str
    time_unix_nano: int


@dataclass(frozen=True)
class LogRecord:
    body: Any
    severity_text: str
    severity_number: int
    trace_id: str
    span_id: str
    attributes: dict[str, Any]
    event_name: str
    scope: str


@dataclass
class Capture:
    responses: list[Response]
    spans: list[Span]
    metrics: list[MetricPoint]
    logs: list[LogRecord]
    json_lines: list[dict[str, Any]]
    output: str
    resource: dict[str, Any] = field(default_factory=dict)

    def response(self, label: str) -> Response:
        return next(r for r in self.responses if r.label == label)

    def server_spans(self) -> list[Span]:
        return [s for s in self.spans if s.kind == 2]  # SPAN_KIND_SERVER

    def points(self, name: str) -> list[MetricPoint]:
        """The points of metric ``name`` from the last export that carried it (cumulative temporality)."""
        points = [p for p in self.metrics if p.name == name]
        if not points:
            return []
        last = max(p.time_unix_nano for p in points)
        return [p for p in points if p.time_unix_nano == last]


def _spans(receiver: OtlpReceiver) -> list[Span]:
    return [
        Span(
            name=span.name,
            kind=span.kind,
            trace_id=span.trace_id.hex(),
            span_id=span.span_id.hex(),
            parent_span_id=span.parent_span_id.hex(),
            attributes=attributes(span.attributes),
            events=[(event.name, attributes(event.attributes)) for event in span.events],
            status_code=span.status.code,
            scope=scope_spans.scope.name,
            schema_url=scope_spans.schema_url,
        )
        for scope_spans, span in receiver.scoped("/v1/traces")
    ]


def _metric_points(receiver: OtlpReceiver) -> list[MetricPoint]:
    found = []
    for scope_metrics, metric in receiver.scoped("/v1/metrics"):
        data = metric.WhichOneof("data")
        container = getattr(metric, data)
        kind = data
        if data == "sum":
            kind = "sum" if container.is_monotonic else "updowncounter"
        for point in container.data_points:
            if data == "histogram":
                value: Any = (point.count, point.sum)
            else:
                value = point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
            found.append(
                MetricPoint(
                    name=metric.name,
                    kind=kind,
                    unit=metric.unit,
                    attributes=attributes(point.attributes),
                    value=value,
                    scope=scope_metrics.scope.name,
                    scope_version=scope_metrics.scope.version,
                    schema_url=scope_metrics.schema_url,
                    time_unix_nano=point.time_unix_nano,
                )
            )
    return found


def _body(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "kvlist_value":
        return {kv.key: _body(kv.value) for kv in any_value.kvlist_value.values}
    if kind == "array_value":
        return [_body(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def _log_records(receiver: OtlpReceiver) -> list[LogRecord]:
    return [
        LogRecord(
            body=_body(record.body),
            severity_text=record.severity_text,
            severity_number=record.severity_number,
            trace_id=record.trace_id.hex(),
            span_id=record.span_id.hex(),
            attributes=attributes(record.attributes),
            event_name=record.event_name,
            scope=scope_logs.scope.name,
        )
        for scope_logs, record in receiver.scoped("/v1/logs")
    ]


class _Client:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.responses: list[Response] = []

    def send(self, label: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> int:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, response_headers = response.status, dict(response.headers)
                response.read()
        except urllib.error.HTTPError as error:
            status, response_headers = error.code, dict(error.headers)
            error.read()
        self.responses.append(Response(label, method, path, status, response_headers))
        return status

    def wait_for(self, path: str, status: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            request = urllib.request.Request(self.url + path)
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    got = response.status
            except urllib.error.HTTPError as error:
                got = error.code
            except OSError:
                got = 0
            if got == status:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{path} did not answer {status} within {timeout} s (last: {got})")
            time.sleep(0.2)


def _drive(client: _Client) -> None:
    """The request mix; each request has a label the tests look its response up by."""
    client.send("data", "GET", "/api/data")
    client.send("data_query", "GET", f"/api/data?correlation_id=q-1&token={QUERY_SECRET}&sig={QUERY_SIGNATURE}&page=2")
    for order in range(5):
        client.send(f"order_{order}", "GET", f"/api/orders/ord-{order}")
    client.send("order_invalid", "GET", "/api/orders/not%20valid!")
    client.send("user_invalid", "POST", "/api/users", body={"email": "jane.doe@example.com"})
    client.send("user_created", "POST", "/api/users", body={"email": "jane.doe@example.com", "name": "Jane", "password": "Tr0ub4dor&3-horse-battery"})
    client.send("traceparent", "GET", "/api/data", headers={"traceparent": _INCOMING_TRACEPARENT})
    client.send("report", "GET", "/api/reports/daily")
    client.send("report_bug", "GET", "/api/reports/weekly")  # unhandled KeyError: 500
    client.send("unmatched", "GET", "/no/such/route")
    client.send("unknown_method", "FOO", "/api/data")
    client.send("forwarded", "GET", "/api/data", headers=FORWARDED_HEADERS)
    client.send("metrics", "GET", "/metrics")
    for path in ("/health", "/health/ready", "/health/live", "/health/detailed"):
        client.send(f"health{path.removeprefix('/health').replace('/', '_')}", "GET", path)
    client.send("admin_no_token", "POST", "/admin/dependency/down")
    client.send("admin_wrong_token", "POST", "/admin/dependency/down", headers={"Authorization": "Bearer wrong"})
    client.send("dependency_down", "POST", "/admin/dependency/down", headers=ADMIN)
    # failure_threshold=3: three 502s open the breaker, then 503 + Retry-After.
    for attempt in range(5):
        client.send(f"downstream_down_{attempt}", "GET", "/api/downstream")
    client.wait_for("/health/ready", 503)  # the critical downstream check went unhealthy
    client.send("dependency_up", "POST", "/admin/dependency/up", headers=ADMIN)
    client.wait_for("/health/ready", 200)
    time.sleep(5.2)  # the breaker's recovery_timeout: the next call is the half-open probe
    client.send("downstream_recovered", "GET", "/api/downstream")


def capture_example(tmp_path: Path, python_env: Any, repo: Path) -> Capture:
    """Run the example service once, drive the request mix, stop it, and return its telemetry."""
    port = free_port()
    log = tmp_path / "example-app.log"
    with OtlpReceiver() as receiver:
        settings = {
            "AMAS_CONFIG_FILES": "",
            "HEALTH_CHECK_INTERVAL": "0.5",
            "HEALTH_CHECK_RETRIES": "0",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "AMAS_CUSTOM_METRICS_INTERVAL": "1",
            "PROMETHEUS_HOST": "127.0.0.1",
            "PROMETHEUS_PORT": str(free_port()),
            "RATE_LIMIT_TRUSTED_PROXIES": "127.0.0.1/32",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
        }
        with log.open("w") as out:
            process = subprocess.Popen(
                [str(BIN / "amas-otel-instrument"), str(BIN / "uvicorn"), "examples.app:app",
                 "--host", "127.0.0.1", "--port", str(port), "--log-level", "info", "--no-access-log",
                 # amas-otel decides which proxies it believes (RATE_LIMIT_TRUSTED_PROXIES): uvicorn's own
                 # rewriting (on for 127.0.0.1 by default) would replace the proxy's address by the client's.
                 "--no-proxy-headers"],
                cwd=repo,
                env=python_env(**settings),
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        client = _Client(port)
        try:
            client.wait_for("/health/live", 200, timeout=40)
            client.responses.clear()
            _drive(client)
        finally:
            terminate(process, 20)
        output = log.read_text()
        json_lines = []
        for line in output.splitlines():
            if line.startswith("{"):
                try:
                    json_lines.append(json.loads(line))
                except ValueError:
                    pass
        return Capture(
            responses=client.responses,
            spans=_spans(receiver),
            metrics=_metric_points(receiver),
            logs=_log_records(receiver),
            json_lines=json_lines,
            output=output,
            resource=receiver.resource_attributes(),
        )
