"""amas_otel.collector and otel-collector.yaml with the real amas-otelcol binary: build, validate, run,
and agreement with the app's defaults and redaction key rule."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from amas_otel._redaction_keys import SENSITIVE_KEYS, blocked_key_patterns, is_sensitive_key
from amas_otel.collector import CollectorUnavailable, Problem, cached_binary, run_collector, validate_config
from amas_otel.config import load_settings
from tests.conftest import PYTHON, REPO, python_env
from tests.support.collector import Collector, binary

SHIPPED = REPO / "otel-collector.yaml"
DEFAULTS = load_settings(environ={}, config_files=[])


@pytest.fixture(scope="module")
def otelcol() -> str:
    return binary()


def _broken(tmp_path: Path, old: str, new: str) -> tuple[Path, str]:
    """A copy of the shipped configuration with ``old`` replaced by ``new``."""
    text = SHIPPED.read_text()
    assert old in text, old
    path = tmp_path / "otel-collector.yaml"
    path.write_text(text.replace(old, new, 1))
    return path, text.replace(old, new, 1)


def _one(problems: list[Problem], pattern: str) -> Problem:
    found = [p for p in problems if re.search(pattern, p.message)]
    assert len(found) == 1, f"expected one problem matching {pattern!r}, got {[str(p) for p in problems]}"
    return found[0]


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# --- the shipped configuration ------------------------------------------------------------


def test_shipped_config_passes_the_collectors_own_validate_and_amas_checks(otelcol: str) -> None:
    assert validate_config(SHIPPED, settings=DEFAULTS, binary=otelcol) == []


def test_shipped_config_validates_clean_when_the_app_uses_grpc(otelcol: str) -> None:
    grpc = load_settings(environ={"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, config_files=[])
    assert validate_config(SHIPPED, settings=grpc, binary=otelcol) == []


def test_shipped_config_ports_and_protocols_agree_with_amas_otel_defaults() -> None:
    """The collector's OTLP listeners are where the app's default exporters send, per protocol."""
    doc = yaml.safe_load(SHIPPED.read_text())
    protocols = doc["receivers"]["otlp"]["protocols"]
    for app_protocol, receiver_protocol in (("http/protobuf", "http"), ("grpc", "grpc")):
        otel = load_settings(environ={"OTEL_EXPORTER_OTLP_PROTOCOL": app_protocol}, config_files=[]).otel
        app = urllib.parse.urlsplit(otel.otlp_signal_endpoint("metrics"))
        endpoint = protocols[receiver_protocol]["endpoint"]
        variable = f"AMAS_COLLECTOR_OTLP_{receiver_protocol.upper()}_PORT"
        assert endpoint == f"${{env:AMAS_COLLECTOR_HOST:-127.0.0.1}}:${{env:{variable}:-{app.port}}}", app_protocol
        assert app.hostname == "127.0.0.1"
    assert DEFAULTS.otel.otlp_protocol == "http/protobuf"
    # Prometheus scrapes the collector's exporter and, without a collector, the app's own endpoint.
    scrape = yaml.safe_load((REPO / "collector" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    exporter = doc["exporters"]["prometheus"]["endpoint"]
    assert exporter == "${env:AMAS_COLLECTOR_HOST:-127.0.0.1}:${env:AMAS_COLLECTOR_PROMETHEUS_PORT:-8889}"
    assert jobs["otel-collector"]["static_configs"][0]["targets"] == ["127.0.0.1:8889"]
    assert jobs["amas-app"]["static_configs"][0]["targets"] == [f"127.0.0.1:{DEFAULTS.metrics.prometheus_port}"]
    assert jobs["amas-app"]["metrics_path"] == DEFAULTS.metrics.prometheus_path


def test_shipped_config_has_every_signal_pipeline_and_required_components() -> None:
    doc = yaml.safe_load(SHIPPED.read_text())
    assert set(doc["service"]["pipelines"]) == {"traces", "metrics", "logs"}
    for pipeline in doc["service"]["pipelines"].values():
        assert pipeline["receivers"] == ["otlp"]
        assert pipeline["processors"] == ["memory_limiter", "redaction", "batch"]
    assert "prometheus" in doc["service"]["pipelines"]["metrics"]["exporters"]
    assert doc["service"]["extensions"] == ["health_check"]


def test_shipped_redaction_uses_the_same_key_rule_as_the_app() -> None:
    doc = yaml.safe_load(SHIPPED.read_text())
    redaction = doc["processors"]["redaction"]
    assert redaction["allow_all_keys"] is True
    assert tuple(redaction["blocked_key_patterns"]) == blocked_key_patterns(), (
        "regenerate the list with: python -m amas_otel._redaction_keys"
    )


# --- the key rule: Python and the collector's regexes agree -------------------------------

SECRET_KEYS = [
    "password", "user.password", "X-API-Key", "apiKey", "API_KEY", "api-key", "access_token", "Set-Cookie",
    "http.request.header.authorization", "session.id", "sessionId", "private_key", "creditCardNumber", "db.passwd",
    "myPASSWORD", "passWord", "client_secret", "SSN", "credentials", "x-amz-access-key",
]
PLAIN_KEYS = [
    "classname", "input_tokens", "tokenizer", "amas.auth.outcome", "mypassword", "PASSWORDX", "ssn2", "http.route",
    "amas.breaker.name", "service.name", "passport", "cookies_enabled_count", "keyword",
]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_sensitive_keys_match_in_python_and_in_the_collector_patterns(key: str) -> None:
    assert is_sensitive_key(key)
    assert any(re.search(p, key) for p in blocked_key_patterns())


@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_ordinary_keys_match_neither(key: str) -> None:
    assert not is_sensitive_key(key)
    assert not any(re.search(p, key) for p in blocked_key_patterns())


_PIECES = st.one_of(
    st.sampled_from([k.replace("_", "").replace("-", "") for k in SENSITIVE_KEYS] + ["x", "my", "id", "a", "9"]),
    st.sampled_from([".", "_", "-", " ", "/", "é", ""]),
    st.text(alphabet="aAsSkKeEyYnN0", max_size=3),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_PIECES, st.sampled_from(["keep", "upper", "title"])), max_size=6).map(
    lambda parts: "".join({"keep": p, "upper": p.upper(), "title": p.title()}[case] for p, case in parts)
))
def test_python_rule_and_collector_patterns_agree_on_any_key(key: str) -> None:
    assert is_sensitive_key(key) == any(re.search(p, key) for p in blocked_key_patterns()), key


# --- what the real collector says about broken copies ----------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        # Go's RE2 has no lookahead: the redaction processor refuses to start with it.
        ("'eyJ[A-Za-z0-9_-]{8,}", "'(?=eyJ)eyJ[A-Za-z0-9_-]{8,}", r"invalid or unsupported Perl syntax: `\(\?=`"),
        ("  debug:\n    verbosity: basic", "  debugg:\n    verbosity: basic", r"unknown type: \"debugg\""),
        ("  debug:\n    verbosity: basic", "  logging:\n    verbosity: basic", r"use the debug exporter instead"),
        ("    timeout: 1s", "    timeoutt: 1s", r"invalid keys: timeoutt"),
        ("send_batch_max_size: 16384", "send_batch_max_size: 100", r"send_batch_max_size must be greater"),
    ],
    ids=["re2-lookahead", "unknown-type", "removed-logging", "unknown-setting", "batch-sizes"],
)
def test_broken_copy_gets_the_real_collectors_error(otelcol: str, tmp_path: Path, old: str, new: str, message: str) -> None:
    path, _ = _broken(tmp_path, old, new)
    problem = _one(validate_config(path, settings=DEFAULTS, binary=otelcol), message)
    assert problem.message.startswith(f"{Path(otelcol).name} validate (exit 1): ")


def test_redaction_key_list_must_be_the_apps(otelcol: str, tmp_path: Path) -> None:
    first = blocked_key_patterns()[0]
    path, text = _broken(tmp_path, f"      - '{first}'\n", "")
    problem = _one(validate_config(path, settings=DEFAULTS, binary=otelcol), "is not the key list of")
    assert problem.line == _line_of(text, "  redaction:")
    assert "python -m amas_otel._redaction_keys" in problem.message


def test_every_pipeline_must_redact(otelcol: str, tmp_path: Path) -> None:
    path, text = _broken(tmp_path, "processors: [memory_limiter, redaction, batch]\n      exporters: [debug]\n    metrics",
                         "processors: [memory_limiter, batch]\n      exporters: [debug]\n    metrics")
    problem = _one(validate_config(path, settings=DEFAULTS, binary=otelcol), "traces has no redaction processor")
    assert problem.line == _line_of(text, "    traces:")


def test_receiver_port_moved_by_its_variable_no_longer_agrees_with_the_app(
    otelcol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMAS_COLLECTOR_OTLP_HTTP_PORT", "5318")
    problem = _one(validate_config(SHIPPED, settings=DEFAULTS, binary=otelcol), "listens on port 5318")
    assert "the app sends OTLP over http/protobuf to 127.0.0.1:4318" in problem.message
    moved = load_settings(environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:5318"}, config_files=[])
    assert validate_config(SHIPPED, settings=moved, binary=otelcol) == []


def test_app_on_grpc_needs_a_grpc_receiver(otelcol: str, tmp_path: Path) -> None:
    grpc_receiver = "      grpc:\n        endpoint: ${env:AMAS_COLLECTOR_HOST:-127.0.0.1}:${env:AMAS_COLLECTOR_OTLP_GRPC_PORT:-4317}\n"
    path, _ = _broken(tmp_path, grpc_receiver, "")
    grpc = load_settings(environ={"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, config_files=[])
    _one(validate_config(path, settings=grpc, binary=otelcol), "no otlp receiver enables protocols.grpc")
    assert validate_config(path, settings=DEFAULTS, binary=otelcol) == []


def test_every_signal_needs_a_pipeline_from_the_apps_receiver(otelcol: str, tmp_path: Path) -> None:
    text = SHIPPED.read_text()
    logs = text[text.index("    logs:\n      receivers: [otlp]"):]
    path, broken = _broken(tmp_path, logs, "")
    problem = _one(validate_config(path, settings=DEFAULTS, binary=otelcol), "no logs pipeline receives from otlp")
    assert problem.line == _line_of(broken, "  pipelines:")


def test_receiver_on_another_interface_than_the_app_targets(otelcol: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMAS_COLLECTOR_HOST", "127.0.0.1")
    assert validate_config(SHIPPED, settings=DEFAULTS, binary=otelcol) == []
    monkeypatch.setenv("AMAS_COLLECTOR_HOST", "0.0.0.0")
    assert validate_config(SHIPPED, settings=DEFAULTS, binary=otelcol) == []
    monkeypatch.setenv("AMAS_COLLECTOR_HOST", "localhostx")
    _one(validate_config(SHIPPED, settings=DEFAULTS, binary=otelcol), "listens on localhostx, not on loopback")


# --- build and run -------------------------------------------------------------------------------


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = python_env(**env)
    for name in [n for n in environ if n.startswith("OTEL_") or n == "AMAS_COLLECTOR_HOST"]:
        del environ[name]
    return subprocess.run([PYTHON, "-m", "amas_otel.collector", *args], check=False, cwd=REPO, env=environ,
                          capture_output=True, text=True, timeout=120)


def _no_go(tmp_path: Path) -> dict[str, str]:
    """An environment with no collector anywhere and no Go on PATH."""
    assert not (Path("/usr/bin") / "go").exists() and not (Path("/bin") / "go").exists()
    return {"PATH": "/usr/bin:/bin", "AMAS_OTELCOL_BIN": "", "AMAS_CACHE": str(tmp_path / "cache")}


def test_cli_build_reuses_the_cached_binary_in_seconds(otelcol: str) -> None:
    started = time.monotonic()
    done = _cli("build")
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(cached_binary(REPO / "collector" / "builder-config.yaml"))
    assert os.access(done.stdout.strip(), os.X_OK)
    assert took < 10, f"a cached build took {took:.1f}s"


def test_cached_binary_is_keyed_by_the_manifests_content(tmp_path: Path) -> None:
    manifest = tmp_path / "collector" / "builder-config.yaml"
    manifest.parent.mkdir()
    original = (REPO / "collector" / "builder-config.yaml").read_text()
    manifest.write_text(original)
    first = cached_binary(manifest)
    assert first.parent.parent == tmp_path / ".cache" / "collector" and first.name == "amas-otelcol"
    manifest.write_text(original.replace("description: ", "description: changed "))
    assert cached_binary(manifest) != first


def test_cli_without_go_or_binary_says_what_to_install(tmp_path: Path) -> None:
    for command in (["build"], ["validate"], ["run", str(SHIPPED)]):
        done = _cli(*command, **_no_go(tmp_path))
        assert done.returncode == 127, (command, done.stdout, done.stderr)
        assert "Go is not installed" in done.stderr and "AMAS_OTELCOL_BIN" in done.stderr, command
        assert "OK" not in done.stdout


def test_cli_validate_default_file_ok(otelcol: str) -> None:
    done = _cli("validate", AMAS_OTELCOL_BIN=otelcol)
    assert done.returncode == 0, done.stderr
    assert f"otel-collector.yaml: OK ({Path(otelcol).name} validate, redaction keys, app OTLP settings)" in done.stdout


def test_cli_validate_broken_copy_prints_the_collectors_error(otelcol: str, tmp_path: Path) -> None:
    path, _ = _broken(tmp_path, "exporters: [prometheus, debug]", "exporters: [prometheus, nope]")
    done = _cli("validate", str(path), AMAS_OTELCOL_BIN=otelcol)
    assert done.returncode == 1
    assert f'{path}: {Path(otelcol).name} validate (exit 1): Error: service::pipelines::metrics: references exporter "nope"' in done.stderr


def _fake_collector(tmp_path: Path, exit_code: int) -> Path:
    """A stand-in that records its arguments, for the exit-code and argument passing of ``run``."""
    script = tmp_path / "bin" / "otelcol-contrib"
    script.parent.mkdir()
    script.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/args\nexit {exit_code}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_run_collector_passes_config_and_returns_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = _fake_collector(tmp_path, 3)
    monkeypatch.setenv("AMAS_OTELCOL_BIN", str(script))
    assert run_collector(SHIPPED, args=["--feature-gates=x"]) == 3
    assert (tmp_path / "args").read_text().split() == [f"--config={SHIPPED}", "--feature-gates=x"]


def test_run_collector_finds_otelcol_contrib_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = _fake_collector(tmp_path, 0)
    monkeypatch.setenv("PATH", str(script.parent))
    monkeypatch.setenv("AMAS_OTELCOL_BIN", "")
    monkeypatch.setenv("AMAS_CACHE", str(tmp_path / "cache"))
    assert run_collector(SHIPPED) == 0
    assert (tmp_path / "args").read_text().split() == [f"--config={SHIPPED}"]


def test_run_collector_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in _no_go(tmp_path).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(CollectorUnavailable, match="Go is not installed"):
        run_collector(SHIPPED)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_collector(tmp_path / "missing.yaml")


def test_run_starts_the_real_collector_with_the_shipped_config(otelcol: str, tmp_path: Path) -> None:
    """`amas-otel collector run` serves the shipped config until SIGTERM, then exits 0."""
    environ = {f"AMAS_COLLECTOR_{name}_PORT": str(port) for name, port in Collector(tmp_path).ports.items()}
    process = subprocess.Popen([PYTHON, "-m", "amas_otel.collector", "run"], cwd=REPO,
                               env=python_env(AMAS_OTELCOL_BIN=otelcol, **environ),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    health = f"http://127.0.0.1:{environ['AMAS_COLLECTOR_HEALTH_PORT']}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(health, timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "collector did not become healthy"
                time.sleep(0.2)
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0]
    assert process.returncode == 0, output[-3000:]
    assert "Shutdown complete" in output
