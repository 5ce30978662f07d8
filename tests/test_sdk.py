"""configure(), exporters, resource detection, fork and bounded shutdown — each in a child process,
since OpenTelemetry's global providers can be set once per process."""

from __future__ import annotations

import socket
import subprocess
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import PYTHON, free_port, python_env
from tests.support.health_servers import SilentServer
from tests.support.otlp import OtlpReceiver, attributes


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    (root / ".git" / "refs" / "heads").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / ".git" / "refs" / "heads" / "main").write_text("0123456789abcdef0123456789abcdef01234567\n")
    (root / "pyproject.toml").write_text('[project]\nname = "shop-api"\nversion = "1.2.3"\n')
    return root


def _run(code: str, cwd: Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PROMETHEUS_ENABLED": "false", "AMAS_CONFIG_FILES": ""}
    return subprocess.run(
        [PYTHON, "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=python_env(**{**base, **env}),
    )


def test_spans_reach_otlp_with_detected_resource(tmp_path: Path, otlp_receiver: OtlpReceiver) -> None:
    root = _project(tmp_path)
    result = _run(
        """
        import asyncio, amas_otel
        amas_otel.configure()
        @amas_otel.traced
        def ok(): return 1
        @amas_otel.traced("failing op")
        async def bad(): raise ValueError("boom")
        ok()
        try:
            asyncio.run(bad())
        except ValueError:
            print("reraised")
        """,
        root,
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test",
    )
    assert result.returncode == 0, result.stderr
    assert "reraised" in result.stdout
    spans = {span.name: span for span in otlp_receiver.spans()}
    assert set(spans) == {"ok", "failing op"}
    failing = spans["failing op"]
    assert failing.status.code == 2  # STATUS_CODE_ERROR
    assert "boom" in failing.status.message
    assert [event.name for event in failing.events] == ["exception"]
    assert attributes(failing.attributes)["error.type"] == "ValueError"
    resource = otlp_receiver.resource_attributes()
    assert resource["service.name"] == "shop-api"
    assert resource["service.version"] == "1.2.3"
    assert resource["vcs.ref.head.revision"] == "0123456789abcdef0123456789abcdef01234567"
    assert resource["vcs.ref.head.name"] == "main"
    assert resource["deployment.environment"] == "test"
    assert resource["amas.project.root"] == str(root)
    assert {"host.name", "process.pid", "telemetry.sdk.version"} <= set(resource)


def test_service_name_precedence(tmp_path: Path, otlp_receiver: OtlpReceiver) -> None:
    root = _project(tmp_path)
    code = """
        import amas_otel
        amas_otel.configure(service_name=ARG)
        with amas_otel.get_tracer().start_as_current_span("s"): pass
    """
    result = _run(code.replace("ARG", "None"), root, OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint, OTEL_SERVICE_NAME="from-env")
    assert result.returncode == 0, result.stderr
    assert otlp_receiver.resource_attributes()["service.name"] == "from-env"
    otlp_receiver.requests.clear()
    result = _run(code.replace("ARG", "'from-arg'"), root, OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint, OTEL_SERVICE_NAME="from-env")
    assert result.returncode == 0, result.stderr
    assert otlp_receiver.resource_attributes()["service.name"] == "from-arg"


def test_configure_is_idempotent_and_thread_safe(tmp_path: Path) -> None:
    result = _run(
        """
        import threading, amas_otel
        from opentelemetry import trace
        results = []
        threads = [threading.Thread(target=lambda: results.append(amas_otel.configure())) for _ in range(16)]
        [t.start() for t in threads]; [t.join() for t in threads]
        assert len({id(r) for r in results}) == 1, "one settings object"
        provider = trace.get_tracer_provider()
        amas_otel.configure()
        assert trace.get_tracer_provider() is provider
        try:
            amas_otel.configure(overrides={"logging": {"level": "DEBUG"}})
        except RuntimeError as exc:
            print("refused:", exc)
        """,
        _project(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "refused: amas_otel is already configured with other settings" in result.stdout
    assert "Overriding of current" not in result.stderr


@pytest.mark.parametrize(
    ("setting", "value", "error"),
    [
        ("HEALTH_CHECK_TIMEOUT", "-1", "error: HEALTH_CHECK_TIMEOUT: invalid value '-1'"),
        # Found by the redaction hook, after the providers exist: they must not become global.
        ("LOG_REDACT_PATTERNS", "password,([unclosed", "([unclosed"),
    ],
)
def test_bad_configuration_changes_nothing(tmp_path: Path, setting: str, value: str, error: str) -> None:
    port = free_port()
    result = _run(
        """
        import amas_otel
        from opentelemetry import trace
        try:
            amas_otel.configure()
        except amas_otel.ConfigError as exc:
            print("error:", exc)
        from amas_otel.sdk import is_configured
        print("configured:", is_configured(), type(trace.get_tracer_provider()).__name__)
        import psutil
        # No Prometheus endpoint left open by this process (asking the process, not binding the port,
        # which another test's server may have taken since free_port() chose it).
        listening = [c for c in psutil.Process().net_connections("tcp") if c.status == psutil.CONN_LISTEN]
        if not any(c.laddr.port == PORT for c in listening):
            print("port free")
        """.replace("PORT", str(port)),
        _project(tmp_path),
        PROMETHEUS_ENABLED="true",
        PROMETHEUS_HOST="127.0.0.1",
        PROMETHEUS_PORT=str(port),
        **{setting: value},
    )
    assert result.returncode == 0, result.stderr
    assert error in result.stdout
    assert "configured: False ProxyTracerProvider" in result.stdout
    assert "port free" in result.stdout


def test_sdk_disabled_sets_no_providers(tmp_path: Path, otlp_receiver: OtlpReceiver) -> None:
    result = _run(
        """
        import amas_otel
        from opentelemetry import trace
        amas_otel.configure()
        with amas_otel.get_tracer().start_as_current_span("nothing"): pass
        print(type(trace.get_tracer_provider()).__name__)
        """,
        _project(tmp_path),
        OTEL_SDK_DISABLED="true",
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
    )
    assert result.returncode == 0, result.stderr
    assert "ProxyTracerProvider" in result.stdout
    assert otlp_receiver.spans() == []


def test_prometheus_endpoint_serves_on_configured_path(tmp_path: Path) -> None:
    port = free_port()
    script = tmp_path / "serve.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, time, amas_otel
            amas_otel.configure()
            amas_otel.get_meter().create_counter("amas.demo.ticks", unit="{tick}").add(3)
            print("ready", flush=True)
            sys.stdin.read()
            """
        )
    )
    env = python_env(PROMETHEUS_PORT=str(port), PROMETHEUS_METRICS_PATH="/prom", PROMETHEUS_HOST="127.0.0.1", AMAS_CONFIG_FILES="")
    child = subprocess.Popen([PYTHON, str(script)], cwd=_project(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "ready"
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/prom", timeout=5).read().decode()
        assert "amas_demo_ticks_total" in body and 'service_name="shop-api"' in body
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert caught.value.code == 404
    finally:
        child.communicate("", timeout=10)


def test_prometheus_port_in_use_warns_and_carries_on(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run(
            """
            import amas_otel
            amas_otel.configure()
            with amas_otel.get_tracer().start_as_current_span("still works"): pass
            amas_otel.get_meter().create_counter("c").add(1)
            print("app ran")
            """,
            _project(tmp_path),
            PROMETHEUS_ENABLED="true",
            PROMETHEUS_HOST="127.0.0.1",
            PROMETHEUS_PORT=str(port),
        )
    assert result.returncode == 0, result.stderr
    assert "app ran" in result.stdout
    assert f"cannot serve Prometheus metrics on 127.0.0.1:{port}" in result.stderr


@pytest.mark.parametrize("collector", ["refusing", "hanging"])
def test_exit_is_bounded_when_the_collector_is_unreachable(tmp_path: Path, collector: str) -> None:
    hole = SilentServer() if collector == "hanging" else None
    port = hole.port if hole else free_port()
    try:
        result = _run(
            """
            import time, logging, amas_otel
            amas_otel.configure()
            tracer = amas_otel.get_tracer()
            for i in range(200):
                with tracer.start_as_current_span(f"s{i}"): pass
            amas_otel.get_logger("t").info("bye")
            print(f"exit-at {time.monotonic()}", flush=True)
            """,
            _project(tmp_path),
            timeout=30,
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
            AMAS_OTLP_TIMEOUT_SECONDS="10",
        )
        ended = time.monotonic()
    finally:
        if hole:
            hole.close()
    assert result.returncode == 0, result.stderr
    started_exit = float(result.stdout.split("exit-at ")[1].split()[0])
    # The stock SDK retries an export until its 10 s timeout; amas_otel's flush gets
    # AMAS_SHUTDOWN_TIMEOUT_SECONDS (1 s), so exit takes at most 2 s extra whatever the exporter does.
    assert ended - started_exit < 2.0, f"exit took {ended - started_exit:.2f}s"
    assert "Traceback" not in result.stderr


def test_signals_flow_from_forked_workers(tmp_path: Path, otlp_receiver: OtlpReceiver) -> None:
    result = _run(
        """
        import os, amas_otel
        from opentelemetry import trace
        amas_otel.configure()
        with amas_otel.get_tracer().start_as_current_span("in parent"): pass
        children = []
        for n in range(2):
            pid = os.fork()
            if pid == 0:
                with amas_otel.get_tracer().start_as_current_span(f"in worker {n}"): pass
                trace.get_tracer_provider().force_flush(5000)
                os._exit(0)
            children.append(pid)
        for pid in children:
            os.waitpid(pid, 0)
        """,
        _project(tmp_path),
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
    )
    assert result.returncode == 0, result.stderr
    assert otlp_receiver.wait_for(lambda: {"in worker 0", "in worker 1", "in parent"} <= {s.name for s in otlp_receiver.spans()})


def test_cardinality_limit_applies_to_every_instrument(tmp_path: Path) -> None:
    result = _run(
        """
        import amas_otel
        from prometheus_client import REGISTRY, generate_latest
        amas_otel.configure()
        counter = amas_otel.get_meter().create_counter("amas.demo.hits", unit="{hit}")
        for i in range(40):
            counter.add(1, {"user": f"u{i}"})
        text = generate_latest(REGISTRY).decode()
        lines = [l for l in text.splitlines() if l.startswith("amas_demo_hits_total")]
        print("series", len(lines), "overflow", sum('otel_metric_overflow="true"' in l for l in lines))
        """,
        _project(tmp_path),
        PROMETHEUS_ENABLED="true",
        PROMETHEUS_PORT="0",
        METRICS_CARDINALITY_LIMIT="10",
    )
    assert result.returncode == 0, result.stderr
    # The SDK keeps `limit` attribute sets and folds the other 30 into one overflow series.
    assert "series 11 overflow 1" in result.stdout


def test_grpc_protocol_uses_the_grpc_exporters(tmp_path: Path) -> None:
    result = _run(
        """
        import amas_otel
        from amas_otel import sdk
        amas_otel.configure()
        processors = sdk._state.tracer_provider._active_span_processor._span_processors
        exporters = [type(p.span_exporter).__module__ for p in processors if hasattr(p, "span_exporter")]
        print(exporters)
        """,
        _project(tmp_path),
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4317",
        AMAS_SHUTDOWN_TIMEOUT_SECONDS="0.2",
    )
    assert result.returncode == 0, result.stderr
    assert "opentelemetry.exporter.otlp.proto.grpc.trace_exporter" in result.stdout

