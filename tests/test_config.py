from __future__ import annotations

from pathlib import Path

import pytest

from amas_otel.config import ConfigError, HealthCheckSpec, load_settings


def _load(env: dict[str, str] | None = None, files: list[Path] | None = None, **overrides: dict) -> object:
    return load_settings(overrides or None, environ=env or {}, config_files=files or [])


def test_defaults_follow_the_guide() -> None:
    settings = _load()
    assert settings.logging.level == "INFO"
    assert settings.logging.format == "json"
    assert settings.health.interval == 30.0 and settings.health.retries == 3
    assert settings.circuit_breaker.failure_threshold == 5
    assert settings.error_recovery.max_retry_delay == 60.0
    assert settings.metrics.prometheus_path == "/metrics"
    assert all(source == "default" for source in (row[2] for row in settings.describe()))


def test_every_guide_variable_is_honoured() -> None:
    env = {
        "PROJECT_ROOT_CACHE_ENABLED": "false",
        "PROJECT_ROOT_MAX_DEPTH": "7",
        "PROJECT_ROOT_SECURITY_LEVEL": "high",
        "LOG_LEVEL": "debug",
        "LOG_FORMAT": "console",
        "LOG_SECURITY_LEVEL": "maximum",
        "LOG_ENABLE_CORRELATION": "no",
        "LOG_ENABLE_METRICS": "0",
        "LOG_ENABLE_AUDIT": "off",
        "LOG_REDACT_PATTERNS": "password, api_key ,token",
        "HEALTH_CHECK_ENABLED": "false",
        "HEALTH_CHECK_INTERVAL": "10",
        "HEALTH_CHECK_TIMEOUT": "2.5",
        "HEALTH_CHECK_RETRIES": "1",
        "CIRCUIT_BREAKER_ENABLED": "false",
        "CIRCUIT_BREAKER_FAILURE_THRESHOLD": "9",
        "CIRCUIT_BREAKER_RECOVERY_TIMEOUT": "12",
        "CIRCUIT_BREAKER_SUCCESS_THRESHOLD": "2",
        "CIRCUIT_BREAKER_TIMEOUT": "3",
        "ERROR_RECOVERY_ENABLED": "false",
        "ERROR_RECOVERY_MAX_RETRIES": "5",
        "ERROR_RECOVERY_RETRY_DELAY": "0.5",
        "ERROR_RECOVERY_EXPONENTIAL_BACKOFF": "false",
        "ERROR_RECOVERY_MAX_RETRY_DELAY": "8",
        "PROMETHEUS_ENABLED": "true",
        "PROMETHEUS_PORT": "9999",
        "PROMETHEUS_METRICS_PATH": "/prom",
    }
    s = _load(env)
    assert (s.project_root.cache_enabled, s.project_root.max_depth, s.project_root.security_level) == (False, 7, "high")
    assert (s.logging.level, s.logging.format, s.logging.security_level) == ("DEBUG", "console", "maximum")
    assert (s.logging.enable_correlation, s.logging.enable_metrics, s.logging.enable_audit) == (False, False, False)
    assert s.logging.redact_patterns == ("password", "api_key", "token")
    assert (s.health.enabled, s.health.interval, s.health.timeout, s.health.retries) == (False, 10.0, 2.5, 1)
    b = s.circuit_breaker
    assert (b.enabled, b.failure_threshold, b.recovery_timeout, b.success_threshold, b.timeout) == (False, 9, 12.0, 2, 3.0)
    r = s.error_recovery
    assert (r.enabled, r.max_retries, r.retry_delay, r.exponential_backoff, r.max_retry_delay) == (False, 5, 0.5, False, 8.0)
    assert (s.metrics.prometheus_port, s.metrics.prometheus_path) == (9999, "/prom")
    assert s.sources["circuit_breaker.timeout"] == "env CIRCUIT_BREAKER_TIMEOUT"


def test_standard_otel_variables() -> None:
    s = _load(
        {
            "OTEL_SERVICE_NAME": "checkout",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,team=pay%20ments",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318/",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer abc",
            "OTEL_TRACES_EXPORTER": "otlp,console",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "otlp",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
            "OTEL_SDK_DISABLED": "true",
        }
    ).otel
    assert s.service_name == "checkout"
    assert s.resource_attributes == {"deployment.environment": "prod", "team": "pay ments"}
    assert s.otlp_endpoint == "http://127.0.0.1:4318"
    assert s.otlp_protocol == "grpc" and s.otlp_headers == {"authorization": "Bearer abc"}
    assert s.exporters("traces") == ("otlp", "console")
    assert s.exporters("metrics") == ()
    assert s.traces_sampler == "parentbased_traceidratio" and s.traces_sampler_arg == 0.25
    assert s.sdk_disabled is True


