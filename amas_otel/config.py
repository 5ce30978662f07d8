"""One settings object for amas-otel, with a record of where each value came from.

Precedence, highest first:

1. explicit arguments (``load_settings(overrides={"logging": {"level": "DEBUG"}})``
   or ``amas_otel.configure(...)``),
2. environment variables (the standard ``OTEL_*`` ones and amas-otel's own, README settings table),
3. YAML files (``config/logging.yaml``, ``config/health.yaml``,
   ``config/metrics.yaml`` and the combined ``config/amas-otel.yaml`` under the
   project root, or the files named by ``AMAS_CONFIG_FILES``),
4. defaults.

Loading is all-or-nothing: every problem found is collected and raised as one
:class:`ConfigError` that names the variable or ``file:line:key``, the bad
value and what is accepted.  Nothing is applied until loading succeeded.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from amas_otel._redaction_keys import is_sensitive_key
from amas_otel.project_search import ProjectRootError, search_project_root

__all__ = [
    "ConfigError",
    "Settings",
    "ProjectRootSettings",
    "LoggingSettings",
    "HealthSettings",
    "HealthCheckSpec",
    "BreakerSettings",
    "RecoverySettings",
    "MetricsSettings",
    "RateLimitSettings",
    "OtelSettings",
    "HEALTH_CHECK_TYPES",
    "load_settings",
    "get_settings",
    "set_active_settings",
    "parse_bool",
    "parse_setting",
    "environment_setting",
]


class ConfigError(ValueError):
    """Invalid configuration. ``problems`` lists every problem found, one line each."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            self.problems[0]
            if len(self.problems) == 1
            else "invalid configuration:\n  " + "\n  ".join(self.problems)
        )


# --------------------------------------------------------------------------
# Settings sections.  Every field's metadata names its environment variable
# and its YAML key; the loader below is driven by that metadata alone.
# --------------------------------------------------------------------------

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_SECURITY_LEVELS = ("low", "medium", "high", "maximum")
_PROJECT_ROOT_LEVELS = ("low", "medium", "high")
_EXPORTERS = {
    "traces": ("otlp", "console", "none"),
    "metrics": ("otlp", "prometheus", "console", "none"),
    "logs": ("otlp", "console", "none"),
}
_SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
HEALTH_CHECK_TYPES = (
    "database",
    "cache",
    "external_api",
    "file_system",
    "memory",
    "disk",
    "network",
    "service",
)


def _f(default: Any, env: str | None, yaml_key: str | None, kind: str, **rules: Any) -> Any:
    """Declare a settings field: its default, variable, YAML key, kind and rules."""
    meta = {"env": env, "yaml": yaml_key, "kind": kind, **rules}
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples / mappings proxies for defaults")
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ProjectRootSettings:
    cache_enabled: bool = _f(True, "PROJECT_ROOT_CACHE_ENABLED", "cache_enabled", "bool")
    max_depth: int = _f(20, "PROJECT_ROOT_MAX_DEPTH", "max_depth", "int", minimum=1, maximum=256)
    security_level: str = _f(
        "medium", "PROJECT_ROOT_SECURITY_LEVEL", "security_level", "choice", choices=_PROJECT_ROOT_LEVELS
    )


@dataclass(frozen=True)
class LoggingSettings:
    level: str = _f("INFO", "LOG_LEVEL", "level", "choice", choices=_LEVELS, upper=True)
    format: str = _f("json", "LOG_FORMAT", "format", "choice", choices=("json", "console"))
    security_level: str = _f(
        "medium", "LOG_SECURITY_LEVEL", "security_level", "choice", choices=_SECURITY_LEVELS
    )
    enable_correlation: bool = _f(True, "LOG_ENABLE_CORRELATION", "enable_correlation", "bool")
    enable_metrics: bool = _f(True, "LOG_ENABLE_METRICS", "enable_metrics", "bool")
    enable_audit: bool = _f(True, "LOG_ENABLE_AUDIT", "enable_audit", "bool")
    redact_patterns: tuple[str, ...] = _f((), "LOG_REDACT_PATTERNS", "redact_patterns", "list")

    def __post_init__(self) -> None:
        # Built by the loader from parsed values, or directly by code (``LoggingConfig(level="debug")``):
        # either way each field is parsed here, by the rules the loader uses, so strings
        # and enum members are accepted and a bad value names the field.
        for f in dataclasses.fields(LoggingSettings):
            value = getattr(self, f.name)
            if f.metadata["kind"] == "list" and isinstance(value, str):
                value = (value,)  # one pattern given in code; the environment's comma list is split by the loader
            object.__setattr__(self, f.name, parse_setting(type(self), f.name, value))


