"""End to end: the example service under ``amas-otel-instrument``, scraped by a real Prometheus,
exporting OTLP to a loopback receiver, and surviving a dead collector."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from tests.conftest import REPO, free_port, python_env
from tests.support import prometheus, terminate
from tests.support.otlp import OtlpReceiver, attributes

BIN = Path(sys.executable).parent
ADMIN = {"Authorization": "Bearer change-me"}
SECRETS = {
    "password": "Tr0ub4dor&3-horse-battery",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk",
    "token": "tok_9f8e7d6c5b4a39281706",
    "card": "4111111111111111",
    "email": "jane.doe@example.com",
}


class App:
    def __init__(self, process: subprocess.Popen[str], port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log
        self.url = f"http://127.0.0.1:{port}"

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()


@contextmanager
def run_app(tmp_path: Path, **env: str) -> Iterator[App]:
    port = free_port()
    log = tmp_path / f"app-{port}.log"
    settings = {
        "AMAS_CONFIG_FILES": "",
        "HEALTH_CHECK_INTERVAL": "0.5",
        "HEALTH_CHECK_RETRIES": "0",
        "PROMETHEUS_HOST": "127.0.0.1",
        **env,
    }
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(BIN / "amas-otel-instrument"), str(BIN / "uvicorn"), "examples.app:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            cwd=REPO,
            env=python_env(**settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    app = App(process, port, log)
    try:
        deadline = time.monotonic() + 40
        while True:
            try:
                if app.request("GET", "/health/live")[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("example app did not start:\n" + log.read_text()[-4000:])
            time.sleep(0.2)
        yield app
    finally:
        terminate(process, 15)


def drive_failure_traffic(app: App) -> None:
    """Ordinary requests, then the dependency goes down: the breaker opens and readiness fails."""
    for order in range(5):
        assert app.request("GET", f"/api/orders/ord-{order}")[0] == 200
    assert app.request("GET", "/api/data")[0] == 200
    assert app.request("GET", "/api/orders/not%20valid!")[0] == 400
    assert app.request("POST", "/admin/dependency/down", headers=ADMIN)[0] == 200
    statuses = [app.request("GET", "/api/downstream")[0] for _ in range(5)]
    assert statuses[:3] == [502, 502, 502] and statuses[3:] == [503, 503], statuses


def test_prometheus_sees_breaker_health_http_and_errors(tmp_path: Path) -> None:
    metrics_port = free_port()
    with run_app(tmp_path, PROMETHEUS_PORT=str(metrics_port)) as app:
        drive_failure_traffic(app)
        deadline = time.monotonic() + 10
        while app.request("GET", "/health/ready")[0] != 503:
            assert time.monotonic() < deadline, "readiness never failed"
            time.sleep(0.2)
        assert app.request("GET", "/health/live")[0] == 200
        scraped = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read()
        with prometheus.start([f"127.0.0.1:{metrics_port}"], tmp_path) as server:
            open_state = server.wait_for('amas_breaker_state{amas_breaker_name="downstream",amas_breaker_state="open"} == 1')
            assert open_state[0]["value"][1] == "1"
            closed = server.query('amas_breaker_state{amas_breaker_name="downstream",amas_breaker_state="closed"}')
            assert closed and closed[0]["value"][1] == "0"
            rejected = server.wait_for('amas_breaker_calls_total{amas_breaker_name="downstream",amas_breaker_outcome="rejected"}')
            assert float(rejected[0]["value"][1]) == 2
            health = server.wait_for('amas_health_check_status{amas_health_check_name="downstream"}')
            assert {s["metric"]["amas_health_check_result"]: s["value"][1] for s in health} == {
                "healthy": "0", "degraded": "0", "unhealthy": "1"}
            buckets = server.wait_for('http_server_request_duration_seconds_bucket{http_route="/api/orders/{order_id}"}')
            assert {sample["metric"]["le"] for sample in buckets} >= {"0.005", "+Inf"}
            count = server.query('sum(http_server_request_duration_seconds_count{http_route="/api/orders/{order_id}"})')
            assert float(count[0]["value"][1]) == 6
            errors = server.wait_for("amas_errors_total")
            assert sum(float(sample["value"][1]) for sample in errors) >= 1
    lint = subprocess.run([prometheus.binary("promtool"), "check", "metrics"], input=scraped, capture_output=True, timeout=60)
    assert lint.returncode == 0 and not (lint.stdout + lint.stderr).strip(), (lint.stdout + lint.stderr).decode()


def test_otlp_wire_carries_resource_spans_events_logs_and_no_secrets(tmp_path: Path, otlp_receiver: OtlpReceiver) -> None:
    with run_app(
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_BLRP_SCHEDULE_DELAY="200",
        AMAS_CUSTOM_METRICS_INTERVAL="1",
        PROMETHEUS_ENABLED="false",
    ) as app:
        drive_failure_traffic(app)
        status, _, body = app.request(
            "POST",
            f"/api/users?token={SECRETS['token']}",
            body={"email": SECRETS["email"], "name": "Jane", "password": SECRETS["password"] + " card " + SECRETS["card"]},
            headers={"Authorization": f"Bearer {SECRETS['jwt']}", "X-Correlation-ID": "corr-e2e-1"},
        )
        assert status in (201, 400)
        assert SECRETS["password"].encode() not in body
        assert otlp_receiver.wait_for(
            lambda: any(e.name == "amas.breaker.state_change" for s in otlp_receiver.spans() for e in s.events)
            and otlp_receiver.log_records()
            and "http.server.request.duration" in otlp_receiver.metric_names(),
            timeout=15,
        )
    resource = otlp_receiver.resource_attributes()
    assert resource["service.name"] == "amas-otel"
    assert resource["service.version"]
    spans = otlp_receiver.spans()
    servers = [span for span in spans if span.kind == 2]
    orders = [attributes(s.attributes) for s in servers if attributes(s.attributes).get("http.route") == "/api/orders/{order_id}"]
    assert orders and {"http.request.method", "http.response.status_code", "url.scheme"} <= set(orders[0])
    transitions = [attributes(e.attributes) for s in spans for e in s.events if e.name == "amas.breaker.state_change"]
    assert {"amas.breaker.name": "downstream", "amas.breaker.state": "open"}.items() <= transitions[0].items()
    correlated = [s for s in servers if attributes(s.attributes).get("amas.correlation.id") == "corr-e2e-1"]
    assert correlated
    records = otlp_receiver.log_records()
    traced_records = [r for r in records if r.trace_id and any(r.trace_id == s.trace_id for s in servers)]
    assert traced_records, "no log record carries a request's trace id"
    wire = otlp_receiver.all_bytes()
    for kind, secret in SECRETS.items():
        assert secret.encode() not in wire, f"{kind} leaked to the OTLP wire"


def _rss(pid: int) -> int:
    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])


def test_collector_down_no_failed_requests_bounded_memory_quick_exit(tmp_path: Path) -> None:
    dead = free_port()
    with run_app(
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{dead}",
        OTEL_BSP_SCHEDULE_DELAY="100",
        AMAS_CUSTOM_METRICS_INTERVAL="0.5",
        PROMETHEUS_ENABLED="false",
    ) as app:
        for _ in range(50):
            app.request("GET", "/api/data")
        before = _rss(app.process.pid)
        failures: list[Any] = []
        done = [0]
        stop_at = time.monotonic() + 20

        def client() -> None:
            for i in range(750):
                if time.monotonic() > stop_at:
                    return
                try:
                    status = app.request("GET", f"/api/orders/o{i}")[0]
                except OSError as exc:
                    failures.append(exc)
                    continue
                if status != 200:
                    failures.append(status)
                done[0] += 1

        workers = [threading.Thread(target=client) for _ in range(4)]
        [w.start() for w in workers]
        [w.join() for w in workers]
        after = _rss(app.process.pid)
        print(f"\ncollector down: {done[0]} requests, {len(failures)} failed, RSS {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB")
        assert done[0] >= 1000 and not failures
        assert after - before < 64 * 2**20, f"RSS grew by {(after - before) / 2**20:.1f} MiB"
        sent = time.monotonic()
        app.process.send_signal(signal.SIGTERM)
        app.process.wait(15)
        took = time.monotonic() - sent
    print(f"exit after SIGTERM: {took:.2f}s")
    assert took < 2.0, f"exit took {took:.2f}s after SIGTERM"
    log = app.log.read_text()
    assert "Traceback" not in log, log[-3000:]
