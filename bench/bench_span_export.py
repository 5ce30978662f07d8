"""Cost of exporting spans over OTLP/HTTP, per span, side by side in one run.

    .venv/bin/python bench/bench_span_export.py

A server-like span (SERVER kind, the HTTP attributes amas-otel's request
middleware writes, a unique correlation id) is started and ended in a loop,
its batch processor exporting to an OTLP/HTTP sink on loopback; each round
ends with ``force_flush``, so the export thread's work is part of the figure.
The process first imports the example FastAPI service, so the garbage
collector has a server's heap to walk when queued spans trigger a collection.

* SDK: ``BatchSpanProcessor`` + the SDK's ``OTLPSpanExporter`` (the baseline);
* fast exporter: ``BatchSpanProcessor`` + amas-otel's ``FastOTLPSpanExporter``;
* amas-otel: ``EncodingBatchSpanProcessor`` + ``FastOTLPSpanExporter`` (what
  ``amas_otel.configure()`` installs for OTLP/HTTP): spans encoded as they end.

Printed: the median us per span over interleaved rounds, its ratio to the
SDK's, and the garbage collections each case ran per 10,000 spans.  There is
no issue target; the figures back the README's account of the exporter.
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from amas_otel._fastpath.otlp_spans import EncodingBatchSpanProcessor, FastOTLPSpanExporter
from bench_http import _Sink  # the OTLP sink the HTTP benchmark uses

SPANS = 4_000  # per round and case
ROUNDS = 7


class _KeepAliveSink(_Sink):
    protocol_version = "HTTP/1.1"  # keep-alive, like a collector


def _server_heap() -> None:
    os.environ.setdefault("AMAS_EXAMPLE_INSTRUMENT", "0")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import examples.app  # noqa: F401 - FastAPI, pydantic, starlette: a server's objects


def _case(processor: BatchSpanProcessor) -> Callable[[], tuple[float, int]]:
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("amas_otel.fastapi")
    counter = iter(range(10**9))

    def one_round() -> tuple[float, int]:
        collections = [0]

        def count(phase: str, info: dict) -> None:
            if phase == "start":
                collections[0] += 1

        gc.callbacks.append(count)
        start = time.perf_counter()
        for _ in range(SPANS):
            n = next(counter)
            span = tracer.start_span("GET", kind=SpanKind.SERVER, attributes={
                "http.request.method": "GET",
                "url.path": "/api/data",
                "url.scheme": "http",
                "network.protocol.version": "1.1",
                "client.address": "127.0.0.1",
                "server.address": "127.0.0.1",
                "server.port": 8000,
                "amas.correlation.id": f"5f0c9a3e-1b2d-4c5e-8f70-{n:012x}",
            })
            span.set_attributes({"http.response.status_code": 200, "http.route": "/api/data"})
            span.update_name("GET /api/data")
            span.end()
        provider.force_flush()
        elapsed = time.perf_counter() - start
        gc.callbacks.remove(count)
        return elapsed / SPANS * 1e6, collections[0]

    return one_round


def main() -> None:
    _server_heap()
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAliveSink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{sink.server_port}/v1/traces"
    room = {"max_queue_size": 2 * SPANS}  # no case drops spans when its export thread falls behind
    cases = {
        "SDK BatchSpanProcessor + OTLPSpanExporter": _case(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), **room)),
        "BatchSpanProcessor + FastOTLPSpanExporter": _case(BatchSpanProcessor(FastOTLPSpanExporter(endpoint=endpoint), **room)),
        "EncodingBatchSpanProcessor (amas-otel)": _case(EncodingBatchSpanProcessor(FastOTLPSpanExporter(endpoint=endpoint), **room)),
    }
    for case in cases.values():
        case()  # warm-up: caches, connections
    results: dict[str, list[tuple[float, int]]] = {name: [] for name in cases}
    for _ in range(ROUNDS):  # interleaved: machine noise hits every case alike
        for name, case in cases.items():
            results[name].append(case())
    sink.shutdown()
    base = statistics.median(us for us, _ in results["SDK BatchSpanProcessor + OTLPSpanExporter"])
    print(f"heap objects: {len(gc.get_objects()):,}; {SPANS:,} spans a round, median of {ROUNDS} rounds")
    print(f"{'case':44} {'us/span':>8} {'vs SDK':>7} {'GC runs per 10k spans':>22}")
    for name, rounds in results.items():
        us = statistics.median(u for u, _ in rounds)
        collections = sum(c for _, c in rounds) / (len(rounds) * SPANS) * 10_000
        print(f"{name:44} {us:8.2f} {us / base:6.2f}x {collections:22.0f}")


if __name__ == "__main__":
    main()
