from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import python_env

CLI = str(Path(sys.executable).parent / "amas-otel")


def _cli(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, cwd=cwd, env=python_env(**env), timeout=60)


def test_help_everywhere() -> None:
    for args in ([], ["config"], ["project-root"], ["doctor"], ["collector"], ["collector", "build"], ["collector", "validate"], ["collector", "run"]):
        result = _cli(*args, "--help")
        assert result.returncode == 0 and "usage: amas-otel" in result.stdout, (args, result.stderr)


def test_config_shows_sources_and_masks_secrets(tmp_path: Path) -> None:
    config = tmp_path / "amas.yaml"
    config.write_text("logging:\n  format: console\n")
    result = _cli(
        "config", "--json",
        LOG_LEVEL="DEBUG",
        AMAS_CONFIG_FILES=str(config),
        OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer hunter2",
    )
    assert result.returncode == 0, result.stderr
    rows = {row["key"]: row for row in json.loads(result.stdout)}
    assert rows["logging.level"]["value"] == "DEBUG" and rows["logging.level"]["source"] == "env LOG_LEVEL"
    assert rows["logging.format"]["source"] == f"file {config}:2"
    assert rows["health.timeout"]["source"] == "default"
    assert "hunter2" not in result.stdout
    table = _cli("config", LOG_LEVEL="DEBUG")
    assert "logging.level" in table.stdout and "env LOG_LEVEL" in table.stdout


def test_config_error_exit_status(tmp_path: Path) -> None:
    result = _cli("config", LOG_FORMAT="xml")
    assert result.returncode == 2
    assert "LOG_FORMAT: invalid value 'xml'; expected one of json, console" in result.stderr