@dataclass(frozen=True)
class HealthCheckSpec:
    """One entry of the ``health: checks:`` list; ``origin`` is ``file:line``."""

    name: str
    type: str
    timeout: float | None = None
    critical: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)
    origin: str = "<arguments>"


@dataclass(frozen=True)
class HealthSettings:
    enabled: bool = _f(True, "HEALTH_CHECK_ENABLED", "enabled", "bool")
    interval: float = _f(30.0, "HEALTH_CHECK_INTERVAL", "interval", "float", minimum=0.0)
    timeout: float = _f(5.0, "HEALTH_CHECK_TIMEOUT", "timeout", "float", minimum=0.0, exclusive=True)
    retries: int = _f(3, "HEALTH_CHECK_RETRIES", "retries", "int", minimum=0)
    checks: tuple[HealthCheckSpec, ...] = _f((), None, "checks", "checks")


@dataclass(frozen=True)
class BreakerSettings:
    enabled: bool = _f(True, "CIRCUIT_BREAKER_ENABLED", "enabled", "bool")
    failure_threshold: int = _f(5, "CIRCUIT_BREAKER_FAILURE_THRESHOLD", "failure_threshold", "int", minimum=1)
    recovery_timeout: float = _f(
        60.0, "CIRCUIT_BREAKER_RECOVERY_TIMEOUT", "recovery_timeout", "float", minimum=0.0
    )
    success_threshold: int = _f(3, "CIRCUIT_BREAKER_SUCCESS_THRESHOLD", "success_threshold", "int", minimum=1)
    timeout: float = _f(30.0, "CIRCUIT_BREAKER_TIMEOUT", "timeout", "float", minimum=0.0, exclusive=True)


@dataclass(frozen=True)
class RecoverySettings:
    enabled: bool = _f(True, "ERROR_RECOVERY_ENABLED", "enabled", "bool")
    max_retries: int = _f(3, "ERROR_RECOVERY_MAX_RETRIES", "max_retries", "int", minimum=0)
    retry_delay: float = _f(1.0, "ERROR_RECOVERY_RETRY_DELAY", "retry_delay", "float", minimum=0.0)
    exponential_backoff: bool = _f(True, "ERROR_RECOVERY_EXPONENTIAL_BACKOFF", "exponential_backoff", "bool")
    max_retry_delay: float = _f(
        60.0, "ERROR_RECOVERY_MAX_RETRY_DELAY", "max_retry_delay", "float", minimum=0.0
    )


@dataclass(frozen=True)
class MetricsSettings:
    prometheus_enabled: bool = _f(True, "PROMETHEUS_ENABLED", "prometheus.enabled", "bool")
    # 9464 is the OpenTelemetry Prometheus exporter's registered port; 9090
    # would collide with the Prometheus server itself.
    prometheus_port: int = _f(9464, "PROMETHEUS_PORT", "prometheus.port", "int", minimum=0, maximum=65535)
    prometheus_path: str = _f("/metrics", "PROMETHEUS_METRICS_PATH", "prometheus.path", "path")
    prometheus_host: str = _f("0.0.0.0", "PROMETHEUS_HOST", "prometheus.host", "str")
    custom_metrics_enabled: bool = _f(True, "AMAS_CUSTOM_METRICS_ENABLED", "custom_metrics.enabled", "bool")
    #: Seconds between pushes of periodic metric readers (OTLP, console), unless
    #: OTEL_METRIC_EXPORT_INTERVAL is set (see :meth:`OtelSettings.metric_export_interval_seconds`).
    custom_metrics_interval: float = _f(
        60.0, "AMAS_CUSTOM_METRICS_INTERVAL", "custom_metrics.interval", "float", minimum=0.0, exclusive=True
    )
    #: Distinct attribute sets kept per instrument; beyond it, points go to one overflow series.
    cardinality_limit: int = _f(2000, "METRICS_CARDINALITY_LIMIT", "cardinality_limit", "int", minimum=1)


@dataclass(frozen=True)
class RateLimitSettings:
    # Off unless asked for: a library that silently limited every client to
    # 60 requests a minute would break applications on upgrade.
    enabled: bool = _f(False, "RATE_LIMIT_ENABLED", "enabled", "bool")
    requests_per_minute: float = _f(
        60.0, "RATE_LIMIT_REQUESTS_PER_MINUTE", "requests_per_minute", "float", minimum=0.0, exclusive=True
    )
    burst_size: int = _f(10, "RATE_LIMIT_BURST_LIMIT", "burst_limit", "int", minimum=1)
    #: Proxies whose X-Forwarded-For is believed (addresses or CIDR networks).
    trusted_proxies: tuple[str, ...] = _f((), "RATE_LIMIT_TRUSTED_PROXIES", "trusted_proxies", "list")
    #: With a URL, replicas share one limit through Redis.
    redis_url: str | None = _f(None, "RATE_LIMIT_REDIS_URL", "redis_url", "str")
    #: Seconds the Redis limiter waits to connect and for each answer before deciding in memory.
    redis_timeout: float = _f(
        0.05, "RATE_LIMIT_REDIS_TIMEOUT_SECONDS", "redis_timeout_seconds", "float", minimum=0.0, exclusive=True
    )


