"""The demo: the example service under ``amas-otel-instrument`` on the embedded default, driven with traffic.

    python -m examples.demo [--keep-running] [--port 8000] [--metrics-port 9464]

It starts ``uvicorn examples.app:app`` through the launcher (Prometheus pull
endpoint, JSON logs on stdout captured to a file), sends ordinary requests,
takes the downstream dependency down so that its circuit breaker opens and
readiness fails, brings it back, and prints what each signal shows and where
to look for it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
_ADMIN = {"Authorization": "Bearer change-me"}
_SHOWN_SERIES = (
    "http_server_request_duration_seconds_count",
    "amas_breaker_state",
    "amas_breaker_calls_total",
    "amas_health_check_status",
    "amas_errors_total",
    "amas_business_events_total",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _request(base: str, method: str, path: str, headers: dict[str, str] | None = None, body: object = None) -> tuple[int, str]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _wait_until_live(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit("the example service exited early:\n" + log.read_text()[-3000:])
        try:
            if _request(base, "GET", "/health/live")[0] == 200:
                return
        except OSError:
            time.sleep(0.2)
    sys.exit("the example service did not start within 60 s; see " + str(log))


def _show(title: str, status: int, body: str) -> None:
    print(f"  {title:<44} -> {status} {body[:110]}")


def _series(metrics_url: str) -> list[str]:
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    return [line for line in text.splitlines() if line.startswith(_SHOWN_SERIES)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="service port (default: a free one)")
    parser.add_argument("--metrics-port", type=int, default=0, help="Prometheus endpoint port (default: a free one)")
    parser.add_argument("--keep-running", action="store_true", help="leave the service running until Ctrl-C")
    args = parser.parse_args()

    port, metrics_port = args.port or _free_port(), args.metrics_port or _free_port()
    base, metrics_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics"
    log = _ROOT / ".cache" / "demo" / "service.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PROMETHEUS_HOST": "127.0.0.1",
        "PROMETHEUS_PORT": str(metrics_port),
        "HEALTH_CHECK_INTERVAL": "1",
        "LOG_FORMAT": "json",
    }
    launcher = shutil.which("amas-otel-instrument") or str(Path(sys.executable).parent / "amas-otel-instrument")
    uvicorn = shutil.which("uvicorn") or str(Path(sys.executable).parent / "uvicorn")
    command = [launcher, uvicorn, "examples.app:app", "--host", "127.0.0.1", "--port", str(port)]
    print("starting: " + " ".join(["amas-otel-instrument", "uvicorn", "examples.app:app", "--port", str(port)]))
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_until_live(base, process, log)
        print("\n1. ordinary traffic")
        for path in ("/api/data?correlation_id=demo-42", "/api/orders/ord-1", "/api/orders/ord-2", "/api/orders/bad%20id!"):
            _show("GET " + path, *_request(base, "GET", path))
        _show("POST /api/users (weak password)", *_request(base, "POST", "/api/users", body={"email": "jane@example.com", "name": "Jane", "password": "short"}))

        print("\n2. the downstream dependency goes down")
        _show("POST /admin/dependency/down", *_request(base, "POST", "/admin/dependency/down", headers=_ADMIN))
        for attempt in range(5):
            _show(f"GET /api/downstream (#{attempt + 1})", *_request(base, "GET", "/api/downstream"))
        time.sleep(1.5)  # the background health run notices
        for path in ("/health/live", "/health/ready", "/health"):
            _show("GET " + path, *_request(base, "GET", path))

        print(f"\n3. what Prometheus scrapes from {metrics_url}")
        for line in _series(metrics_url)[:24]:
            print("  " + line)

        print("\n4. the dependency comes back")
        _show("POST /admin/dependency/up", *_request(base, "POST", "/admin/dependency/up", headers=_ADMIN))
        time.sleep(1.5)
        _show("GET /health/ready", *_request(base, "GET", "/health/ready"))

        print(f"\n5. the service's JSON log lines (trace_id, span_id, correlation_id; secrets redacted): {log}")
        for line in [line for line in log.read_text().splitlines() if line.startswith("{")][-4:]:
            print("  " + line[:220])

        print(
            "\nWhere to look:\n"
            f"  service            {base}/api/data   {base}/docs\n"
            f"  health             {base}/health  /health/live  /health/ready  /health/detailed\n"
            f"  Prometheus metrics {metrics_url}\n"
            f"  logs               {log}\n"
            "  traces             set OTEL_EXPORTER_OTLP_ENDPOINT (e.g. an otelcol-contrib with otel-collector.yaml)"
        )
        if args.keep_running:
            print("\nrunning; Ctrl-C stops it")
            process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(15)


if __name__ == "__main__":
    main()
