"""A real Prometheus server for end-to-end tests.

>>> server = start(["127.0.0.1:9464"], tmp_path)     # scrapes every second
>>> server.wait_for('amas_breaker_state{amas_breaker_state="open"} == 1')
>>> server.stop()
>>> launch(config_path, tmp_path)                    # a configuration of your own

The binary comes from ``$PROMETHEUS_BIN`` (``scripts/test`` sets it); a
missing binary is a test failure, never a skip.  Storage and config live in
``tmp_path``; the server listens on a free loopback port.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = ["PrometheusServer", "binary", "launch", "start", "wait_ready"]

_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "prometheus" / "usr" / "bin"


def binary(name: str) -> str:
    """Path of ``prometheus`` or ``promtool``: ``$PROMETHEUS_BIN`` / ``$PROMTOOL_BIN``, else the copy
    ``scripts/test`` unpacks into ``.cache/``.  Missing is a test failure, never a skip."""
    candidate = os.environ.get(f"{name.upper()}_BIN") or str(_CACHE / name)
    if not os.access(candidate, os.X_OK):
        raise AssertionError(
            f"{name} not found at {candidate!r}; run ./scripts/test (it unpacks Debian's prometheus package) "
            f"or export {name.upper()}_BIN"
        )
    return candidate


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrometheusServer:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
        self.process = process
        self.url = url
        self.log_path = log_path

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; returns the ``data.result`` vector."""
        address = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(address, timeout=5) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise AssertionError(f"query {promql!r} failed: {body}")
        return body["data"]["result"]

    def wait_for(self, promql: str, *, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Poll ``promql`` until it returns a non-empty vector (AssertionError after ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(promql)
            if result:
                return result
            time.sleep(0.25)
        raise AssertionError(f"{promql!r} still empty after {timeout}s; server log:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(scrape_targets: Iterable[str], tmp_path: Path, *, metrics_path: str = "/metrics") -> PrometheusServer:
    """Start Prometheus scraping ``host:port`` targets every second; waits until it is ready."""
    targets = ", ".join(json.dumps(t) for t in scrape_targets)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: amas\n"
        f"    metrics_path: {json.dumps(metrics_path)}\n"
        f"    static_configs:\n      - targets: [{targets}]\n"
    )
    return launch(config, tmp_path)


def launch(config: Path, tmp_path: Path) -> PrometheusServer:
    """Start Prometheus with the configuration file ``config``; waits until it is ready."""
    prometheus = binary("prometheus")
    port = _free_port()
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = PrometheusServer(process, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_ready(f"{server.url}/-/ready", process, server.log, "prometheus")
    except AssertionError:
        server.stop()
        raise
    return server


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Callable[[], str], name: str, timeout: float = 30) -> None:
    """Wait until ``url`` answers 200; AssertionError with the log's tail when ``process`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{name} exited with {process.returncode}:\n{log()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{name} not ready after {timeout}s:\n{log()[-4000:]}")
