"""otel-collector.yaml and amas_otel.collector: static validation, CLI, and agreement with the app's defaults."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import textwrap
import urllib.parse
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from amas_otel import collector
from amas_otel._redaction_keys import SENSITIVE_KEYS, blocked_key_patterns, is_sensitive_key
from amas_otel.collector import CollectorNotInstalled, Problem, run_collector, validate_config
from amas_otel.config import load_settings
from tests.conftest import PYTHON, REPO, python_env

SHIPPED = REPO / "otel-collector.yaml"
DEFAULTS = load_settings(environ={}, config_files=[])

GOOD = """\
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:4317
      http:
        endpoint: 127.0.0.1:4318
processors:
  memory_limiter:
    check_interval: 1s
    limit_mib: 256
  batch:
exporters:
  debug:
  prometheus:
    endpoint: 127.0.0.1:8889
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [debug]
    metrics:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [prometheus]
    logs:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [debug]
"""


def _write(tmp_path: Path, text: str, name: str = "otel.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _problems(tmp_path: Path, text: str, **settings_env: str) -> list[Problem]:
    settings_ = load_settings(environ=settings_env, config_files=[]) if settings_env else DEFAULTS
    return validate_config(_write(tmp_path, text), settings=settings_, use_binary=False)


def _one(problems: list[Problem], pattern: str) -> Problem:
    found = [p for p in problems if re.search(pattern, p.message)]
    assert len(found) == 1, f"expected one problem matching {pattern!r}, got {[str(p) for p in problems]}"
    return found[0]


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(textwrap.dedent(text).splitlines(), 1) if needle in line)


# --- the shipped configuration ------------------------------------------------------------


def test_shipped_config_validates_clean_with_default_settings() -> None:
    assert validate_config(SHIPPED, settings=DEFAULTS, use_binary=False) == []


def test_shipped_config_validates_clean_when_the_app_uses_grpc() -> None:
    grpc = load_settings(environ={"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, config_files=[])
    assert validate_config(SHIPPED, settings=grpc, use_binary=False) == []


def test_shipped_config_ports_and_protocols_agree_with_amas_otel_defaults() -> None:
    """The collector's OTLP listeners are where the app's default exporters send, per protocol."""
    doc = yaml.safe_load(SHIPPED.read_text())
    protocols = doc["receivers"]["otlp"]["protocols"]
    for app_protocol, receiver_protocol in (("http/protobuf", "http"), ("grpc", "grpc")):
        otel = load_settings(environ={"OTEL_EXPORTER_OTLP_PROTOCOL": app_protocol}, config_files=[]).otel
        app = urllib.parse.urlsplit(otel.otlp_signal_endpoint("metrics"))
        endpoint = protocols[receiver_protocol]["endpoint"]
        host, port = endpoint.replace("${env:AMAS_COLLECTOR_HOST:-127.0.0.1}", "127.0.0.1").rsplit(":", 1)
        assert (host, int(port)) == (app.hostname, app.port), app_protocol
    assert DEFAULTS.otel.otlp_protocol == "http/protobuf"
    # Prometheus scrapes the collector's exporter and, without a collector, the app's own endpoint.
    scrape = yaml.safe_load((REPO / "collector" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    exporter_port = doc["exporters"]["prometheus"]["endpoint"].rsplit(":", 1)[1]
    assert jobs["otel-collector"]["static_configs"][0]["targets"] == [f"127.0.0.1:{exporter_port}"]
    assert exporter_port == "8889"
    assert jobs["amas-app"]["static_configs"][0]["targets"] == [f"127.0.0.1:{DEFAULTS.metrics.prometheus_port}"]
    assert jobs["amas-app"]["metrics_path"] == DEFAULTS.metrics.prometheus_path
    compose = yaml.safe_load((REPO / "collector" / "prometheus.compose.yml").read_text())
    assert compose["scrape_configs"][0]["static_configs"][0]["targets"] == [f"otel-collector:{exporter_port}"]


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


def test_collector_patterns_are_re2_compatible() -> None:
    for pattern in blocked_key_patterns():
        problems, _ = collector._re2_problems(pattern)
        assert problems == []


# --- malformed files -----------------------------------------------------------------------


def test_yaml_syntax_error_reports_file_and_line(tmp_path: Path) -> None:
    text = GOOD.replace("      exporters: [prometheus]", "      exporters: [prometheus\n    oops: here")
    path = _write(tmp_path, text)
    problems = validate_config(path, settings=DEFAULTS, use_binary=False)
    assert len(problems) == 1
    assert str(problems[0]).startswith(f"{path}:{_line_of(text, 'oops: here')}: YAML syntax error")


def test_bad_indentation_reports_line(tmp_path: Path) -> None:
    text = GOOD.replace("  batch:\n", "  batch:\n   bogus: 1\n  - x\n")
    problems = _problems(tmp_path, text)
    assert len(problems) == 1 and problems[0].line == _line_of(text, "  - x")
    assert "YAML syntax error" in problems[0].message


def test_duplicate_key_reported_with_both_lines(tmp_path: Path) -> None:
    text = GOOD.replace("  batch:\n", "  batch:\n  batch:\n")
    problem = _one(_problems(tmp_path, text), "duplicate key 'batch'")
    first = _line_of(text, "  batch:")
    assert problem.line == first + 1 and f"first at line {first}" in problem.message


def test_not_a_file_and_not_a_mapping(tmp_path: Path) -> None:
    missing = validate_config(tmp_path / "nope.yaml", settings=DEFAULTS, use_binary=False)
    assert "cannot read" in missing[0].message
    assert "expected a mapping" in _problems(tmp_path, "- just a list\n")[0].message


# --- structural checks ---------------------------------------------------------------------


def test_good_config_has_no_problems(tmp_path: Path) -> None:
    assert _problems(tmp_path, GOOD) == []


def test_undefined_component_in_pipeline(tmp_path: Path) -> None:
    text = GOOD.replace("      exporters: [debug]\n    metrics", "      exporters: [debug, otlp/backend]\n    metrics")
    problem = _one(_problems(tmp_path, text), "'otlp/backend' is not defined under exporters:")
    assert problem.line == _line_of(text, "otlp/backend")


def test_undefined_extension_and_processor(tmp_path: Path) -> None:
    text = GOOD.replace("service:\n", "service:\n  extensions: [health_check]\n").replace(
        "processors: [memory_limiter, batch]\n      exporters: [prometheus]",
        "processors: [memory_limiter, filter/drop]\n      exporters: [prometheus]",
    )
    problems = _problems(tmp_path, text)
    assert _one(problems, "'health_check' is not defined under extensions:").line == _line_of(text, "extensions: [")
    assert _one(problems, "'filter/drop' is not defined under processors:").line == _line_of(text, "filter/drop")


def test_unknown_component_type_suggests_the_right_one(tmp_path: Path) -> None:
    text = GOOD.replace("  batch:\n", "  batch:\n  bacth/x:\n")
    problem = _one(_problems(tmp_path, text), r"unknown processor type 'bacth'.*did you mean batch")
    assert problem.line == _line_of(text, "bacth/x")


def test_removed_logging_exporter_points_to_debug(tmp_path: Path) -> None:
    text = GOOD.replace("  debug:\n", "  debug:\n  logging:\n")
    _one(_problems(tmp_path, text), "logging exporter was removed.*use debug")


def test_component_in_a_pipeline_of_a_signal_it_does_not_handle(tmp_path: Path) -> None:
    text = GOOD.replace("      exporters: [debug]\n    metrics", "      exporters: [debug, prometheus]\n    metrics")
    problem = _one(_problems(tmp_path, text), "exporter 'prometheus' does not handle traces")
    assert problem.line == _line_of(text, "exporters: [debug, prometheus]")


def test_memory_limiter_must_come_first(tmp_path: Path) -> None:
    text = GOOD.replace("      processors: [memory_limiter, batch]\n      exporters: [debug]\n    metrics",
                        "      processors: [batch, memory_limiter]\n      exporters: [debug]\n    metrics")
    _one(_problems(tmp_path, text), "memory_limiter should come first")


def test_pipeline_without_receivers_and_unknown_pipeline_type(tmp_path: Path) -> None:
    text = GOOD.replace("    logs:\n      receivers: [otlp]\n", "    logs:\n      receivers: []\n") + (
        "    spans:\n      receivers: [otlp]\n      exporters: [debug]\n"
    )
    problems = _problems(tmp_path, text)
    _one(problems, "pipelines.logs: needs at least one of receivers")
    _one(problems, "'spans' must be traces, metrics, logs or profiles")


# --- endpoints -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("127.0.0.1:70000", "port '70000' is not a number from 0 to 65535"),
        ("127.0.0.1", "expected host:port"),
        ("127.0.0.1:http", "port 'http' is not a number"),
        ("bad_host!:8889", "not a valid host name"),
        ("http://127.0.0.1:8889", "a listening address is host:port, not a URL"),
        ("[::1:8889", "expected host:port"),
    ],
)
def test_malformed_listening_endpoint(tmp_path: Path, endpoint: str, message: str) -> None:
    text = GOOD.replace("endpoint: 127.0.0.1:8889", f"endpoint: '{endpoint}'")
    problem = _one(_problems(tmp_path, text), re.escape(message))
    assert problem.line == _line_of(text, f"'{endpoint}'") and "exporters.prometheus.endpoint" in problem.message


def test_well_formed_endpoints_are_accepted(tmp_path: Path) -> None:
    text = GOOD.replace("endpoint: 127.0.0.1:8889", "endpoint: '[::1]:8889'").replace(
        "  debug:\n", "  debug:\n  otlphttp:\n    endpoint: https://collector.example:4318\n"
        "  otlp/gw:\n    endpoint: gateway.internal:4317\n"
    )
    assert _problems(tmp_path, text) == []


def test_client_exporter_endpoints(tmp_path: Path) -> None:
    text = GOOD.replace(
        "  debug:\n", "  debug:\n  otlphttp:\n    endpoint: collector:4318\n  otlp/gw:\n    endpoint: ftp://x:1\n"
    )
    problems = _problems(tmp_path, text)
    _one(problems, "otlphttp exporter needs a URL")
    _one(problems, "URL scheme 'ftp' is not http or https")


def test_two_listeners_on_one_port(tmp_path: Path) -> None:
    text = GOOD.replace("endpoint: 127.0.0.1:8889", "endpoint: 0.0.0.0:4317")
    problem = _one(_problems(tmp_path, text), "port 4317 is already used by receivers.otlp.protocols.grpc")
    assert problem.line == _line_of(text, "0.0.0.0:4317")


def test_environment_references_are_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMAS_TEST_PROM_PORT", "99999")
    text = GOOD.replace("endpoint: 127.0.0.1:8889", "endpoint: ${env:AMAS_TEST_HOST:-127.0.0.1}:${AMAS_TEST_PROM_PORT}")
    _one(_problems(tmp_path, text), r"\(= '127.0.0.1:99999'\): port '99999'")
    monkeypatch.delenv("AMAS_TEST_PROM_PORT")
    _one(_problems(tmp_path, text), "environment variable AMAS_TEST_PROM_PORT is not set")


# --- regular expressions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("a(b", "does not compile"),
        ("[z-a]", "does not compile"),
        ("(?<=pass)word", "lookahead/lookbehind"),
        ("(?!x)y", "lookahead/lookbehind"),
        (r"(a)\1", "backreference"),
        (r"secret\Z", r"\\Z is Python syntax"),
        ("a++", "possessive"),
        ("(?x)a b", "flag\\(s\\) x not supported"),
    ],
)
def test_bad_regex_detected(tmp_path: Path, pattern: str, message: str) -> None:
    text = GOOD.replace("  batch:\n", f"  batch:\n  redaction:\n    allow_all_keys: true\n    blocked_values:\n"
                        f"      - ok[0-9]+\n      - '{pattern}'\n")
    text = text.replace("[memory_limiter, batch]", "[memory_limiter, redaction, batch]")
    problem = _one(_problems(tmp_path, text), message)
    assert problem.line == _line_of(text, f"- '{pattern}'") and "blocked_values[1]" in problem.message


@pytest.mark.parametrize("pattern", [r"(?i)bearer\s+\S+", r"x(?i)y", r"\pL+\z", "[[:alpha:]]+", r"(?U)a+", r"(?P<n>a)"])
def test_re2_only_syntax_is_accepted(tmp_path: Path, pattern: str) -> None:
    text = GOOD.replace("  batch:\n", f"  batch:\n  redaction:\n    allow_all_keys: true\n    blocked_values:\n"
                        f"      - '{pattern}'\n")
    assert _problems(tmp_path, text) == []


def test_regexp_match_properties_of_filter_processor(tmp_path: Path) -> None:
    text = GOOD.replace("  batch:\n", "  batch:\n  filter/x:\n    spans:\n      include:\n        match_type: regexp\n"
                        "        services: ['ab(c']\n        attributes:\n          - key: k\n            value: '(?=x)'\n")
    problems = _problems(tmp_path, text)
    _one(problems, r"services\[0\].*does not compile")
    _one(problems, r"attributes\[0\].*lookahead")


# --- agreement with the app's OTLP settings ------------------------------------------------


def test_http_port_mismatch_with_the_app(tmp_path: Path) -> None:
    text = GOOD.replace("127.0.0.1:4318", "127.0.0.1:4319")
    problem = _one(_problems(tmp_path, text), "listens on port 4319 but the app sends OTLP over http/protobuf to "
                   r"127.0.0.1:4318 \(the default endpoint")
    assert problem.line == _line_of(text, "4319")


def test_app_endpoint_from_environment_is_what_counts(tmp_path: Path) -> None:
    text = GOOD.replace("127.0.0.1:4318", "127.0.0.1:5318")
    assert _problems(tmp_path, text, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:5318") == []
    _one(_problems(tmp_path, GOOD, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:5318"),
         "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:5318")


def test_app_on_grpc_needs_a_grpc_receiver(tmp_path: Path) -> None:
    text = GOOD.replace("      grpc:\n        endpoint: 127.0.0.1:4317\n", "")
    assert _problems(tmp_path, text) == []
    _one(_problems(tmp_path, text, OTEL_EXPORTER_OTLP_PROTOCOL="grpc"), "no otlp receiver enables protocols.grpc")


def test_receiver_protocol_without_endpoint_uses_collector_default_port(tmp_path: Path) -> None:
    text = GOOD.replace("      http:\n        endpoint: 127.0.0.1:4318\n", "      http:\n")
    assert _problems(tmp_path, text) == []


def test_receiver_bound_to_another_interface_than_the_app_targets(tmp_path: Path) -> None:
    text = GOOD.replace("127.0.0.1:4318", "10.1.2.3:4318")
    _one(_problems(tmp_path, text), "listens on 10.1.2.3, not on loopback")


def test_signal_pipeline_missing_for_otlp(tmp_path: Path) -> None:
    text = GOOD[: GOOD.index("    logs:")]
    _one(_problems(tmp_path, text), "no logs pipeline receives from otlp")


# --- the collector binary ------------------------------------------------------------------


def _fake_collector(tmp_path: Path, exit_code: int) -> Path:
    """A stand-in for otelcol-contrib (not installable here) that records its arguments."""
    script = tmp_path / "bin" / "otelcol-contrib"
    script.parent.mkdir()
    script.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/args\necho 'Error: invalid configuration' >&2\nexit {exit_code}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_binary_validate_runs_when_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = _fake_collector(tmp_path, 1)
    monkeypatch.setenv("PATH", str(script.parent))
    monkeypatch.delenv("AMAS_OTELCOL_BIN", raising=False)
    path = _write(tmp_path, GOOD)
    problems = validate_config(path, settings=DEFAULTS)
    assert (tmp_path / "args").read_text().split() == ["validate", f"--config={path}"]
    _one(problems, r"otelcol-contrib validate failed \(exit 1\): Error: invalid configuration")
    assert validate_config(path, settings=DEFAULTS, use_binary=False) == []


def test_run_collector_says_how_to_install_when_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("AMAS_OTELCOL_BIN", raising=False)
    with pytest.raises(CollectorNotInstalled, match="(?s)not installed.*otelcol-contrib.*docker run"):
        run_collector(SHIPPED)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_collector(tmp_path / "missing.yaml")


def test_run_collector_passes_config_and_returns_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = _fake_collector(tmp_path, 3)
    monkeypatch.setenv("AMAS_OTELCOL_BIN", str(script))
    assert run_collector(SHIPPED, args=["--feature-gates=x"]) == 3
    assert (tmp_path / "args").read_text().split() == [f"--config={SHIPPED}", "--feature-gates=x"]


# --- CLI -----------------------------------------------------------------------------------


def _cli(*args: str, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess[str]:
    environ = python_env(**env)
    for name in [n for n in environ if n.startswith("OTEL_") or n == "AMAS_OTELCOL_BIN"]:
        del environ[name]
    environ["PATH"] = os.pathsep.join(p for p in environ["PATH"].split(os.pathsep) if not (Path(p) / "otelcol-contrib").exists())
    return subprocess.run([PYTHON, "-m", "amas_otel.collector", *args], check=False, cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=60)


def test_cli_validate_default_file_ok() -> None:
    done = _cli("validate")
    assert done.returncode == 0, done.stderr
    assert "otel-collector.yaml: OK (static checks; no collector binary installed)" in done.stdout


def test_cli_validate_reports_problems_with_file_line(tmp_path: Path) -> None:
    text = GOOD.replace("exporters: [prometheus]", "exporters: [prometheus, nope]")
    path = _write(tmp_path, text)
    done = _cli("validate", str(path), "--static-only")
    assert done.returncode == 1
    assert f"{path}:{_line_of(text, 'nope')}: service.pipelines.metrics.exporters: 'nope' is not defined" in done.stderr


def test_cli_run_without_binary_exits_127_with_install_hint(tmp_path: Path) -> None:
    done = _cli("run", str(SHIPPED), PATH="/usr/bin:/bin")
    assert done.returncode == 127
    assert "not installed" in done.stderr and "docker compose -f collector/docker-compose.yaml up" in done.stderr


def test_cli_help_lists_subcommands() -> None:
    done = _cli("--help")
    assert done.returncode == 0 and "validate" in done.stdout and "run" in done.stdout


def test_shipped_config_passes_the_installed_collectors_own_validate() -> None:
    """With otelcol-contrib/otelcol installed this also runs its `validate`; without, the static checks alone."""
    assert validate_config(SHIPPED, settings=DEFAULTS) == []
