from __future__ import annotations

import json
import socket
import subprocess
import sys
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
