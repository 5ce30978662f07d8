"""The example app at full rate with everything exported through amas-otelcol, against the embedded default.

    .venv/bin/python bench/bench_collector.py [--duration SECONDS] [--rounds N] [--connections N]

Side by side in one run, rounds interleaved, the example service (uvicorn
examples.app:app, GET /api/data, one INFO log line per request) loaded by ``wrk``:

* embedded default  — nothing set: metrics on the app's Prometheus pull endpoint, traces not
                      exported, logs on stdout (to a file here)
* through collector — OTEL_EXPORTER_OTLP_ENDPOINT at amas-otelcol running the shipped
                      otel-collector.yaml (memory_limiter, redaction, batch; Prometheus exporter,
                      debug exporter for traces and logs): spans, metrics and log records over OTLP/HTTP

Printed: best req/s of each and the ratio; for the collector, its peak RSS
(sampled every 100 ms; memory_limiter at the shipped 75 % of memory) and the
spans per second it accepted (``otelcol_receiver_accepted_spans_total`` from
its own telemetry, over the load including the 1 s warm-up) with the spans it
refused (memory_limiter) or failed to send.  The collector binary is
``$AMAS_OTELCOL_BIN``, else ``amas-otel collector build``'s.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import threading
import time
import urllib.request

import psutil

from _server import free_port, loopback_server
from amas_otel.collector import build_collector
from bench_http import REPO, ensure_wrk, run_variant

_UVICORN = [sys.executable, "-m", "uvicorn", "examples.app:app", "--no-access-log", "--log-level", "warning"]
_PORTS = ("OTLP_GRPC", "OTLP_HTTP", "PROMETHEUS", "HEALTH", "TELEMETRY")


def _counters(telemetry_port: int) -> dict[str, float]:
    """The collector's own span counters, summed over their labels."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{telemetry_port}/metrics", timeout=5).read().decode()
    totals: dict[str, float] = {}
    for name in ("otelcol_receiver_accepted_spans", "otelcol_receiver_refused_spans", "otelcol_exporter_send_failed_spans"):
        totals[name] = sum(float(value) for value in re.findall(rf"^{name}(?:_total)?{{[^}}]*}} (\S+)$", text, re.M))
    return totals


class _PeakRss:
    """Samples a process's RSS every 100 ms in a thread; ``peak`` in bytes."""

    def __init__(self, pid: int) -> None:
        self.process, self.peak = psutil.Process(pid), 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per variant and round (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    args = parser.parse_args()
    wrk = ensure_wrk()
    if wrk is None:
        return 1
    binary = os.environ.get("AMAS_OTELCOL_BIN") or str(build_collector())
    base = {**os.environ, "PYTHONPATH": str(REPO), "AMAS_EXAMPLE_INSTRUMENT": "1", "LOG_LEVEL": "INFO",
            "OTEL_SERVICE_NAME": "bench-collector"}
    for name in [n for n in base if n.startswith("OTEL_EXPORTER_OTLP") or n.endswith("_EXPORTER")]:
        del base[name]
    ports = {name: free_port() for name in _PORTS}
    collector_env = {**os.environ, **{f"AMAS_COLLECTOR_{name}_PORT": str(port) for name, port in ports.items()}}
    with loopback_server([binary, f"--config={REPO / 'otel-collector.yaml'}"], f"http://127.0.0.1:{ports['HEALTH']}/",
                         env=collector_env) as server:
        collector = server.process
        variants = {
            "embedded default": base,
            "through collector": {**base, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{ports['OTLP_HTTP']}"},
        }
        best: dict[str, float] = {}
        peak, spans_per_second, lost = 0, 0.0, 0.0
        print(f"uvicorn examples.app:app, GET /api/data, wrk -t1 -c{args.connections} -d{args.duration:g}s "
              f"(after 1 s warm-up), {args.rounds} interleaved round(s); collector {binary}")
        for _ in range(args.rounds):
            for name, env in variants.items():
                through = name == "through collector"
                before = _counters(ports["TELEMETRY"]) if through else {}
                started = time.monotonic()
                with _PeakRss(collector.pid) as rss:
                    rps, _, note = run_variant(wrk, _UVICORN, env, args.duration, args.connections)
                if rps is None:
                    print(f"{name}: failed: {note}")
                    return 1
                best[name] = max(best.get(name, 0.0), rps)
                if through:
                    time.sleep(2)  # the collector's batch (1 s) passes on what the app flushed at exit
                    after = _counters(ports["TELEMETRY"])
                    accepted = after["otelcol_receiver_accepted_spans"] - before["otelcol_receiver_accepted_spans"]
                    spans_per_second = max(spans_per_second, accepted / (args.duration + 1))
                    lost += sum(after[k] - before[k] for k in after if k != "otelcol_receiver_accepted_spans")
                    peak = max(peak, rss.peak)
                    print(f"  round: {rps:,.0f} req/s through the collector; {accepted:,.0f} spans in "
                          f"{time.monotonic() - started:.0f} s; collector peak RSS {rss.peak / 2**20:.0f} MiB")
    embedded, through = best["embedded default"], best["through collector"]
    print(f"{'variant':<20} {'req/s':>8} {'vs embedded':>12}")
    print(f"{'embedded default':<20} {embedded:>8.0f} {1:>11.2f}x")
    print(f"{'through collector':<20} {through:>8.0f} {through / embedded:>11.2f}x")
    print(f"amas-otelcol: peak RSS {peak / 2**20:.0f} MiB (memory_limiter 75 % of memory), "
          f"{spans_per_second:,.0f} spans/s accepted, {lost:.0f} spans refused or failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
