"""Throughput under hostile input and a hung dependency, side by side in one run.

    .venv/bin/python bench/bench_hostile.py [--duration SECONDS] [--baseline REV]

uvicorn on loopback (``--h11-max-incomplete-event-size 262144``, so a 100 KB
header can follow another on a kept-alive connection), loaded by 16 client
threads here, one kept-alive connection each (wrk refuses request headers over
80 KB); the clients share the machine's cores with the server alike in every variant:

* Baggage flood: ``GET /api/data`` of examples/app.py with and without a
  100 KB ``baggage`` header of 1,000 list-members, for the bare app
  (AMAS_EXAMPLE_INSTRUMENT=0, no OpenTelemetry) and the instrumented one.
* Redis black hole: bench/_redis_limited_app.py, rate-limited through Redis at
  a loopback server that accepts connections and never answers (clients
  give up on an answer after 10 s).

``--baseline REV`` adds the same instrumented variants running amas_otel as of
git revision REV (``git archive``), for before/after figures in one run.
Printed: requests/s, requests answered, non-2xx answers, client timeouts and
bytes of log written per request.
Bounded: each variant runs ``--duration`` seconds (default 5; the black-hole
variants at least 10, so a 5 s wait per request shows).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

from _server import free_port, listen_on, loopback_server

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FLOOD = ",".join(f"k{i}={'v' * 95}" for i in range(1000))  # 100,889 bytes, 1,000 list-members
CLIENTS = 16


def _baseline_tree(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", rev, "amas_otel"], cwd=REPO, capture_output=True, check=True).stdout
    archive_path = into / "baseline.tar"
    archive_path.write_bytes(archive)
    with tarfile.open(archive_path) as tar:
        tar.extractall(into, filter="data")
    return into


def _client(port: int, request: bytes, deadline: float, counts: list[int]) -> None:
    """One keep-alive connection sending ``request`` until ``deadline``: [answered, non-2xx, timeouts]."""
    sock = None
    while time.monotonic() < deadline:
        try:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
            while len(body) < length:
                body += sock.recv(65536)
            counts[0] += 1
            counts[1] += not head.startswith(b"HTTP/1.1 2")
        except socket.timeout:
            counts[2] += 1
            sock.close()
            sock = None
        except OSError:
            if sock is not None:
                sock.close()
            sock = None
    if sock is not None:
        sock.close()


def _load(port: int, headers: dict[str, str], seconds: float) -> dict[str, float]:
    """CLIENTS threads, one keep-alive connection each, for ``seconds``: the figures."""
    request = "GET /api/data HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    counts = [[0, 0, 0] for _ in range(CLIENTS)]
    start = time.monotonic()
    threads = [
        threading.Thread(target=_client, args=(port, request.encode("latin-1"), start + seconds, c), daemon=True)
        for c in counts
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 15)
    elapsed = time.monotonic() - start
    answered, non2xx, timeouts = (sum(c[i] for c in counts) for i in range(3))
    return {"req/s": answered / elapsed, "requests": answered, "non-2xx": non2xx, "timeouts": timeouts}


def _serve_and_load(app: str, env: dict[str, str], duration: float, headers: dict[str, str], warm: bool) -> dict[str, float]:
    # The first PYTHONPATH entry is also the working directory: `python -m` puts it first on sys.path.
    cwd = env["PYTHONPATH"].split(os.pathsep)[0]
    port = free_port()
    argv = [str(BIN / "python"), "-m", "uvicorn", app, *listen_on(port), "--no-access-log", "--log-level", "warning",
            "--h11-max-incomplete-event-size", "262144"]
    with loopback_server(argv, f"http://127.0.0.1:{port}/api/data", env=env, cwd=cwd) as server:
        if warm:
            _load(port, headers, 1.0)
        logs = server.logs
        logs.seek(0, os.SEEK_END)
        logged = logs.tell()
        figures = _load(port, headers, duration)
        logs.seek(0, os.SEEK_END)
        figures["log bytes/req"] = (logs.tell() - logged) / max(figures["requests"], 1.0)
        return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per variant (default 5)")
    parser.add_argument("--baseline", metavar="REV", help="also run amas_otel as of this git revision")
    args = parser.parse_args()
    base = dict(os.environ, LOG_LEVEL="INFO", OTEL_TRACES_EXPORTER="none", OTEL_LOGS_EXPORTER="none",
                OTEL_METRICS_EXPORTER="prometheus", OTEL_SEMCONV_STABILITY_OPT_IN="http", AMAS_CONFIG_FILES="")
    flood = {"baggage": FLOOD}
    with tempfile.TemporaryDirectory() as scratch:
        trees = [("", str(REPO))]
        if args.baseline:
            trees.append((f" @{args.baseline}", f"{_baseline_tree(args.baseline, Path(scratch))}{os.pathsep}{REPO}"))

        def env(path: str, **extra: str) -> dict[str, str]:
            return {**base, "PYTHONPATH": path, "PROMETHEUS_PORT": str(free_port()), **extra}

        print(f"Baggage flood: examples/app.py GET /api/data, {CLIENTS} clients, {args.duration:g} s (after 1 s warm-up)")
        rows = [("bare", "", env(str(REPO), AMAS_EXAMPLE_INSTRUMENT="0", OTEL_SDK_DISABLED="true"))]
        rows += [(f"instrument_app{label}", label, env(path, AMAS_EXAMPLE_INSTRUMENT="1")) for label, path in trees]
        _table([(f"{name}{', 100 KB baggage' if h else ''}", _serve_and_load("examples.app:app", e, args.duration, h, True))
                for name, _, e in rows for h in ({}, flood)])

        sys.path.insert(0, str(REPO))
        from tests.support.health_servers import SilentServer

        black_hole = SilentServer()  # accepts connections on loopback and never sends a byte
        try:
            seconds = max(args.duration, 10.0)
            print(f"\nRedis black hole: bench/_redis_limited_app.py, {CLIENTS} clients, {seconds:g} s")
            limited = {"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_REDIS_URL": f"redis://127.0.0.1:{black_hole.port}/0",
                       "RATE_LIMIT_REQUESTS_PER_MINUTE": "6000000", "RATE_LIMIT_BURST_LIMIT": "100000"}
            _table([(f"Redis limiter{label}", _serve_and_load("bench._redis_limited_app:app", env(path, **limited), seconds, {}, False))
                    for label, path in trees])
        finally:
            black_hole.close()
    return 0


def _table(rows: list[tuple[str, dict[str, float]]]) -> None:
    print(f"  {'variant':<44} {'req/s':>9} {'requests':>9} {'non-2xx':>8} {'timeouts':>9} {'log B/req':>10}")
    for name, f in rows:
        print(f"  {name:<44} {f['req/s']:>9.1f} {f['requests']:>9.0f} {f['non-2xx']:>8.0f} {f['timeouts']:>9.0f} {f['log bytes/req']:>10.0f}")


if __name__ == "__main__":
    sys.exit(main())