def test_embedded_default_exporters_without_a_collector() -> None:
    otel = _load().otel
    assert otel.exporters("metrics") == ("prometheus",)
    assert otel.exporters("traces") == () and otel.exporters("logs") == ()
    with_collector = _load({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}).otel
    assert with_collector.exporters("traces") == ("otlp",)
    assert with_collector.exporters("metrics") == ("otlp",)


def test_prometheus_disabled_removes_the_pull_endpoint() -> None:
    assert _load({"PROMETHEUS_ENABLED": "false"}).otel.exporters("metrics") == ()
    with pytest.raises(ConfigError, match="PROMETHEUS_ENABLED"):
        _load({"PROMETHEUS_ENABLED": "false", "OTEL_METRICS_EXPORTER": "prometheus"})


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("HEALTH_CHECK_RETRIES", "three", "expected an integer"),
        ("HEALTH_CHECK_INTERVAL", "1.5.2", "expected a number"),
        ("LOG_ENABLE_AUDIT", "maybe", "expected a boolean"),
        ("LOG_LEVEL", "LOUD", "expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("LOG_FORMAT", "xml", "expected one of json, console"),
        ("HEALTH_CHECK_TIMEOUT", "-1", "greater than 0"),
        ("CIRCUIT_BREAKER_TIMEOUT", "0", "greater than 0"),
        ("PROMETHEUS_PORT", "70000", "from 0 to 65535"),
        ("PROMETHEUS_METRICS_PATH", "metrics", "starting with '/'"),
        ("OTEL_TRACES_EXPORTER", "jaeger", "otlp, console, none"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318", "http:// or https://"),
        ("OTEL_TRACES_SAMPLER_ARG", "2", "from 0.0 to 1.0"),
        ("OTEL_RESOURCE_ATTRIBUTES", "novalue", "key=value"),
    ],
)
def test_bad_environment_value_names_variable_value_and_accepted(name: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load({name: value})
    message = str(caught.value)
    assert name in message and repr(value) in message and expected in message


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        _load({"LOG_LEVEL": "x", "HEALTH_CHECK_RETRIES": "y"})
    assert len(caught.value.problems) == 2


def test_precedence_arguments_over_env_over_yaml_over_default(tmp_path: Path) -> None:
    config = tmp_path / "logging.yaml"
    config.write_text("logging:\n  level: WARNING\n  format: console\n  enable_audit: false\n")
    s = load_settings(
        {"logging": {"level": "ERROR"}},
        environ={"LOG_LEVEL": "DEBUG", "LOG_FORMAT": "json"},
        config_files=[config],
    )
    assert s.logging.level == "ERROR" and s.sources["logging.level"] == "argument"
    assert s.logging.format == "json" and s.sources["logging.format"] == "env LOG_FORMAT"
    assert s.logging.enable_audit is False and s.sources["logging.enable_audit"] == f"file {config}:4"
    assert s.logging.security_level == "medium" and "logging.security_level" not in s.sources


def test_guide_yaml_files(tmp_path: Path) -> None:
    (tmp_path / "logging.yaml").write_text(
        "logging:\n  level: INFO\n  format: json\n  security_level: medium\n"
        "  enable_correlation: true\n  enable_metrics: true\n  enable_audit: true\n"
    )
    # The guide's health.yaml as written: its checks do not say what to connect to.
    guide_health = "health:\n  enabled: true\n  interval: 30\n  timeout: 5\n  checks:\n" "    - name: database\n      type: database\n      timeout: 5\n"
    (tmp_path / "health.yaml").write_text(guide_health + "    - name: redis\n      type: cache\n      timeout: 3\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"AMAS_CONFIG_DIR": str(tmp_path)})
    assert caught.value.problems == [
        f"{tmp_path / 'health.yaml'}:6:health.checks[database]: give exactly one of dsn, connect for type database",
        f"{tmp_path / 'health.yaml'}:9:health.checks[redis]: give exactly one of url, client for type cache",
    ]
    (tmp_path / "health.yaml").write_text(
        guide_health.replace("      timeout: 5\n", "      timeout: 5\n      dsn: postgresql://127.0.0.1/app\n")
        + "    - name: redis\n      type: cache\n      timeout: 3\n      critical: false\n      url: redis://127.0.0.1:6379/0\n"
    )
    (tmp_path / "metrics.yaml").write_text(
        "metrics:\n  prometheus:\n    enabled: true\n    port: 9465\n    path: /metrics\n"
        "  custom_metrics:\n    enabled: true\n    interval: 60\n"
    )
    s = load_settings(environ={"AMAS_CONFIG_DIR": str(tmp_path)})
    assert s.metrics.prometheus_port == 9465
    assert s.health.checks == (
        HealthCheckSpec("database", "database", 5.0, True, {"dsn": "postgresql://127.0.0.1/app"}, f"{tmp_path / 'health.yaml'}:6"),
        HealthCheckSpec("redis", "cache", 3.0, False, {"url": "redis://127.0.0.1:6379/0"}, f"{tmp_path / 'health.yaml'}:10"),
    )
    assert len(s.files) == 3


def test_combined_file_via_environment(tmp_path: Path) -> None:
    combined = tmp_path / "amas.yaml"
    combined.write_text("circuit_breaker:\n  failure_threshold: 2\nerror_recovery:\n  max_retries: 0\n")
    s = load_settings(environ={"AMAS_CONFIG_FILES": str(combined)})
    assert s.circuit_breaker.failure_threshold == 2 and s.error_recovery.max_retries == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("logging:\n  level: INFO\n  colour: red\n", ":3:logging.colour: unknown key; accepted keys:"),
        ("logging:\n  level: LOUD\n", ":2:logging.level: invalid value 'LOUD'; expected one of"),
        ("logging:\n  level: [INFO\n", ":3:1: YAML syntax error"),
        ("tracing:\n  x: 1\n", ":1:tracing: unknown section"),
        ("metrics:\n  prometheus:\n    port: http\n", ":3:metrics.prometheus.port: invalid value 'http'; expected an integer"),
        ("health:\n  checks:\n    - name: db\n      type: mainframe\n", ":3:health.checks[0].type: got 'mainframe'; expected one of"),
        ("health:\n  timeout: -2\n", ":2:health.timeout: invalid value -2; expected a number greater than 0"),
        ("- just\n- a list\n", ":1: expected a mapping of sections"),
    ],
)
def test_bad_yaml_names_file_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "amas.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}, config_files=[path])
    assert f"{path}{expected}" in str(caught.value)


