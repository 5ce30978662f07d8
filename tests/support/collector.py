"""The real amas-otelcol collector for end-to-end tests, running the shipped ``otel-collector.yaml``.

>>> with Collector(tmp_path, overlay={...}) as collector:   # free loopback ports through the config's variables
...     collector.otlp_http, collector.prometheus_url
...     collector.stop(); collector.start()

The binary is ``$AMAS_OTELCOL_BIN`` (``scripts/test`` builds it and sets it),
else the cached build of ``collector/builder-config.yaml``; missing is a test
failure, never a skip.  ``overlay`` is a second configuration merged over the
shipped one by the collector itself (``--config`` twice), e.g. an ``otlphttp``
exporter to a loopback receiver; the shipped file is used unchanged.
"""

from __future__ import annotations

import os
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from amas_otel.collector import cached_binary
from tests.conftest import REPO, free_port
from tests.support import terminate
from tests.support.prometheus import wait_ready

__all__ = ["SHIPPED", "Collector", "binary", "otlphttp_overlay"]

SHIPPED = REPO / "otel-collector.yaml"


def binary() -> str:
    """Path of the collector under test; AssertionError (a failure, not a skip) when there is none."""
    candidate = os.environ.get("AMAS_OTELCOL_BIN") or str(cached_binary(REPO / "collector" / "builder-config.yaml"))
    if not os.access(candidate, os.X_OK):
        raise AssertionError(
            f"no collector at {candidate!r}; run ./scripts/test (it builds amas-otelcol) or "
            "`amas-otel collector build` and export AMAS_OTELCOL_BIN"
        )
    return candidate


def otlphttp_overlay(endpoint: str, *signals: str) -> dict[str, Any]:
    """Overlay that also sends ``signals`` on to an OTLP/HTTP receiver at ``endpoint``."""
    return {
        "exporters": {"otlphttp/test": {"endpoint": endpoint}},
        "service": {"pipelines": {s: {"exporters": ["debug", "otlphttp/test"]} for s in signals}},
    }


class Collector:
    def __init__(self, tmp_path: Path, *, overlay: dict[str, Any] | None = None, **env: str) -> None:
        self.base_env = {k: v for k, v in {**os.environ, **env}.items() if k != "AMAS_COLLECTOR_HOST"}
        self._pick_ports()
        self.configs = [SHIPPED]
        if overlay:
            self.configs.append(tmp_path / "collector-overlay.yaml")
            self.configs[-1].write_text(yaml.safe_dump(overlay))
        self.log_path = tmp_path / f"collector-{self.ports['HEALTH']}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def _pick_ports(self) -> None:
        self.ports = {name: free_port() for name in ("OTLP_GRPC", "OTLP_HTTP", "PROMETHEUS", "HEALTH", "TELEMETRY")}
        self.env = {**self.base_env, **{f"AMAS_COLLECTOR_{k}_PORT": str(v) for k, v in self.ports.items()}}

    otlp_http = property(lambda self: f"http://127.0.0.1:{self.ports['OTLP_HTTP']}")
    otlp_grpc = property(lambda self: f"http://127.0.0.1:{self.ports['OTLP_GRPC']}")
    prometheus_target = property(lambda self: f"127.0.0.1:{self.ports['PROMETHEUS']}")
    telemetry_url = property(lambda self: f"http://127.0.0.1:{self.ports['TELEMETRY']}/metrics")

    def start(self, timeout: float = 30.0) -> Collector:
        """Start the collector and wait until its health check answers 200."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [binary(), *(f"--config={c}" for c in self.configs)], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_ready(f"http://127.0.0.1:{self.ports['HEALTH']}/", self.process, self.log, "collector", timeout)
        except AssertionError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM (the collector flushes and shuts down), SIGKILL after 15 s."""
        if self.process is not None:
            terminate(self.process, 15)

    def scrape(self, url: str | None = None) -> str:
        """The exporter's ``/metrics`` text (or another URL's)."""
        with urllib.request.urlopen(url or f"http://{self.prometheus_target}/metrics", timeout=5) as response:
            return response.read().decode()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Collector:
        """Start on the chosen ports; if another process took one of them meanwhile, on fresh ones (3 tries)."""
        for attempt in range(3):
            try:
                return self.start()
            except AssertionError as exc:
                if "address already in use" not in str(exc) or attempt == 2:
                    raise
                self._pick_ports()
        raise AssertionError("unreachable")

    def __exit__(self, *exc: object) -> None:
        self.stop()
