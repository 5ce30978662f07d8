"""HTTP overhead of instrumentation, side by side in one run, plus the rate limiter.

    .venv/bin/python bench/bench_http.py [--duration SECONDS] [--rounds N] [--connections N]

The example service (examples/app.py, route GET /api/data) is served by
uvicorn on loopback and loaded with ``wrk``, each variant once per round,
rounds interleaved (other load on a shared machine hits every variant alike):

* bare                   — AMAS_EXAMPLE_INSTRUMENT=0, no OpenTelemetry at all
* opentelemetry-instrument — the stock distro (opentelemetry-distro), same app
* amas-otel-instrument   — amas-otel's launcher, same app
* instrument_app         — the app calling amas_otel.configure() + instrument_app()
                           (traces, metrics, rate limiting, correlation, logging)
* one SDK span (by hand) — bench/_sdk_span_app.py: the bare app plus one server
                           span per request written straight against the SDK
                           (BatchSpanProcessor + OTLPSpanExporter), nothing else:
                           the floor any traced variant stands on

Every variant serves the same app and writes the same log lines: LOG_LEVEL=INFO,
one JSON line per request on stderr (to a file here); bare and the stock distro
through plain structlog, the amas variants through amas-otel's pipeline
(correlation, redaction, log-record count, OTel log records).  Every
instrumented variant has traces and metrics on with the same sinks: spans go
by OTLP/HTTP to a loopback sink that answers 200 and discards them, metrics to
a Prometheus pull reader (not scraped during the run); OTel log export: none.
Printed per variant: best requests/s and its ratio to bare (target >= 0.75
for the amas variants; stock measured about 0.42 on 2 cores), and the least
server CPU time per request (all threads, export included) with bare's
divided by it: the steadier figure when other processes share the cores.  Then the in-memory rate
limiter: decisions per second on one core (target >= 500,000/s) and memory
with 1,000,000 keys.  Runtime about a minute at the default duration.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from _server import ServerDidNotStart, free_port, listen_on, loopback_server

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TARGET_RATIO = 0.75
TARGET_DECISIONS = 500_000


class _Sink(BaseHTTPRequestHandler):
    """OTLP/HTTP sink: read the body, answer 200 with an empty protobuf message."""

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def ensure_wrk() -> str | None:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0:
        print("installing wrk (apt-get install -y wrk) ...", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
        if not shutil.which("wrk"):
            subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
        return shutil.which("wrk")
    print("wrk is not installed and this is not root: run `sudo apt-get install -y wrk` and try again", file=sys.stderr)
    return None


def _common_env(sink_port: int) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(
        {
            "OTEL_SERVICE_NAME": "bench-example",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "prometheus",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
            "OTEL_SEMCONV_STABILITY_OPT_IN": "http",
            "LOG_LEVEL": "INFO",
        }
    )
    return env


def _variants(sink_port: int) -> list[tuple[str, list[str] | None, dict[str, str], str]]:
    uvicorn = [str(BIN / "python"), "-m", "uvicorn", "examples.app:app", "--no-access-log", "--log-level", "warning"]
    base = _common_env(sink_port)
    stock = shutil.which("opentelemetry-instrument", path=str(BIN)) or shutil.which("opentelemetry-instrument")
    amas = shutil.which("amas-otel-instrument", path=str(BIN)) or shutil.which("amas-otel-instrument")
    stock_env = {**base, "AMAS_EXAMPLE_INSTRUMENT": "0", "OTEL_PYTHON_DISTRO": "distro", "OTEL_PYTHON_CONFIGURATOR": "configurator"}
    return [
        ("bare", uvicorn, {**base, "AMAS_EXAMPLE_INSTRUMENT": "0", "OTEL_SDK_DISABLED": "true"}, ""),
        (
            "opentelemetry-instrument",
            [stock, *uvicorn] if stock else None,
            stock_env,
            "" if stock else "opentelemetry-instrument not found (pip install opentelemetry-distro)",
        ),
        (
            "amas-otel-instrument",
            [amas, *uvicorn] if amas else None,
            {**base, "AMAS_EXAMPLE_INSTRUMENT": "0"},
            "" if amas else "amas-otel-instrument not found (the launcher is not installed yet)",
        ),
        ("instrument_app", uvicorn, {**base, "AMAS_EXAMPLE_INSTRUMENT": "1"}, ""),
        ("one SDK span (by hand)", [*uvicorn[:3], "bench._sdk_span_app:app", *uvicorn[4:]], {**base, "AMAS_EXAMPLE_INSTRUMENT": "0"}, ""),
    ]


def run_variant(
    wrk: str, argv: list[str], env: dict[str, str], duration: float, connections: int
) -> tuple[float | None, float | None, str]:
    """(requests/s, server CPU seconds per request over all its threads, note)."""
    import psutil

    port = free_port()
    env = {**env, "PROMETHEUS_PORT": str(free_port()), "OTEL_EXPORTER_PROMETHEUS_PORT": str(free_port())}
    url = f"http://127.0.0.1:{port}/api/data"
    try:
        with loopback_server([*argv, *listen_on(port)], url, env=env, cwd=REPO) as server:
            warm = subprocess.run([wrk, "-t1", f"-c{connections}", "-d1s", url], capture_output=True, text=True)
            if warm.returncode != 0:
                return None, None, warm.stderr.strip()
            process = psutil.Process(server.process.pid)
            cpu_before = sum(process.cpu_times()[:2])
            run = subprocess.run(
                [wrk, "-t1", f"-c{connections}", f"-d{duration:g}s", url], capture_output=True, text=True, timeout=duration + 30
            )
            cpu = sum(process.cpu_times()[:2]) - cpu_before
    except ServerDidNotStart as exc:
        return None, None, f"did not start: {exc.last_line}"
    rps = re.search(r"Requests/sec:\s+([\d.]+)", run.stdout)
    done = re.search(r"(\d+) requests in", run.stdout)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", run.stdout)
    note = f"{non2xx.group(1)} non-2xx" if non2xx else ""
    cpu_per_request = cpu / int(done.group(1)) if done and int(done.group(1)) else None
    return (float(rps.group(1)) if rps else None), cpu_per_request, note


def bench_http(duration: float, connections: int, rounds: int) -> bool:
    wrk = ensure_wrk()
    if wrk is None:
        return False
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    print(
        f"HTTP: uvicorn examples.app:app, GET /api/data, wrk -t1 -c{connections} -d{duration:g}s "
        f"(after 1 s warm-up), variants interleaved, {rounds} round(s): best req/s, least server CPU per request"
    )
    runs: dict[str, list[tuple[float, float | None]]] = {}
    notes: dict[str, str] = {}
    try:
        variants = _variants(sink.server_port)
        for _ in range(rounds):
            for name, argv, env, skip in variants:
                if argv is None:
                    notes[name] = f"skipped: {skip}"
                    continue
                rps, cpu, note = run_variant(wrk, argv, env, duration, connections)
                if rps is None:
                    notes[name] = f"failed: {note}"
                    continue
                runs.setdefault(name, []).append((rps, cpu))
                if note:
                    notes[name] = note
    finally:
        sink.shutdown()
    # CPU per request (all threads of the server) is the steadier figure on a
    # shared machine; its ratio bare/variant is what throughput would be if
    # the server had a core to itself.
    print(f"{'variant':<26} {'req/s':>8} {'vs bare':>8} {'CPU us/req':>11} {'CPU vs bare':>12}  {'target':>7}  note")
    best = {name: max(r for r, _ in results) for name, results in runs.items()}
    least = {name: min((c for _, c in results if c), default=None) for name, results in runs.items()}
    ok = "bare" in best
    for name, *_ in variants:
        if name not in best:
            print(f"{name:<26} {'-':>8} {'-':>8} {'-':>11} {'-':>12}  {'':>7}  {notes.get(name, '')}")
            ok = ok and notes.get(name, "").startswith("skipped")
            continue
        ratio = best[name] / best["bare"] if "bare" in best else float("nan")
        cpu, bare_cpu = least[name], least.get("bare")
        cpu_ratio = bare_cpu / cpu if cpu and bare_cpu else float("nan")
        target = f">={TARGET_RATIO}" if name in ("amas-otel-instrument", "instrument_app") else ""
        met = "" if not target else ("ok" if ratio >= TARGET_RATIO else "MISSED")
        shown_cpu = f"{cpu * 1e6:>11.0f}" if cpu else f"{'-':>11}"
        print(
            f"{name:<26} {best[name]:>8.0f} {ratio:>7.2f}x {shown_cpu} {cpu_ratio:>11.2f}x  {target:>7}  "
            f"{' '.join(filter(None, [met, notes.get(name, '')]))}"
        )
    return ok


def bench_limiter() -> None:
    sys.path.insert(0, str(REPO))
    import psutil

    from amas_otel.ratelimit import RateLimiter

    limiter = RateLimiter(requests_per_minute=600_000, burst_size=10_000, max_keys=1_000_000)
    keys = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(10_000)]
    allow = limiter.allow_request
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < 2.0:
        for key in keys:
            allow(key)
        done += len(keys)
    rate = done / (time.perf_counter() - start)
    print("\nIn-memory rate limiter (one thread, 10,000 hot keys)")
    verdict = "ok" if rate >= TARGET_DECISIONS else "MISSED"
    print(f"  allow_request decisions/s {rate:>12,.0f}   target >= {TARGET_DECISIONS:,}  {verdict}")

    limiter.reset()
    gc.collect()
    process = psutil.Process()
    before = process.memory_info().rss
    for i in range(1_000_000):
        allow(f"k{i}")
    held = process.memory_info().rss - before
    print(f"  1,000,000 keys held (max_keys=1,000,000): {held / 2**20:,.0f} MiB RSS, {held / 1e6:,.0f} B/key")
    bounded = RateLimiter(requests_per_minute=60, burst_size=10)  # default max_keys=100,000
    start = time.perf_counter()
    for i in range(1_000_000):
        bounded.allow_request(f"k{i}")
    print(
        f"  1,000,000 distinct keys into the default limiter: {len(bounded):,} kept, "
        f"{bounded.evictions:,} evicted, {time.perf_counter() - start:.1f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of load per variant and round (default 3)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the variants (default 2)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    args = parser.parse_args()
    ok = bench_http(args.duration, args.connections, args.rounds)
    bench_limiter()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
