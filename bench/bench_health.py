"""Probe throughput: /health/ready served from cached results vs a bare FastAPI route.

    .venv/bin/python bench/bench_health.py [--seconds 4] [--connections 32] [--rounds 2]

One uvicorn process on a loopback port serves both routes of one FastAPI app
(same process, same settings):

- ``/bare``: ``async def bare(): return {"status": "healthy"}`` — the baseline;
- ``/health/ready``: :func:`amas_otel.health.health_router` over a service with
  ``HEALTH_CHECK_INTERVAL`` 60 s and three checks (memory, disk, a service
  callable); probes read the cached report.

The load generator is ``wrk`` (installed with ``apt-get install -y wrk`` when
missing and we are root); without it a bounded asyncio keep-alive client is
used instead, and the table says so.  Rounds alternate bare / health so that
noise from other processes hits both; the best round of each is compared.
Target: health >= 0.8 x bare.  Runtime < 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET = 0.8


def build_app():  # noqa: ANN201 - FastAPI is imported inside the server process only
    from fastapi import FastAPI
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    from amas_otel.health import DiskHealthCheck, HealthCheckService, MemoryHealthCheck, health_router

    service = HealthCheckService(
        timeout=2.0, retries=0, interval=60.0, version="bench",
        tracer_provider=TracerProvider(), meter_provider=MeterProvider(),
    )
    service.add("memory", MemoryHealthCheck(100.0))
    service.add("disk", DiskHealthCheck("/", 100.0))
    service.add("worker", lambda: {"status": "healthy", "queue": 0})

    app = FastAPI()

    @app.get("/bare")
    async def bare() -> dict[str, str]:
        return {"status": "healthy"}

    app.include_router(health_router(service))
    return app


def serve(port: int) -> None:
    import uvicorn

    uvicorn.run(build_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_wrk() -> tuple[str | None, str]:
    found = shutil.which("wrk")
    if found:
        return found, "wrk"
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True, timeout=120, check=False)
        found = shutil.which("wrk")
        if found:
            return found, "wrk (installed now)"
    return None, "asyncio keep-alive client (wrk unavailable; client shares the machine, figures are lower bounds)"


def run_wrk(wrk: str, url: str, seconds: float, connections: int) -> tuple[float, int]:
    out = subprocess.run(
        [wrk, "-t", "2", "-c", str(connections), "-d", f"{seconds:g}s", url],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    return rps, int(bad.group(1)) if bad else 0


async def _client_loop(port: int, path: str, deadline: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    try:
        while time.monotonic() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
            await reader.readexactly(length)
            counts[0 if head.startswith(b"HTTP/1.1 2") else 1] += 1
    finally:
        writer.close()


def run_asyncio_client(port: int, path: str, seconds: float, connections: int) -> tuple[float, int]:
    counts = [0, 0]

    async def main() -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(_client_loop(port, path, deadline, counts) for _ in range(connections)))

    started = time.monotonic()
    asyncio.run(main())
    return sum(counts) / (time.monotonic() - started), counts[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0

    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health/ready", timeout=1) as response:
                    assert response.status == 200
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    print("server did not start", file=sys.stderr)
                    return 1
                time.sleep(0.1)

        wrk, generator = ensure_wrk()
        def measure(path: str) -> tuple[float, int]:
            if wrk:
                return run_wrk(wrk, base + path, args.seconds, args.connections)
            return run_asyncio_client(port, path, args.seconds, args.connections)

        measure("/bare")  # warm-up
        results: dict[str, list[tuple[float, int]]] = {"/bare": [], "/health/ready": []}
        for _ in range(args.rounds):
            for path in results:
                results[path].append(measure(path))
    finally:
        server.terminate()
        server.wait(10)

    best = {path: max(rps for rps, _ in rounds) for path, rounds in results.items()}
    errors = {path: sum(bad for _, bad in rounds) for path, rounds in results.items()}
    ratio = best["/health/ready"] / best["/bare"]
    print(f"load generator: {generator}; {args.connections} connections, {args.seconds:g}s x {args.rounds} rounds, "
          "one uvicorn process on loopback, best round shown")
    print(f"{'route':<34}{'req/s':>10}{'non-2xx':>9}{'ratio':>8}")
    print(f"{'bare FastAPI route (constant JSON)':<34}{best['/bare']:>10.0f}{errors['/bare']:>9}{1.0:>8.2f}")
    print(f"{'/health/ready (cached report)':<34}{best['/health/ready']:>10.0f}{errors['/health/ready']:>9}{ratio:>8.2f}")
    verdict = "meets" if ratio >= TARGET else "MISSES"
    print(f"target: health >= {TARGET} x bare -> {verdict} ({ratio:.2f})")
    return 0 if ratio >= TARGET and not any(errors.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