@dataclass(frozen=True)
class OtelSettings:
    sdk_disabled: bool = _f(False, "OTEL_SDK_DISABLED", "sdk_disabled", "bool")
    service_name: str | None = _f(None, "OTEL_SERVICE_NAME", "service_name", "str")
    resource_attributes: Mapping[str, str] = _f(
        None, "OTEL_RESOURCE_ATTRIBUTES", "resource_attributes", "keyvalues"
    )
    otlp_endpoint: str | None = _f(None, "OTEL_EXPORTER_OTLP_ENDPOINT", "exporter_otlp_endpoint", "url")
    otlp_protocol: str = _f(
        "http/protobuf",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "exporter_otlp_protocol",
        "choice",
        choices=("http/protobuf", "grpc"),
    )
    otlp_headers: Mapping[str, str] = _f(None, "OTEL_EXPORTER_OTLP_HEADERS", "exporter_otlp_headers", "keyvalues", secret=True)
    #: Seconds one OTLP export may take, retries included.
    otlp_timeout: float = _f(
        5.0, "AMAS_OTLP_TIMEOUT_SECONDS", "exporter_otlp_timeout", "float", minimum=0.0, exclusive=True
    )
    traces_exporter: tuple[str, ...] | None = _f(None, "OTEL_TRACES_EXPORTER", "traces_exporter", "exporters", signal="traces")
    metrics_exporter: tuple[str, ...] | None = _f(
        None, "OTEL_METRICS_EXPORTER", "metrics_exporter", "exporters", signal="metrics"
    )
    logs_exporter: tuple[str, ...] | None = _f(None, "OTEL_LOGS_EXPORTER", "logs_exporter", "exporters", signal="logs")
    traces_sampler: str = _f(
        "parentbased_always_on", "OTEL_TRACES_SAMPLER", "traces_sampler", "choice", choices=_SAMPLERS
    )
    traces_sampler_arg: float | None = _f(
        None, "OTEL_TRACES_SAMPLER_ARG", "traces_sampler_arg", "float", minimum=0.0, maximum=1.0
    )
    #: Full replacement of the HTTP semantic conventions' known methods (case-sensitive); others are ``_OTHER``.
    http_known_methods: tuple[str, ...] | None = _f(
        None, "OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS", "instrumentation_http_known_methods", "methods"
    )
    #: Milliseconds between metric pushes and the longest one push may take (the SDK's variables;
    #: unset: AMAS_CUSTOM_METRICS_INTERVAL and AMAS_OTLP_TIMEOUT_SECONDS, in seconds, apply).
    metric_export_interval: int | None = _f(
        None, "OTEL_METRIC_EXPORT_INTERVAL", "metric_export_interval", "int", minimum=0, exclusive=True
    )
    metric_export_timeout: int | None = _f(
        None, "OTEL_METRIC_EXPORT_TIMEOUT", "metric_export_timeout", "int", minimum=0, exclusive=True
    )
    #: Longest time process exit may wait for telemetry to flush.
    shutdown_timeout: float = _f(
        1.0, "AMAS_SHUTDOWN_TIMEOUT_SECONDS", "shutdown_timeout", "float", minimum=0.0
    )

    def exporters(self, signal: str) -> tuple[str, ...]:
        """The exporters in effect for ``signal`` ("traces", "metrics", "logs").

        Unset means: OTLP when an endpoint is configured; for metrics the
        Prometheus pull endpoint otherwise (the embedded default); nothing
        for traces and logs otherwise (logs still reach stdout).
        """
        chosen = getattr(self, f"{signal}_exporter")
        if chosen is not None:
            return tuple(name for name in chosen if name != "none")
        if self.otlp_endpoint:
            return ("otlp",)
        return ("prometheus",) if signal == "metrics" else ()

    def otlp_signal_endpoint(self, signal: str) -> str:
        """Where OTLP export of ``signal`` goes: the endpoint, or the loopback collector's
        default port for the protocol, plus ``/v1/<signal>`` for HTTP."""
        grpc = self.otlp_protocol == "grpc"
        base = self.otlp_endpoint or ("http://127.0.0.1:4317" if grpc else "http://127.0.0.1:4318")
        return base if grpc else f"{base}/v1/{signal}"