def test_missing_named_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="AMAS_CONFIG_FILES: configuration file .* does not exist"):
        load_settings(environ={"AMAS_CONFIG_FILES": str(tmp_path / "nope.yaml")})


def test_unknown_argument_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"argument logging.colour: unknown setting"):
        load_settings({"logging": {"colour": "red"}}, environ={}, config_files=[])


def test_describe_masks_secret_headers() -> None:
    s = _load({"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer supersecret"})
    row = next(r for r in s.describe() if r[0] == "otel.otlp_headers")
    assert "supersecret" not in row[1] and "authorization=****" in row[1]


def test_rate_limit_and_cardinality_settings() -> None:
    s = _load(
        {
            "RATE_LIMIT_ENABLED": "true",
            "RATE_LIMIT_REQUESTS_PER_MINUTE": "120",
            "RATE_LIMIT_BURST_LIMIT": "20",
            "RATE_LIMIT_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1",
            "RATE_LIMIT_REDIS_URL": "redis://127.0.0.1:6379/0",
            "RATE_LIMIT_REDIS_TIMEOUT_SECONDS": "0.02",
            "METRICS_CARDINALITY_LIMIT": "50",
        }
    )
    limit = s.rate_limit
    assert (limit.enabled, limit.requests_per_minute, limit.burst_size) == (True, 120.0, 20)
    assert limit.trusted_proxies == ("10.0.0.0/8", "127.0.0.1")
    assert limit.redis_url == "redis://127.0.0.1:6379/0"
    assert limit.redis_timeout == 0.02
    assert _load().rate_limit.redis_timeout == 0.05  # well under the time of a request
    with pytest.raises(ConfigError, match="RATE_LIMIT_REDIS_TIMEOUT_SECONDS: invalid value '0'"):
        _load({"RATE_LIMIT_REDIS_TIMEOUT_SECONDS": "0"})
    assert s.metrics.cardinality_limit == 50
    assert _load().rate_limit.enabled is False
    with pytest.raises(ConfigError, match="RATE_LIMIT_BURST_LIMIT: invalid value '0'"):
        _load({"RATE_LIMIT_BURST_LIMIT": "0"})


def test_redis_timeout_from_yaml(tmp_path: Path) -> None:
    combined = tmp_path / "amas.yaml"
    combined.write_text("rate_limit:\n  redis_timeout_seconds: 0.03\n")
    assert _load(files=[combined]).rate_limit.redis_timeout == 0.03
