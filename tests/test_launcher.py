"""amas-otel-instrument and the stock opentelemetry-instrument picking amas_otel up, on a real uvicorn server."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import free_port, python_env
from tests.support.otlp import OtlpReceiver, attributes

BIN = Path(sys.executable).parent


def _app(tmp_path: Path) -> Path:
    root = tmp_path / "svc"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "launched-svc"\nversion = "0.9.0"\n')
    (root / "svcapp.py").write_text(
        textwrap.dedent(
            """
            import requests
            from fastapi import FastAPI
            app = FastAPI()

            @app.get("/items/{item_id}")
            def item(item_id: int):
                return {"id": item_id}

            @app.get("/outbound")
            def outbound(port: int):
                return {"status": requests.get(f"http://127.0.0.1:{port}/items/7", timeout=5).status_code}
            """
        )
    )
    return root


@contextmanager
def _serve(command: list[str], cwd: Path, port: int, **env: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        command, cwd=cwd, env=python_env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/items/0", timeout=1)
                break
            except OSError:
                if process.poll() is not None:
                    raise AssertionError(process.stdout.read())
                time.sleep(0.1)
        else:
            raise AssertionError("server did not start")
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


def _uvicorn(port: int) -> list[str]:
    return [str(BIN / "uvicorn"), "svcapp:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]


def test_amas_otel_instrument_runs_fastapi_and_requests_instrumented(tmp_path: Path, otlp_receiver: OtlpReceiver) -> None:
    port, prom = free_port(), free_port()
    root = _app(tmp_path)
    with _serve(
        [str(BIN / "amas-otel-instrument"), *_uvicorn(port)],
        root,
        port,
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
        OTEL_METRICS_EXPORTER="prometheus",
        PROMETHEUS_HOST="127.0.0.1",
        PROMETHEUS_PORT=str(prom),
        AMAS_CONFIG_FILES="",
    ):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/outbound?port={port}", timeout=10).read()
        scrape = urllib.request.urlopen(f"http://127.0.0.1:{prom}/metrics", timeout=5).read().decode()
        assert otlp_receiver.wait_for(lambda: len(otlp_receiver.spans()) >= 3)
    spans = otlp_receiver.spans()
    server = [s for s in spans if s.kind == 2]  # SPAN_KIND_SERVER
    client = [s for s in spans if s.kind == 3]  # SPAN_KIND_CLIENT
    routes = {attributes(s.attributes).get("http.route") for s in server}
    assert {"/outbound", "/items/{item_id}"} <= routes
    assert client and attributes(client[0].attributes)["http.request.method"] == "GET"
    # The outgoing call carried the trace: the inner server span is a child of the client span.
    inner = [s for s in server if s.parent_span_id == client[0].span_id]
    assert len(inner) == 1 and inner[0].trace_id == client[0].trace_id
    assert attributes(inner[0].attributes)["http.route"] == "/items/{item_id}"
    # Lean defaults: no per-message receive/send spans.
    assert not [s for s in spans if s.name.endswith((" http send", " http receive"))]
    assert otlp_receiver.resource_attributes()["service.name"] == "launched-svc"
    assert 'http_server_request_duration_seconds_bucket' in scrape and 'http_route="/items/{item_id}"' in scrape


def test_stock_opentelemetry_instrument_uses_the_amas_distro(tmp_path: Path, otlp_receiver: OtlpReceiver) -> None:
    port = free_port()
    with _serve(
        [str(BIN / "opentelemetry-instrument"), *_uvicorn(port)],
        _app(tmp_path),
        port,
        OTEL_PYTHON_DISTRO="amas_otel",
        OTEL_PYTHON_CONFIGURATOR="amas_otel",
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
        PROMETHEUS_ENABLED="false",
        AMAS_CONFIG_FILES="",
    ):
        assert otlp_receiver.wait_for(lambda: len(otlp_receiver.spans()) >= 1)
    resource = otlp_receiver.resource_attributes()
    assert resource["service.name"] == "launched-svc"
    assert resource["amas.project.root"].endswith("svc")


def test_launcher_refuses_bad_configuration(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "amas-otel-instrument"), sys.executable, "-c", "print('started')"],
        capture_output=True,
        text=True,
        env=python_env(CIRCUIT_BREAKER_FAILURE_THRESHOLD="many"),
        timeout=60,
    )
    assert result.returncode == 2
    assert "started" not in result.stdout
    assert "CIRCUIT_BREAKER_FAILURE_THRESHOLD: invalid value 'many'; expected an integer" in result.stderr


@pytest.mark.parametrize(("args", "code", "text"), [([], 2, "usage:"), (["--help"], 0, "usage:"), (["no-such-cmd-xyz"], 127, "not found")])
def test_launcher_usage(args: list[str], code: int, text: str) -> None:
    result = subprocess.run([str(BIN / "amas-otel-instrument"), *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == code
    assert text in result.stdout + result.stderr


def test_launcher_runs_plain_python_programs(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "amas-otel-instrument"), shutil.which("python3") and sys.executable, "-c",
         "from amas_otel.sdk import is_configured; print('configured', is_configured())"],
        capture_output=True,
        text=True,
        cwd=_app(tmp_path),
        env=python_env(PROMETHEUS_ENABLED="false", AMAS_CONFIG_FILES=""),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "configured True" in result.stdout
