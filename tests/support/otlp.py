"""A real OTLP/HTTP receiver on loopback that keeps the raw bytes and the decoded requests."""

from __future__ import annotations

import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

_MESSAGES = {
    "/v1/traces": ExportTraceServiceRequest,
    "/v1/metrics": ExportMetricsServiceRequest,
    "/v1/logs": ExportLogsServiceRequest,
}
_SIGNALS = {"/v1/traces": "spans", "/v1/metrics": "metrics", "/v1/logs": "logs"}
_ITEMS = {"/v1/traces": "spans", "/v1/metrics": "metrics", "/v1/logs": "log_records"}


class OtlpReceiver:
    """``with OtlpReceiver() as rx: ... rx.endpoint ... rx.spans()``."""

    def __init__(self) -> None:
        self.raw: list[tuple[str, bytes]] = []
        self.requests: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                message_type = _MESSAGES.get(self.path)
                if message_type is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                message = message_type()
                message.ParseFromString(body)
                with receiver._lock:
                    receiver.raw.append((self.path, body))
                    receiver.requests.append((self.path, message))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> "OtlpReceiver":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def all_bytes(self) -> bytes:
        with self._lock:
            return b"".join(body for _, body in self.raw)

    def of(self, path: str) -> list[Any]:
        with self._lock:
            return [m for p, m in self.requests if p == path]

    def scoped(self, path: str) -> list[tuple[Any, Any]]:
        """``(scope group, item)`` for every span, log record or metric received on ``path``.

        The scope group (``ScopeSpans``, ``ScopeLogs``, ``ScopeMetrics``) carries ``scope`` and ``schema_url``.
        """
        signal = _SIGNALS[path]
        return [
            (scope_group, item)
            for request in self.of(path)
            for resource_group in getattr(request, f"resource_{signal}")
            for scope_group in getattr(resource_group, f"scope_{signal}")
            for item in getattr(scope_group, _ITEMS[path])
        ]

    def spans(self) -> list[Any]:
        return [span for _, span in self.scoped("/v1/traces")]

    def log_records(self) -> list[Any]:
        return [record for _, record in self.scoped("/v1/logs")]

    def metric_names(self) -> set[str]:
        return {metric.name for _, metric in self.scoped("/v1/metrics")}

    def resource_attributes(self, path: str = "/v1/traces") -> dict[str, Any]:
        for request in self.of(path):
            groups = getattr(request, {"/v1/traces": "resource_spans", "/v1/logs": "resource_logs", "/v1/metrics": "resource_metrics"}[path])
            for group in groups:
                return {kv.key: _value(kv.value) for kv in group.resource.attributes}
        return {}

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def attributes(proto_attributes: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in proto_attributes}