def test_project_root(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "cli-probe"\nversion = "3.1"\n')
    (tmp_path / "sub").mkdir()
    result = _cli("project-root", "-v", str(tmp_path / "sub"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == str(tmp_path)
    assert "service.name = cli-probe" in result.stdout
    missing = _cli("project-root", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def _doctor(collector_port: int, prometheus_port: int) -> subprocess.CompletedProcess[str]:
    return _cli(
        "doctor",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{collector_port}",
        OTEL_METRICS_EXPORTER="otlp,prometheus",
        PROMETHEUS_HOST="127.0.0.1",
        PROMETHEUS_PORT=str(prometheus_port),
    )


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_doctor_reports_unreachable_collector_and_taken_port() -> None:
    dead = _unused_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _doctor(dead, port)
    assert result.returncode == 1
    assert f"FAIL  collector at 127.0.0.1:{dead}" in result.stdout
    assert f"FAIL  Prometheus port 127.0.0.1:{port} is taken" in result.stdout
    assert "instrumentation fastapi: active" in result.stdout
    assert "instrumentation requests: active" in result.stdout


def test_doctor_all_good_with_a_listening_collector() -> None:
    with socket.socket() as collector:
        collector.bind(("127.0.0.1", 0))
        collector.listen()
        result = _doctor(collector.getsockname()[1], _unused_port())
    assert result.returncode == 0, result.stdout
    assert "is reachable" in result.stdout and "is free" in result.stdout


# --- troubleshooting: the guide's topics as commands ------------------------------------------

GUIDE_HEALTH_YAML = """\
# config/health.yaml, as the guide writes it
health:
  enabled: true
  interval: 30
  timeout: 5
  checks:
    - name: database
      type: database
      timeout: 5
    - name: redis
      type: cache
      timeout: 3
"""


def test_guide_health_yaml_is_refused_by_config_doctor_and_the_launcher(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "health.yaml").write_text(GUIDE_HEALTH_YAML)
    expected = f"{tmp_path / 'config' / 'health.yaml'}:7:health.checks[database]: give exactly one of dsn, connect for type database"
    for command in ("config", "doctor"):
        result = _cli(command, cwd=tmp_path, AMAS_CONFIG_DIR=str(tmp_path / "config"))
        assert result.returncode == 2, (command, result.stdout)
        assert expected in result.stderr and "health.checks[redis]: give exactly one of url, client" in result.stderr
    launched = subprocess.run(
        [str(Path(sys.executable).parent / "amas-otel-instrument"), sys.executable, "-c", "print('started')"],
        capture_output=True, text=True, cwd=tmp_path, env=python_env(AMAS_CONFIG_DIR=str(tmp_path / "config")), timeout=60,
    )
    assert launched.returncode == 2 and "started" not in launched.stdout
    assert expected in launched.stderr


def test_doctor_runs_the_configured_health_checks_once_within_their_timeouts(tmp_path: Path) -> None:
    from tests.support.health_servers import SilentServer

    silent = SilentServer()
    (tmp_path / "health.yaml").write_text(
        "health:\n  retries: 3\n  checks:\n"
        "    - {name: memory, type: memory, max_usage_percent: 100}\n"
        "    - {name: uploads, type: file_system, path: /nonexistent/uploads, critical: false}\n"
        f"    - {{name: slow_api, type: external_api, url: 'http://127.0.0.1:{silent.port}/', timeout: 0.5, critical: false}}\n"
    )
    env = {"AMAS_CONFIG_FILES": str(tmp_path / "health.yaml"), "PROMETHEUS_HOST": "127.0.0.1", "PROMETHEUS_PORT": str(_unused_port())}
    started = time.monotonic()
    result = _cli("doctor", cwd=tmp_path, **env)
    # One attempt each (no retries), bounded by the 0.5 s timeout, plus interpreter start-up.
    assert time.monotonic() - started < 15
    assert result.returncode == 0, result.stdout
    assert "ok    health check memory (memory, critical): healthy" in result.stdout
    assert "warn  health check uploads (file_system, not critical): unhealthy: /nonexistent/uploads does not exist" in result.stdout
    assert "warn  health check slow_api (external_api, not critical): unhealthy: no answer within 0.5s" in result.stdout
    assert len(silent.accepted) == 1

    (tmp_path / "health.yaml").write_text(
        "health:\n  checks:\n"
        f"    - {{name: broker, type: network, host: 127.0.0.1, port: {_unused_port()}, timeout: 1}}\n"
        "    - {name: fn, type: service, callable: 'no_such_module:check'}\n"
    )
    failing = _cli("doctor", cwd=tmp_path, **env)
    assert failing.returncode == 1
    assert "FAIL  health check configuration: " in failing.stdout and "health.checks[fn].callable: got 'no_such_module:check'; cannot import it" in failing.stdout
    (tmp_path / "health.yaml").write_text(
        f"health:\n  checks:\n    - {{name: broker, type: network, host: 127.0.0.1, port: {_unused_port()}, timeout: 1}}\n"
    )
    failing = _cli("doctor", cwd=tmp_path, **env)
    assert failing.returncode == 1
    assert "FAIL  health check broker (network, critical): unhealthy: ConnectionRefusedError" in failing.stdout


def test_doctor_lists_the_running_applications_circuit_breakers(tmp_path: Path) -> None:
    port = _unused_port()
    env = {"PROMETHEUS_HOST": "127.0.0.1", "PROMETHEUS_PORT": str(port), "OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
    app = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time\n"
            "from amas_otel.breaker import get_circuit_breaker_service\n"
            "service = get_circuit_breaker_service()\n"
            "service.get_breaker('external_api').call(lambda: 'ok')\n"
            "service.create_breaker('payments').force_open()\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n"
        )],
        cwd=tmp_path, env=python_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert app.stdout is not None
        while app.stdout.readline().strip() != "ready":  # its logs come first
            assert app.poll() is None, app.stderr.read() if app.stderr else ""
        result = _cli("doctor", cwd=tmp_path, **env)
    finally:
        app.kill()
        app.wait(10)
    assert result.returncode == 0, result.stdout
    assert f"ok    Prometheus port 127.0.0.1:{port} is in use by an application serving its metrics" in result.stdout
    assert "info  circuit breaker external_api: closed" in result.stdout
    assert "warn  circuit breaker payments: open" in result.stdout
    idle = _cli("doctor", cwd=tmp_path, **env)
    assert f"info  circuit breakers: no application answers at http://127.0.0.1:{port}/metrics" in idle.stdout


def test_config_shows_the_resource_and_where_each_value_came_from(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "payments"\nversion = "1.4.2"\n')
    git = tmp_path / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "refs" / "heads" / "main").write_text("0123456789abcdef0123456789abcdef01234567\n")
    rows = {r["key"]: r for r in json.loads(_cli("config", "--json", cwd=tmp_path, AMAS_CONFIG_FILES="").stdout)}
    assert rows["resource.service.name"] == {
        "key": "resource.service.name", "value": "payments", "source": f"{tmp_path / 'pyproject.toml'} [project].name", "env": "",
    }
    assert rows["resource.service.version"]["value"] == "1.4.2"
    assert rows["resource.vcs.ref.head.revision"]["value"] == "0123456789abcdef0123456789abcdef01234567"
    assert rows["resource.vcs.ref.head.revision"]["source"] == f"{git} HEAD"
    table = _cli("config", cwd=tmp_path, AMAS_CONFIG_FILES="", OTEL_SERVICE_NAME="api", OTEL_RESOURCE_ATTRIBUTES="service.version=9").stdout
    resource = table[table.index("resource (service identity"):]
    assert "resource.service.name" in resource and "api" in resource and "env OTEL_SERVICE_NAME" in resource
    assert "env OTEL_RESOURCE_ATTRIBUTES (resource attributes)" in resource


def test_doctor_reads_breaker_states_from_the_app_and_through_the_collector() -> None:
    """The gauge (unit 1) is amas_breaker_state on the app's endpoint, amas_breaker_state_ratio through the collector."""
    import http.server
    import threading

    from amas_otel.doctor import breaker_states

    def exposition(name: str) -> bytes:
        lines = [f"# TYPE {name} gauge"]
        for breaker, state, value in (("payments", "open", 1), ("payments", "closed", 0), ("search", "closed", 1)):
            lines.append(f'{name}{{amas_breaker_name="{breaker}",amas_breaker_state="{state}"}} {value}')
        return ("\n".join(lines) + "\n").encode()

    pages = {"/app": exposition("amas_breaker_state"), "/collector": exposition("amas_breaker_state_ratio")}

    class Metrics(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = pages[self.path]
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for path in pages:
            assert breaker_states(f"http://127.0.0.1:{server.server_port}{path}") == {"payments": "open", "search": "closed"}
    finally:
        server.shutdown()
        server.server_close()