_SECTIONS: dict[str, type] = {
    "project_root": ProjectRootSettings,
    "logging": LoggingSettings,
    "health": HealthSettings,
    "circuit_breaker": BreakerSettings,
    "error_recovery": RecoverySettings,
    "metrics": MetricsSettings,
    "rate_limit": RateLimitSettings,
    "otel": OtelSettings,
}


@dataclass(frozen=True)
class Settings:
    """All amas-otel settings.  ``sources`` maps ``section.field`` to where its value came from."""

    project_root: ProjectRootSettings = field(default_factory=ProjectRootSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    circuit_breaker: BreakerSettings = field(default_factory=BreakerSettings)
    error_recovery: RecoverySettings = field(default_factory=RecoverySettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    otel: OtelSettings = field(default_factory=OtelSettings)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    files: tuple[str, ...] = ()

    def describe(self) -> list[tuple[str, str, str, str]]:
        """Rows of (key, value, source, environment variable), secrets masked."""
        rows = []
        for section_name in _SECTIONS:
            section = getattr(self, section_name)
            for f in dataclasses.fields(section):
                key = f"{section_name}.{f.name}"
                value = _masked(getattr(section, f.name), bool(f.metadata.get("secret")) or is_sensitive_key(f.name))
                rows.append((key, _show(value), self.sources.get(key, "default"), f.metadata.get("env") or ""))
        return rows


_MASK = "****"
# The userinfo of a URL: "user:password@" keeps the user, a lone "token@" is all secret.
_URL_USERINFO = re.compile(r"(?<=://)(?P<user>[^/?#\s:@]*)(?P<password>:[^/?#\s]*)?@")


def _mask_urls(text: str) -> str:
    """``text`` with the password (or lone token) of every ``scheme://user:password@`` replaced by ``****``."""
    if "@" not in text:
        return text
    return _URL_USERINFO.sub(
        lambda m: f"{m.group('user')}:{_MASK}@" if m.group("password") is not None else f"{_MASK}@", text
    )


def _masked(value: Any, secret: bool) -> Any:
    """``value`` fit to print: all of it for a secret setting, else URL credentials and values of secret-named keys."""
    if value is None or value == "" or value == () or isinstance(value, (bool, int, float)):
        return value
    if secret:
        return {k: _MASK for k in value} if isinstance(value, Mapping) else _MASK
    if isinstance(value, str):
        return _mask_urls(value)
    if isinstance(value, Mapping):
        return {k: _masked(v, is_sensitive_key(str(k))) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not (value and isinstance(value[0], HealthCheckSpec)):
        return tuple(_masked(v, False) for v in value)
    return value


def _show(value: Any) -> str:
    if isinstance(value, tuple) and value and isinstance(value[0], HealthCheckSpec):
        return ", ".join(f"{c.name}({c.type})" for c in value)
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return "" if value is None else str(value)


# --------------------------------------------------------------------------
# Parsing of single values
# --------------------------------------------------------------------------

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


class _Bad(Exception):
    """A value that does not parse; the message says what is accepted."""


def parse_bool(raw: Any) -> bool:
    """Parse ``true/false/1/0/yes/no/on/off`` (any case); raise ``ValueError`` otherwise."""
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("expected a boolean (true/false, 1/0, yes/no, on/off)")


def _number(raw: Any, kind: type, meta: Mapping[str, Any]) -> Any:
    if isinstance(raw, bool):
        raise _Bad(f"expected {'an integer' if kind is int else 'a number'}")
    try:
        value = kind(raw.strip() if isinstance(raw, str) else raw)
    except (TypeError, ValueError):
        raise _Bad(f"expected {'an integer' if kind is int else 'a number'}") from None
    if kind is float and value != value:  # NaN
        raise _Bad("expected a number")
    minimum, maximum = meta.get("minimum"), meta.get("maximum")
    if minimum is not None and (value < minimum or (meta.get("exclusive") and value == minimum)):
        relation = "greater than" if meta.get("exclusive") else "at least"
        raise _Bad(f"expected a number {relation} {minimum}" + (f" and at most {maximum}" if maximum is not None else ""))
    if maximum is not None and value > maximum:
        raise _Bad(f"expected a number from {minimum} to {maximum}")
    return value


_METHOD_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _split(raw: Any) -> list[str]:
    if isinstance(raw, (list, tuple)):
        return [str(item).strip() for item in raw if str(item).strip()]
    return [part.strip() for part in str(raw).split(",") if part.strip()]


def _keyvalues(raw: Any) -> dict[str, str]:
    """``k=v,k2=v2`` (W3C baggage-like, percent-decoded), or a YAML mapping."""
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    result = {}
    for part in _split(raw):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise _Bad(f"expected comma-separated key=value pairs, got {part!r}")
        result[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(value.strip())
    return result


def parse_setting(section: type, name: str, raw: Any, *, label: str | None = None) -> Any:
    """``raw`` parsed as the loader parses setting ``name`` of the settings class ``section``.

    Raises :class:`ConfigError` naming ``label`` (default ``Section.name``),
    the value and what is accepted.
    """
    meta = next(f.metadata for f in dataclasses.fields(section) if f.name == name)
    try:
        return _parse(raw, meta)
    except _Bad as exc:
        raise ConfigError([f"{label or f'{section.__name__}.{name}'}: {raw!r} is not accepted; {exc}"]) from None


def environment_setting(section: type, name: str, environ: Mapping[str, str] | None = None) -> Any:
    """Setting ``name`` of ``section`` from its environment variable alone; None when unset or invalid.

    For the one decision taken when the settings as a whole cannot be
    resolved: how strict logging's redaction must be (``LOG_SECURITY_LEVEL``).
    """
    env_name = next(f.metadata.get("env") for f in dataclasses.fields(section) if f.name == name)
    raw = (os.environ if environ is None else environ).get(env_name, "") if env_name else ""
    if not raw.strip():
        return None
    try:
        return parse_setting(section, name, raw)
    except ConfigError:
        return None


def _parse(raw: Any, meta: Mapping[str, Any]) -> Any:
    kind = meta["kind"]
    if kind == "bool":
        try:
            return parse_bool(raw)
        except ValueError as exc:
            raise _Bad(str(exc)) from None
    if kind == "int":
        if isinstance(raw, float) and not raw.is_integer():
            raise _Bad("expected an integer")
        return _number(raw, int, meta)
    if kind == "float":
        return float(_number(raw, float, meta))
    if kind == "choice":
        text = str(raw.value if isinstance(raw, enum.Enum) else raw).strip()
        text = text.upper() if meta.get("upper") else text.lower()
        if text not in meta["choices"]:
            raise _Bad("expected one of " + ", ".join(meta["choices"]))
        return text
    if kind == "list":
        return tuple(_split(raw))
    if kind == "methods":  # RFC 9110 method tokens, case-sensitive
        methods = tuple(_split(raw))
        if not methods or not all(_METHOD_TOKEN.fullmatch(method) for method in methods):
            raise _Bad("expected a comma-separated list of HTTP method names (case-sensitive tokens, e.g. GET,POST,PURGE)")
        return methods
    if kind == "exporters":
        names = tuple(name.lower() for name in _split(raw))
        accepted = _EXPORTERS[meta["signal"]]
        unknown = [name for name in names if name not in accepted]
        if unknown or not names:
            raise _Bad("expected a comma-separated list of " + ", ".join(accepted))
        return names
    if kind == "keyvalues":
        return _keyvalues(raw)
    if kind == "url":
        text = str(raw).strip()
        parsed = urllib.parse.urlsplit(text)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise _Bad("expected an http:// or https:// URL with a host, e.g. http://127.0.0.1:4318")
        try:
            parsed.port
        except ValueError:
            raise _Bad("expected a URL whose port is a number from 0 to 65535") from None
        return text.rstrip("/")
    if kind == "path":
        text = str(raw).strip()
        if not text.startswith("/") or any(ch in text for ch in "?# "):
            raise _Bad("expected a URL path starting with '/', without query, fragment or spaces")
        return text
    if kind == "str":
        if isinstance(raw, (Mapping, list)):
            raise _Bad("expected a string")
        return str(raw).strip()
    raise AssertionError(kind)


# --------------------------------------------------------------------------
# YAML: values with their line numbers
# --------------------------------------------------------------------------


@dataclass
class _Located:
    value: Any
    origin: str  # file:line


#: Largest configuration file read (AMAS_CONFIG_MAX_BYTES); a config file is a few KiB.
DEFAULT_CONFIG_MAX_BYTES = 256 * 1024
#: Deepest nesting of a YAML document (aliases expanded), and most nodes it may expand to: the
#: settings are three levels deep; these bound time and memory for hostile files (a 5,000-deep
#: nesting overflows PyYAML's recursive composer, an alias bomb expands exponentially).
_MAX_YAML_DEPTH = 64
_MAX_YAML_NODES = 20_000
_TOO_DEEP = f"YAML nested deeper than {_MAX_YAML_DEPTH} levels (aliases expanded)"
_TOO_MANY = f"YAML document of more than {_MAX_YAML_NODES:,} values once aliases are expanded (an alias bomb?)"


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, stopping at :data:`_MAX_YAML_DEPTH` levels and :data:`_MAX_YAML_NODES` nodes."""

    def __init__(self, text: str, path: Path) -> None:
        super().__init__(text)
        self._path = path
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        self._nodes += 1
        try:
            if self._depth > _MAX_YAML_DEPTH:
                self._too_big(self.peek_event().start_mark, _TOO_DEEP)
            if self._nodes > _MAX_YAML_NODES:
                self._too_big(self.peek_event().start_mark, _TOO_MANY)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _too_big(self, mark: Any, problem: str) -> None:
        raise ConfigError([f"{self._path}:{mark.line + 1}: {problem}; expected a YAML file of settings"])

    def check_expansion(self, node: yaml.Node) -> None:
        """Raise unless ``node`` with every alias expanded stays within the depth and node limits."""
        sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, depth) once expanded

        def measure(current: yaml.Node) -> tuple[int, int]:
            known = sizes.get(id(current))
            if known is not None:
                if known[0] < 0:  # an alias of a node that contains it: infinite
                    self._too_big(current.start_mark, "an alias refers to a node that contains it")
                return known
            sizes[id(current)] = (-1, 0)
            count, depth = 1, 0
            if isinstance(current, yaml.SequenceNode):
                children = current.value
            elif isinstance(current, yaml.MappingNode):
                children = [child for pair in current.value for child in pair]
            else:
                children = []
            for child in children:
                child_count, child_depth = measure(child)
                count += child_count
                depth = max(depth, child_depth)
                if count > _MAX_YAML_NODES:
                    self._too_big(child.start_mark, _TOO_MANY)
                if depth >= _MAX_YAML_DEPTH:
                    self._too_big(child.start_mark, _TOO_DEEP)
            sizes[id(current)] = (count, depth + 1)
            return count, depth + 1

        measure(node)


def _line_of(data: bytes | str, position: int) -> int:
    return data.count(b"\n" if isinstance(data, bytes) else "\n", 0, position) + 1


def _load_yaml(path: Path, max_bytes: int = DEFAULT_CONFIG_MAX_BYTES) -> dict[str, Any]:
    """Load a YAML mapping whose every value is wrapped in :class:`_Located`.

    Hostile files fail fast with a :class:`ConfigError` naming the file (and
    line): more than ``max_bytes``, not UTF-8, NUL or other control
    characters, too deep or too many values (alias bombs included).
    """
    try:
        with path.open("rb") as stream:
            data = stream.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read configuration file: {exc.strerror or exc}"]) from None
    if len(data) > max_bytes:
        raise ConfigError(
            [f"{path}: configuration file larger than {max_bytes:,} bytes (AMAS_CONFIG_MAX_BYTES); expected a YAML settings file"]
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [f"{path}:{_line_of(data, exc.start)}: byte 0x{data[exc.start]:02x} is not UTF-8; expected a UTF-8 YAML text file"]
        ) from None
    nul = text.find("\0")
    if nul >= 0:
        raise ConfigError([f"{path}:{_line_of(text, nul)}: NUL byte; expected a YAML text file, not binary data"])
    try:
        loader = _BoundedLoader(text, path)
    except yaml.reader.ReaderError as exc:  # other characters YAML does not allow
        raise ConfigError(
            [f"{path}:{_line_of(text, exc.position)}: character #x{exc.character:04x} is not allowed in YAML; expected YAML text"]
        ) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return {}
        loader.check_expansion(node)
        return _unwrap_mapping(node, loader, path, top=True)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError([f"{where}: YAML syntax error: {exc.problem or exc}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: YAML error: {exc}"]) from None
    finally:
        loader.dispose()


def _unwrap_mapping(node: yaml.Node, loader: yaml.SafeLoader, path: Path, top: bool = False) -> Any:
    where = f"{path}:{node.start_mark.line + 1}"
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            result[str(key)] = _Located(
                _unwrap_mapping(value_node, loader, path), f"{path}:{key_node.start_mark.line + 1}"
            )
        return result
    if top:
        raise ConfigError([f"{where}: expected a mapping of sections (logging:, health:, metrics:, …)"])
    if isinstance(node, yaml.SequenceNode):
        return [_Located(_unwrap_mapping(item, loader, path), f"{path}:{item.start_mark.line + 1}") for item in node.value]
    return loader.construct_object(node, deep=True)


def _plain(value: Any) -> Any:
    if isinstance(value, _Located):
        return _plain(value.value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------

_DEFAULT_FILES = ("logging.yaml", "health.yaml", "metrics.yaml", "amas-otel.yaml")


def _config_files(explicit: Iterable[str | os.PathLike[str]] | None, environ: Mapping[str, str]) -> tuple[list[Path], list[str]]:
    """The YAML files to read, and problems with explicitly named ones."""
    problems: list[str] = []
    if explicit is None and environ.get("AMAS_CONFIG_FILES"):
        explicit = [p for p in re.split(r"[,%s]" % re.escape(os.pathsep), environ["AMAS_CONFIG_FILES"]) if p.strip()]
        label = "AMAS_CONFIG_FILES"
    else:
        label = "config_files"
    if explicit is not None:
        paths = [Path(p).expanduser() for p in explicit]
        for path in paths:
            if not path.is_file():
                problems.append(f"{label}: configuration file {str(path)!r} does not exist or is not a file")
        return paths, problems
    directory = environ.get("AMAS_CONFIG_DIR")
    if directory:
        base = Path(directory).expanduser()
        if not base.is_dir():
            return [], [f"AMAS_CONFIG_DIR: {directory!r} is not a directory"]
    else:
        # Only the environment decides how the root is found: the YAML files are found through it.
        try:
            limits = load_settings(config_files=()).project_root
            base = search_project_root(None, max_depth=limits.max_depth, security_level=limits.security_level) / "config"
        except (ConfigError, ProjectRootError):
            return [], []
    return [base / name for name in _DEFAULT_FILES if (base / name).is_file()], []


def _yaml_section_values(
    files: list[Path], problems: list[str], max_bytes: int = DEFAULT_CONFIG_MAX_BYTES
) -> dict[str, dict[str, _Located]]:
    """Flatten the YAML files into ``{section: {field: located value}}``; later files win."""
    by_yaml_key: dict[str, dict[str, tuple[str, dataclasses.Field]]] = {
        section: {f.metadata["yaml"]: (f.name, f) for f in dataclasses.fields(cls) if f.metadata.get("yaml")}
        for section, cls in _SECTIONS.items()
    }
    # Prefixes such as "prometheus" in "prometheus.port" are nested mappings in YAML.
    nested = {
        section: {key.split(".")[0] for key in keys if "." in key} for section, keys in by_yaml_key.items()
    }
    found: dict[str, dict[str, _Located]] = {section: {} for section in _SECTIONS}
    for path in files:
        try:
            document = _load_yaml(path, max_bytes)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        for section, located in document.items():
            if section not in _SECTIONS:
                problems.append(
                    f"{located.origin}:{section}: unknown section; expected one of " + ", ".join(_SECTIONS)
                )
                continue
            if located.value is None:
                continue
            if not isinstance(located.value, dict):
                problems.append(f"{located.origin}:{section}: expected a mapping")
                continue
            for key, item in located.value.items():
                if key in nested[section]:
                    if not isinstance(item.value, dict):
                        problems.append(f"{item.origin}:{section}.{key}: expected a mapping")
                        continue
                    pairs = [(f"{key}.{sub}", sub_item) for sub, sub_item in item.value.items()]
                else:
                    pairs = [(key, item)]
                for yaml_key, sub_item in pairs:
                    if yaml_key not in by_yaml_key[section]:
                        accepted = ", ".join(sorted(by_yaml_key[section]))
                        problems.append(
                            f"{sub_item.origin}:{section}.{yaml_key}: unknown key; accepted keys: {accepted}"
                        )
                        continue
                    found[section][by_yaml_key[section][yaml_key][0]] = sub_item
    return found


def _health_checks(raw: Any, origin: str, problems: list[str]) -> tuple[HealthCheckSpec, ...]:
    if not isinstance(raw, list):
        problems.append(f"{origin}:health.checks: expected a list of checks")
        return ()
    specs = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        where = item.origin if isinstance(item, _Located) else f"{origin}"
        entry = _plain(item)
        label = f"{where}:health.checks[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{label}: expected a mapping with name and type")
            continue
        name, check_type = entry.pop("name", None), entry.pop("type", None)
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{label}.name: expected a non-empty string, got {name!r}")
            continue
        if name in seen:
            problems.append(f"{label}.name: duplicate check name {name!r}")
        seen.add(name)
        if check_type not in HEALTH_CHECK_TYPES:
            problems.append(f"{label}.type: got {check_type!r}; expected one of " + ", ".join(HEALTH_CHECK_TYPES))
            continue
        timeout = entry.pop("timeout", None)
        if timeout is not None:
            try:
                timeout = float(_number(timeout, float, {"minimum": 0.0, "exclusive": True}))
            except _Bad as exc:
                problems.append(f"{label}.timeout: got {timeout!r}; {exc}")
                continue
        critical = entry.pop("critical", True)
        try:
            critical = parse_bool(critical)
        except ValueError as exc:
            problems.append(f"{label}.critical: got {critical!r}; {exc}")
            continue
        specs.append(HealthCheckSpec(name=name, type=check_type, timeout=timeout, critical=critical, options=entry, origin=where))
    return tuple(specs)


def load_settings(
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_files: Iterable[str | os.PathLike[str]] | None = None,
) -> Settings:
    """Resolve settings from arguments, environment, YAML files and defaults.

    ``overrides`` is keyed by section then field, e.g.
    ``{"logging": {"level": "DEBUG"}, "otel": {"service_name": "api"}}``.
    ``environ`` defaults to :data:`os.environ`; ``config_files`` to
    ``AMAS_CONFIG_FILES`` or the files found in ``AMAS_CONFIG_DIR`` (default
    ``<project root>/config``).  Raises :class:`ConfigError` naming every
    problem; returns nothing half-resolved.
    """
    environ = os.environ if environ is None else environ
    overrides = overrides or {}
    problems: list[str] = []

    for section, values in overrides.items():
        if section not in _SECTIONS:
            problems.append(f"argument {section!r}: unknown section; expected one of " + ", ".join(_SECTIONS))
            continue
        known = {f.name for f in dataclasses.fields(_SECTIONS[section])}
        for key in values:
            if key not in known:
                problems.append(
                    f"argument {section}.{key}: unknown setting; expected one of " + ", ".join(sorted(known))
                )

    files, file_problems = _config_files(config_files, environ)
    problems.extend(file_problems)
    max_bytes = DEFAULT_CONFIG_MAX_BYTES
    if environ.get("AMAS_CONFIG_MAX_BYTES", "").strip():
        try:
            max_bytes = _number(environ["AMAS_CONFIG_MAX_BYTES"], int, {"minimum": 1})
        except _Bad:
            problems.append(
                f"AMAS_CONFIG_MAX_BYTES: invalid value {environ['AMAS_CONFIG_MAX_BYTES']!r}; expected a positive integer (bytes)"
            )
    from_yaml = _yaml_section_values(files, problems, max_bytes)

    sources: dict[str, str] = {}
    sections: dict[str, Any] = {}
    for section, cls in _SECTIONS.items():
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            meta = f.metadata
            key = f"{section}.{f.name}"
            env_name = meta.get("env")
            if f.name in overrides.get(section, {}):
                raw, label, source = overrides[section][f.name], f"argument {key}", "argument"
            elif env_name and environ.get(env_name, "").strip() != "":
                raw, label, source = environ[env_name], env_name, f"env {env_name}"
            elif f.name in from_yaml[section]:
                located = from_yaml[section][f.name]
                raw, label, source = located.value, f"{located.origin}:{section}.{meta['yaml']}", f"file {located.origin}"
            else:
                continue
            if meta["kind"] == "checks":
                origin = label.rsplit(":", 1)[0] if source.startswith("file") else "<arguments>"
                values[f.name] = (
                    tuple(raw) if source == "argument" and all(isinstance(c, HealthCheckSpec) for c in raw)
                    else _health_checks(raw if source != "argument" else [_Located(r, "<arguments>") for r in raw], origin, problems)
                )
                # Each entry's options too, with the rest of the configuration: a
                # check that cannot be built stops `amas-otel config`, doctor and
                # the launcher, not the application's start.
                from amas_otel.health.service import check_spec_problems

                problems.extend(check_spec_problems(values[f.name]))
            elif raw is None and f.default is None:
                values[f.name] = None
            else:
                try:
                    values[f.name] = _parse(_plain(raw), meta)
                except _Bad as exc:
                    secret = bool(meta.get("secret")) or is_sensitive_key(f.name)
                    # The value of a secret setting is never echoed; URL credentials in others are masked.
                    shown = _masked(_plain(raw), secret)
                    reason = "expected comma-separated key=value pairs" if secret and meta["kind"] == "keyvalues" else exc
                    problems.append(f"{label}: invalid value {shown!r}; {_mask_urls(str(reason))}")
                    continue
            sources[key] = source
        sections[section] = values

    if not problems:
        metrics = sections["metrics"]
        chosen = sections["otel"].get("metrics_exporter")
        if chosen and "prometheus" in chosen and metrics.get("prometheus_enabled") is False:
            problems.append(
                "OTEL_METRICS_EXPORTER names 'prometheus' but PROMETHEUS_ENABLED is false; "
                "remove one of the two"
            )
    if problems:
        raise ConfigError(problems)

    metrics_values = sections["metrics"]
    otel_values = sections["otel"]
    if otel_values.get("metrics_exporter") is None and metrics_values.get("prometheus_enabled", True) is False:
        default_exporters = OtelSettings(**otel_values).exporters("metrics")
        otel_values["metrics_exporter"] = tuple(e for e in default_exporters if e != "prometheus") or ("none",)

    built = {section: cls(**sections[section]) for section, cls in _SECTIONS.items()}
    return Settings(**built, sources=sources, files=tuple(str(p) for p in files))


_settings: Settings | None = None


def get_settings() -> Settings:
    """The settings in effect: those :func:`amas_otel.configure` applied, else resolved now (and kept)."""
    global _settings
    if _settings is None:
        _settings = load_settings()
    return _settings


def set_active_settings(settings: Settings) -> None:
    """Make ``settings`` what :func:`get_settings` returns (``configure()`` does, once they are applied)."""
    global _settings
    _settings = settings
