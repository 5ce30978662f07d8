"""The demo: the example service under ``amas-otel-instrument`` on the embedded default, driven with traffic.

    python -m examples.demo [--keep-running] [--port 8000] [--metrics-port 9464] [--collector]

It starts ``uvicorn examples.app:app`` through the launcher (Prometheus pull
endpoint, JSON logs on stdout captured to a file), sends ordinary requests,
takes the downstream dependency down so that its circuit breaker opens and
readiness fails, brings it back, and prints what each signal shows and where
to look for it.

With ``--collector`` the service exports everything over OTLP to amas-otelcol
(``$AMAS_OTELCOL_BIN``, else built with ``amas-otel collector build``) running
``otel-collector.yaml``, a Prometheus server (``$PROMETHEUS_BIN``, else
``prometheus`` on PATH) scrapes the collector with ``collector/prometheus.yml``
and ``collector/alerts.yml``, and the demo prints PromQL answers instead of the
scraped lines.  Everything listens on free loopback ports.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import yaml

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
_PROMQL = (
    ("requests per route", "sum by (http_route) (http_server_request_duration_seconds_count)"),
    ("p95 latency since start (s)", "histogram_quantile(0.95, sum by (le) (http_server_request_duration_seconds_bucket))"),
    # amas_breaker_state_ratio through the collector (a gauge of unit 1 gets the `_ratio` suffix there).
    ("breakers open", '{__name__=~"amas_breaker_state(_ratio)?",amas_breaker_state="open"} == 1'),
    ("health checks not healthy", '{__name__=~"amas_health_check_status(_ratio)?",amas_health_check_result!="healthy"} == 1'),
    ("errors by type", "sum by (error_type) (amas_errors_total)"),
    ("alerts", "ALERTS"),
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


def _ready(url: str, process: subprocess.Popen[bytes], name: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{name} did not start; see {log}:\n" + log.read_text(errors="replace")[-3000:])


@contextlib.contextmanager
def _collector_and_prometheus(workdir: Path) -> Iterator[tuple[str, str]]:
    """amas-otelcol with otel-collector.yaml and Prometheus scraping it; yields (OTLP/HTTP endpoint, Prometheus URL)."""
    from amas_otel.collector import CollectorUnavailable, build_collector, find_collector_binary

    try:
        collector = find_collector_binary() or str(build_collector())
    except CollectorUnavailable as exc:
        sys.exit(str(exc))
    prometheus = os.environ.get("PROMETHEUS_BIN") or shutil.which("prometheus")
    if not prometheus:
        sys.exit("--collector needs Prometheus: run ./scripts/demo --collector (it unpacks Debian's package) or set PROMETHEUS_BIN")
    ports = {name: _free_port() for name in ("OTLP_GRPC", "OTLP_HTTP", "PROMETHEUS", "HEALTH", "TELEMETRY", "SERVER")}
    config = yaml.safe_load((_ROOT / "collector" / "prometheus.yml").read_text())
    job = next(job for job in config["scrape_configs"] if job["job_name"] == "otel-collector")
    job["static_configs"] = [{"targets": [f"127.0.0.1:{ports['PROMETHEUS']}"]}]
    config.update(scrape_configs=[job], rule_files=[str(_ROOT / "collector" / "alerts.yml")],
                  **{"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}})
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    env = {**os.environ, **{f"AMAS_COLLECTOR_{name}_PORT": str(port) for name, port in ports.items()}}
    print(f"starting: {collector} --config=otel-collector.yaml, and Prometheus on 127.0.0.1:{ports['SERVER']}")
    processes = []
    try:
        for name, command, ready in (
            ("collector", [collector, f"--config={_ROOT / 'otel-collector.yaml'}"], f"http://127.0.0.1:{ports['HEALTH']}/"),
            ("prometheus", [prometheus, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                            f"--web.listen-address=127.0.0.1:{ports['SERVER']}"], f"http://127.0.0.1:{ports['SERVER']}/-/ready"),
        ):
            log = workdir / f"{name}.log"
            with log.open("wb") as out:
                processes.append(subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT))
            _ready(ready, processes[-1], name, log)
        yield f"http://127.0.0.1:{ports['OTLP_HTTP']}", f"http://127.0.0.1:{ports['SERVER']}"
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(15)


def _promql(prometheus_url: str, query: str) -> list[dict[str, object]]:
    with urllib.request.urlopen(f"{prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": query}), timeout=5) as response:
        return json.load(response)["data"]["result"]


def _wait_for_series(prometheus_url: str, query: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not _promql(prometheus_url, query) and time.monotonic() < deadline:
        time.sleep(0.5)


def _print_promql(prometheus_url: str) -> None:
    _wait_for_series(prometheus_url, _PROMQL[2][1])  # a scrape after the export that carried the traffic
    _wait_for_series(prometheus_url, "ALERTS", timeout=5)  # and a rule evaluation after that
    for title, query in _PROMQL:
        print(f"  {title}: {query}")
        for sample in _promql(prometheus_url, query) or [{"metric": {}, "value": [0, "(no data yet)"]}]:
            labels = {k: v for k, v in sample["metric"].items()
                      if k not in ("instance", "job", "__name__") and not k.startswith("otel_scope_")}
            print(f"      {labels or ''} {sample['value'][1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="service port (default: a free one)")
    parser.add_argument("--metrics-port", type=int, default=0, help="Prometheus endpoint port (default: a free one)")
    parser.add_argument("--keep-running", action="store_true", help="leave the service running until Ctrl-C")
    parser.add_argument("--collector", action="store_true",
                        help="export through amas-otelcol into a real Prometheus and print PromQL answers")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        if args.collector:
            workdir = _ROOT / ".cache" / "demo" / "collector"
            shutil.rmtree(workdir, ignore_errors=True)
            workdir.mkdir(parents=True)
            otlp, prometheus_url = stack.enter_context(_collector_and_prometheus(workdir))
            _demo(args, {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp, "AMAS_CUSTOM_METRICS_INTERVAL": "1",
                         "OTEL_BSP_SCHEDULE_DELAY": "500", "PROMETHEUS_ENABLED": "false"}, prometheus_url)
        else:
            _demo(args, {}, None)


def _demo(args: argparse.Namespace, export: dict[str, str], prometheus_url: str | None) -> None:
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
        **export,
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

        if prometheus_url:
            print(f"\n3. what Prometheus ({prometheus_url}) answers, scraping the collector")
            _print_promql(prometheus_url)
        else:
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
            + (f"  Prometheus         {prometheus_url}/graph (scraping amas-otelcol)\n" if prometheus_url
               else f"  Prometheus metrics {metrics_url}\n")
            + f"  logs               {log}\n"
            + ("  traces             amas-otelcol's debug exporter (one line per batch in .cache/demo/collector/collector.log)"
               if prometheus_url else "  traces             ./scripts/demo --collector sends them through amas-otelcol")
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
