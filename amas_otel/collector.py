"""Check and run an OpenTelemetry Collector configuration (``otel-collector.yaml``).

:func:`validate_config` checks a collector configuration statically — YAML
syntax, every pipeline component defined, known otelcol-contrib component
types and the signals they handle, well-formed endpoints, regular expressions
that Go's RE2 accepts, and OTLP ports and protocol that agree with what this
application's settings make it send — and, when an ``otelcol-contrib`` or
``otelcol`` binary is installed, also runs the binary's own ``validate``.
:func:`run_collector` starts that binary with the configuration.

Every problem names ``file:line`` where the file has a line for it.
``register_cli`` adds ``collector validate|run`` to an argparse CLI;
``python -m amas_otel.collector`` runs the same commands.
"""

from __future__ import annotations

import argparse
import difflib
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "COLLECTOR_BINARIES",
    "DEFAULT_CONFIG",
    "INSTALL_HINT",
    "CollectorNotInstalled",
    "Problem",
    "find_collector_binary",
    "main",
    "register_cli",
    "run_collector",
    "validate_config",
]

#: The configuration file the CLI uses when none is named.
DEFAULT_CONFIG = "otel-collector.yaml"
#: Binaries looked for on PATH, in order; ``AMAS_OTELCOL_BIN`` names one explicitly.
COLLECTOR_BINARIES = ("otelcol-contrib", "otelcol")
#: The Docker image docker-compose.yaml uses; also named in the install hint.
_IMAGE = "otel/opentelemetry-collector-contrib:0.128.0"
INSTALL_HINT = (
    "The OpenTelemetry Collector is not installed: no otelcol-contrib or otelcol on PATH "
    "and AMAS_OTELCOL_BIN is not set.  Install the contrib distribution (otelcol-contrib, "
    "version 0.121 or later for the redaction processor's blocked_key_patterns) from the "
    "release archives or .deb/.rpm packages at "
    "https://github.com/open-telemetry/opentelemetry-collector-releases/releases, "
    "or run it with Docker:\n"
    f"  docker run --rm -e AMAS_COLLECTOR_HOST=0.0.0.0 -p 4317:4317 -p 4318:4318 -p 8889:8889 "
    f"-v \"$PWD/otel-collector.yaml:/etc/otelcol-contrib/config.yaml:ro\" {_IMAGE}\n"
    "or start the whole stack: docker compose -f collector/docker-compose.yaml up"
)


class CollectorNotInstalled(FileNotFoundError):
    """No collector binary was found; the message says how to get one."""

    def __init__(self) -> None:
        super().__init__(INSTALL_HINT)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration file; ``line`` is 1-based, None when unknown."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


# --------------------------------------------------------------------------
# What otelcol-contrib knows.  Signals are listed where a component handles
# fewer than all three; a component type missing from _SIGNALS is not checked.
# --------------------------------------------------------------------------

_T, _M, _L = "traces", "metrics", "logs"
_SIGNAL_TYPES = ("traces", "metrics", "logs", "profiles")

_KNOWN: dict[str, frozenset[str]] = {
    "receivers": frozenset(
        """otlp prometheus hostmetrics filelog jaeger zipkin kafka kafkametrics journald syslog tcplog udplog
        fluentforward k8s_cluster k8s_events k8sobjects kubeletstats docker_stats podman_stats redis postgresql
        mysql mongodb mongodbatlas nginx apache rabbitmq elasticsearch statsd carbon collectd influxdb httpcheck
        sqlquery sqlserver oracledb windowseventlog windowsperfcounters awsxray awsecscontainermetrics
        awscloudwatch awsfirehose azureeventhub azuremonitor googlecloudpubsub googlecloudspanner splunk_hec
        signalfx datadog loki receiver_creator memcached zookeeper haproxy iis jmx snmp sshcheck vcenter
        netflow otlpjsonfile webhookevent pulsar solace skywalking namedpipe cloudflare couchdb riak saphana
        snowflake nsxt chrony expvar flinkmetrics github gitlab active_directory_ds aerospike bigip
        cloudfoundry filestats otelarrow purefa purefb apachespark cassandra file_stats simpleprometheus
        prometheus_simple activemq k8s_leader_elector ntp systemd tlscheck""".split()
    ),
    "processors": frozenset(
        """batch memory_limiter attributes resource filter transform redaction k8sattributes resourcedetection
        tail_sampling probabilistic_sampler span groupbyattrs groupbytrace metricstransform cumulativetodelta
        deltatorate deltatocumulative logdedup interval metricsgeneration experimental_metricsgeneration
        schema sumologic geoip remotetap logstransform coralogix dnslookup isolationforest unroll
        metricstarttime tailsampling""".split()
    ),
    "exporters": frozenset(
        """otlp otlphttp debug nop prometheus prometheusremotewrite file kafka loadbalancing elasticsearch
        opensearch clickhouse splunk_hec datadog awsxray awsemf awss3 awscloudwatchlogs awskinesis
        azuremonitor azuredataexplorer googlecloud googlemanagedprometheus googlecloudpubsub influxdb zipkin
        sapm signalfx sentry honeycombmarker coralogix logzio syslog carbon pulsar alibabacloud_logservice
        tencentcloud_logservice mezmo sumologic otelarrow logicmonitor dataset rabbitmq doris tinybird
        cassandra bmchelix faro""".split()
    ),
    "extensions": frozenset(
        """health_check healthcheckv2 pprof zpages file_storage db_storage redis_storage basicauth
        bearertokenauth oauth2client oidc headers_setter memory_limiter k8s_observer docker_observer
        host_observer ecs_observer ecs_task_observer cf_observer sigv4auth asapclient jaegerremotesampling
        opamp ack awsproxy cgroupruntime googleclientauth azureauth sumologic avro_log_encoding
        otlp_encoding json_log_encoding text_encoding jsonlog_encoding zipkin_encoding jaeger_encoding
        skywalking_encoding googlecloudlogentry_encoding awslogs_encoding""".split()
    ),
    "connectors": frozenset(
        """spanmetrics count forward routing servicegraph exceptions failover roundrobin sum datadog
        grafanacloud signaltometrics otlpjson slowsql""".split()
    ),
}

_REMOVED = {
    ("exporters", "logging"): "the logging exporter was removed from the collector; use debug",
    ("exporters", "jaeger"): "the jaeger exporter was removed; Jaeger accepts OTLP, use otlp",
    ("exporters", "loki"): "the loki exporter was removed; Loki accepts OTLP, use otlphttp",
    ("processors", "routing"): "the routing processor was removed; use the routing connector",
    ("processors", "spanmetrics"): "the spanmetrics processor was removed; use the spanmetrics connector",
}

_SIGNALS: dict[tuple[str, str], frozenset[str]] = {
    **{("receivers", t): frozenset({_M}) for t in """prometheus hostmetrics kafkametrics statsd carbon collectd
        httpcheck kubeletstats docker_stats podman_stats redis postgresql mysql nginx apache rabbitmq memcached
        zookeeper haproxy iis jmx snmp sshcheck vcenter simpleprometheus prometheus_simple""".split()},
    **{("receivers", t): frozenset({_L}) for t in "filelog journald syslog tcplog udplog fluentforward k8s_events windowseventlog".split()},
    **{("receivers", t): frozenset({_T}) for t in "jaeger zipkin skywalking".split()},
    ("processors", "tail_sampling"): frozenset({_T}),
    ("processors", "span"): frozenset({_T}),
    ("processors", "groupbytrace"): frozenset({_T}),
    ("processors", "probabilistic_sampler"): frozenset({_T, _L}),
    ("processors", "logdedup"): frozenset({_L}),
    **{("processors", t): frozenset({_M}) for t in """metricstransform cumulativetodelta deltatorate
        deltatocumulative interval metricsgeneration experimental_metricsgeneration""".split()},
    **{("exporters", t): frozenset({_M}) for t in "prometheus prometheusremotewrite awsemf carbon googlemanagedprometheus".split()},
    **{("exporters", t): frozenset({_T}) for t in "zipkin awsxray sapm".split()},
    **{("exporters", t): frozenset({_L}) for t in "awscloudwatchlogs syslog honeycombmarker".split()},
}

#: Components whose ``endpoint`` is an address they listen on (host:port, never a URL).
_LISTENERS = {
    "receivers": frozenset(
        """otlp jaeger zipkin fluentforward statsd carbon collectd influxdb splunk_hec signalfx datadog loki
        skywalking webhookevent awsxray otelarrow awsfirehose""".split()
    ),
    "extensions": frozenset("health_check healthcheckv2 pprof zpages jaegerremotesampling".split()),
    "exporters": frozenset({"prometheus"}),
}
#: Client endpoints that must be a URL with a scheme.
_URL_EXPORTERS = frozenset({"otlphttp", "prometheusremotewrite", "zipkin", "elasticsearch", "opensearch"})
#: The collector's defaults when an OTLP protocol is enabled without an endpoint.
_OTLP_DEFAULT_PORT = {"grpc": 4317, "http": 4318}
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})
_REGEX_KEYS = frozenset(
    {"blocked_values", "allowed_values", "blocked_key_patterns", "ignored_key_patterns", "pattern", "regex", "regexp"}
)
_ID = re.compile(r"^([a-zA-Z][0-9a-zA-Z_]{0,62})(?:/(.+))?$")


# --------------------------------------------------------------------------
# YAML with line numbers
# --------------------------------------------------------------------------


class _Map(dict):
    """A YAML mapping that remembers the line of each key (``lines``) and its own (``line``)."""

    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}


class _Seq(list):
    """A YAML sequence that remembers the line of each item."""

    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[int] = []


class _Checker:
    """Collects problems for one file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self._scalars = yaml.SafeLoader("")

    def add(self, line: int | None, message: str) -> None:
        self.problems.append(Problem(self.file, line, message))

    def build(self, node: yaml.Node) -> Any:
        """Turn a composed YAML node into _Map/_Seq/scalars, noting duplicate keys."""
        if isinstance(node, yaml.MappingNode):
            result = _Map()
            result.line = node.start_mark.line + 1
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    merged = self.build(value_node)
                    for source in merged if isinstance(merged, list) else [merged]:
                        if isinstance(source, _Map):
                            for key, value in source.items():
                                result.setdefault(key, value)
                                result.lines.setdefault(key, source.lines[key])
                    continue
                key = self.build(key_node)
                line = key_node.start_mark.line + 1
                if not isinstance(key, (str, int, float, bool)) and key is not None:
                    self.add(line, "a mapping key must be a plain value")
                    continue
                if key in result:
                    self.add(line, f"duplicate key {key!r} (first at line {result.lines[key]})")
                result[key] = self.build(value_node)
                result.lines[key] = line
            return result
        if isinstance(node, yaml.SequenceNode):
            seq = _Seq()
            seq.line = node.start_mark.line + 1
            for item in node.value:
                seq.append(self.build(item))
                seq.lines.append(item.start_mark.line + 1)
            return seq
        return self._scalars.construct_object(node)


def _load(text: str, checker: _Checker) -> Any:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        context = ""
        if exc.context and exc.context_mark:
            context = f" ({exc.context} at line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
        column = f"column {mark.column + 1}: " if mark else ""
        checker.add(mark.line + 1 if mark else None, f"YAML syntax error: {column}{exc.problem or exc}{context}")
        return None
    except yaml.YAMLError as exc:
        checker.add(None, f"YAML error: {exc}")
        return None
    return None if node is None else checker.build(node)


# --------------------------------------------------------------------------
# Environment variable expansion, as the collector's confmap does it
# --------------------------------------------------------------------------

_ENV_REF = re.compile(r"\$\$|\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{[^}]*\}")


def _expand(value: str, checker: _Checker, line: int | None) -> str | None:
    """``value`` with ``${env:NAME}``/``${NAME}`` (and ``:-default``) expanded; None when a
    reference cannot be resolved: an unset variable (reported) or another provider such as
    ``${file:...}``."""
    unresolved = False

    def replace(match: re.Match[str]) -> str:
        nonlocal unresolved
        text = match.group(0)
        if text == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name is None:
            unresolved = True
            return text
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        checker.add(line, f"environment variable {name} is not set and {text} has no default (:-value)")
        unresolved = True
        return text

    expanded = _ENV_REF.sub(replace, value)
    return None if unresolved else expanded


# --------------------------------------------------------------------------
# Endpoints
# --------------------------------------------------------------------------

_HOST_PORT = re.compile(r"^(?:\[(?P<ipv6>[0-9A-Fa-f:.%a-zA-Z]+)\]|(?P<host>[^:\s\[\]/]*)):(?P<port>[^:]*)$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$")


def _split_host_port(text: str) -> tuple[str, int] | str:
    """(host, port) for ``host:port`` / ``[v6]:port`` / ``:port``; an error message otherwise."""
    match = _HOST_PORT.match(text)
    if not match:
        return "expected host:port (IPv6 as [addr]:port), e.g. 127.0.0.1:4318"
    host = match.group("ipv6") if match.group("ipv6") is not None else match.group("host")
    port_text = match.group("port")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        return f"port {port_text!r} is not a number from 0 to 65535"
    if match.group("ipv6") is not None:
        try:
            ipaddress.IPv6Address(host.split("%")[0])
        except ValueError:
            return f"{host!r} is not an IPv6 address"
    elif host and not _HOSTNAME.match(host):
        return f"{host!r} is not a valid host name or address"
    return host, int(port_text)


def _check_url(text: str) -> str | None:
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"URL scheme {parts.scheme!r} is not http or https"
    if not parts.hostname:
        return "URL has no host"
    return None


@dataclass
class _Listener:
    where: str
    line: int | None
    host: str
    port: int


# --------------------------------------------------------------------------
# RE2 compatibility
# --------------------------------------------------------------------------

_RE2_FLAGS = frozenset("imsU")


def _re2_problems(pattern: str) -> tuple[list[str], str]:
    """Constructs Go's RE2 rejects, and ``pattern`` rewritten so Python can compile-check
    the rest (RE2-only syntax such as ``\\z``, ``\\pL``, ``(?U)``, ``[[:alpha:]]`` mapped)."""
    problems: list[str] = []
    out: list[str] = []
    i, n, in_class = 0, len(pattern), False
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            nxt = pattern[i + 1] if i + 1 < n else ""
            if not nxt:
                problems.append("trailing backslash")
                break
            if nxt in "123456789" and not in_class:
                problems.append(f"backreference \\{nxt}: RE2 has no backreferences")
            elif nxt == "Z":
                problems.append("\\Z is Python syntax; RE2 writes end of text as \\z")
            elif nxt == "z":
                out.append("\\Z")
                i += 2
                continue
            elif nxt in "pP":
                end = pattern.find("}", i) + 1 if pattern.startswith("{", i + 2) else i + 3
                out.append("\\w" if nxt == "p" else "\\W")
                i = end if end > i else n
                continue
            elif nxt == "C":
                out.append(".")
                i += 2
                continue
            elif nxt == "Q":
                stop = pattern.find("\\E", i + 2)
                literal = pattern[i + 2 : stop if stop >= 0 else n]
                out.append(re.escape(literal))
                i = stop + 2 if stop >= 0 else n
                continue
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if ch == "[" and pattern.startswith("[:", i):
                stop = pattern.find(":]", i)
                if stop > 0:
                    out.append("a-z")  # any valid class body will do for the compile check
                    i = stop + 2
                    continue
            if ch == "]":
                in_class = False
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class = True
            out.append(ch)
            i += 1
            # A ']' straight after '[' or '[^' is a literal.
            if pattern.startswith("^", i):
                out.append("^")
                i += 1
            if pattern.startswith("]", i):
                out.append("\\]")
                i += 1
            continue
        if ch == "(" and pattern.startswith("?", i + 1):
            rest = pattern[i + 2 :]
            if rest.startswith(("=", "!", "<=", "<!")):
                problems.append("lookahead/lookbehind (?=, ?!, ?<=, ?<!) is not supported by RE2")
            elif rest.startswith(">"):
                problems.append("atomic groups (?>...) are not supported by RE2")
            elif rest.startswith("P="):
                problems.append("backreference (?P=name): RE2 has no backreferences")
            elif rest.startswith("#"):
                problems.append("comments (?#...) are not supported by RE2")
            elif rest.startswith("<"):
                out.append("(?P<")
                i += 3
                continue
            elif not rest.startswith(("P<", ":")):
                flags = re.match(r"([A-Za-z-]*)([:)])", rest)
                if flags:
                    bad = sorted(set(flags.group(1).replace("-", "")) - _RE2_FLAGS)
                    if bad:
                        problems.append(f"flag(s) {''.join(bad)} not supported by RE2 (i, m, s, U are)")
                    # Flags do not change whether a pattern compiles, and Python
                    # rejects global flags that are not at the very start: drop them.
                    out.append("(?:" if flags.group(2) == ":" else "")
                    i += 2 + len(flags.group(0))
                    continue
        if ch == "+" and i > 0 and pattern[i - 1] in "*+?}" and (i < 2 or pattern[i - 2] != "\\"):
            problems.append("possessive quantifiers (*+, ++, ?+) are not supported by RE2")
        out.append(ch)
        i += 1
    return problems, "".join(out)


def _check_regex(pattern: str, checker: _Checker, line: int | None, where: str) -> None:
    problems, translated = _re2_problems(pattern)
    for problem in problems:
        checker.add(line, f"{where}: regular expression {pattern!r}: {problem}")
    if problems:
        return
    try:
        re.compile(translated)
    except re.error as exc:
        checker.add(line, f"{where}: regular expression {pattern!r} does not compile: {exc}")


# --------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------

_SECTIONS = ("receivers", "processors", "exporters", "extensions", "connectors")


def _walk(value: Any, path: str, line: int | None) -> Iterator[tuple[str, str, Any, int | None, Any]]:
    """Yield (path, key, value, line, parent) for every mapping entry below ``value``."""
    if isinstance(value, _Map):
        for key, item in value.items():
            item_line = value.lines.get(key, line)
            yield f"{path}.{key}", str(key), item, item_line, value
            yield from _walk(item, f"{path}.{key}", item_line)
    elif isinstance(value, _Seq):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]", value.lines[index])


def _check_components(doc: _Map, checker: _Checker) -> dict[str, dict[str, str]]:
    """Check each section's component IDs and types; return {section: {id: type}}."""
    defined: dict[str, dict[str, str]] = {}
    for section in _SECTIONS:
        defined[section] = {}
        components = doc.get(section)
        if components is None:
            continue
        if not isinstance(components, _Map):
            checker.add(doc.lines[section], f"{section}: expected a mapping of component IDs to settings")
            continue
        for cid, settings in components.items():
            line = components.lines[cid]
            match = _ID.match(str(cid))
            if not match:
                checker.add(line, f"{section}: {cid!r} is not a component ID (type or type/name; type is a "
                            "letter followed by letters, digits or _)")
                continue
            ctype = match.group(1)
            defined[section][str(cid)] = ctype
            if (section, ctype) in _REMOVED:
                checker.add(line, f"{section}.{cid}: {_REMOVED[section, ctype]}")
            elif ctype not in _KNOWN[section]:
                close = difflib.get_close_matches(ctype, _KNOWN[section], n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                checker.add(line, f"{section}.{cid}: unknown {section[:-1]} type {ctype!r} for otelcol-contrib{hint}")
            if settings is not None and not isinstance(settings, _Map):
                checker.add(line, f"{section}.{cid}: expected a mapping of settings or nothing, got {settings!r}")
    return defined


def _check_service(doc: _Map, defined: dict[str, dict[str, str]], checker: _Checker) -> dict[str, set[str]]:
    """Check service.extensions and service.pipelines; return {pipeline id: receiver ids}."""
    service = doc.get("service")
    if not isinstance(service, _Map):
        checker.add(doc.lines.get("service", doc.line), "service: missing or not a mapping; it must list pipelines")
        return {}
    extensions = service.get("extensions")
    if extensions is not None:
        if not isinstance(extensions, _Seq):
            checker.add(service.lines["extensions"], "service.extensions: expected a list of extension IDs")
        else:
            for ext, line in zip(extensions, extensions.lines):
                if str(ext) not in defined["extensions"]:
                    checker.add(line, f"service.extensions: {ext!r} is not defined under extensions:")
    pipelines = service.get("pipelines")
    if not isinstance(pipelines, _Map) or not pipelines:
        checker.add(service.lines.get("pipelines", service.line), "service.pipelines: missing or empty")
        return {}
    receivers_of: dict[str, set[str]] = {}
    connector_use: dict[str, set[str]] = {}
    for pid, pipeline in pipelines.items():
        pline = pipelines.lines[pid]
        match = _ID.match(str(pid))
        signal_type = match.group(1) if match else ""
        if signal_type not in _SIGNAL_TYPES:
            checker.add(pline, f"service.pipelines: {pid!r} must be traces, metrics, logs or profiles[/name]")
            continue
        if not isinstance(pipeline, _Map):
            checker.add(pline, f"service.pipelines.{pid}: expected a mapping with receivers, processors, exporters")
            continue
        for key in pipeline:
            if key not in ("receivers", "processors", "exporters"):
                checker.add(pipeline.lines[key], f"service.pipelines.{pid}: unknown key {key!r} "
                            "(receivers, processors, exporters)")
        receivers_of[str(pid)] = set()
        for role, sections in (
            ("receivers", ("receivers", "connectors")),
            ("processors", ("processors",)),
            ("exporters", ("exporters", "connectors")),
        ):
            refs = pipeline.get(role)
            line = pipeline.lines.get(role, pline)
            if refs is None or refs == []:
                if role != "processors":
                    checker.add(line, f"service.pipelines.{pid}: needs at least one of {role}")
                continue
            if not isinstance(refs, _Seq):
                checker.add(line, f"service.pipelines.{pid}.{role}: expected a list of component IDs")
                continue
            seen: set[str] = set()
            for ref, ref_line in zip(refs, refs.lines):
                ref = str(ref)
                if ref in seen:
                    checker.add(ref_line, f"service.pipelines.{pid}.{role}: {ref!r} is listed twice")
                seen.add(ref)
                section = next((s for s in sections if ref in defined[s]), None)
                if section is None:
                    where = " or ".join(f"{s}:" for s in sections)
                    checker.add(ref_line, f"service.pipelines.{pid}.{role}: {ref!r} is not defined under {where}")
                    continue
                if section == "connectors":
                    connector_use.setdefault(ref, set()).add(role)
                elif role == "receivers":
                    receivers_of[str(pid)].add(ref)
                supported = _SIGNALS.get((section, defined[section][ref]))
                if supported is not None and signal_type in (_T, _M, _L) and signal_type not in supported:
                    checker.add(ref_line, f"service.pipelines.{pid}: {section[:-1]} {ref!r} does not handle "
                                f"{signal_type} (only {', '.join(sorted(supported))})")
            if role == "processors":
                limiter = [i for i, ref in enumerate(refs) if defined["processors"].get(str(ref)) == "memory_limiter"]
                if limiter and limiter[0] != 0:
                    checker.add(refs.lines[limiter[0]], f"service.pipelines.{pid}.processors: memory_limiter "
                                "should come first, so data is refused before other processors spend memory on it")
    for cid, roles in connector_use.items():
        if roles != {"receivers", "exporters"}:
            checker.add(doc["connectors"].lines[cid], f"connectors.{cid}: a connector must be an exporter in one "
                        "pipeline and a receiver in another")
    return receivers_of


def _check_settings(doc: _Map, defined: dict[str, dict[str, str]], checker: _Checker) -> list[_Listener]:
    """Endpoints and regular expressions inside component settings; returns listening addresses."""
    listeners: list[_Listener] = []
    for section in _SECTIONS:
        components = doc.get(section)
        if not isinstance(components, _Map):
            continue
        for cid, ctype in defined[section].items():
            settings = components.get(cid)
            for path, key, value, line, parent in _walk(settings, f"{section}.{cid}", components.lines.get(cid)):
                if key in ("endpoint", "listen_address") and isinstance(value, str):
                    listener = _check_endpoint(section, ctype, path, key, value, line, checker)
                    if listener:
                        listeners.append(listener)
                elif key in _REGEX_KEYS or (isinstance(parent, _Map) and parent.get("match_type") == "regexp"):
                    _check_regexes(value, path, line, checker)
    return listeners


def _check_regexes(value: Any, path: str, line: int | None, checker: _Checker) -> None:
    if isinstance(value, str):
        expanded = _expand(value, checker, line)
        if expanded is not None:
            _check_regex(expanded, checker, line, path)
    elif isinstance(value, _Seq):
        for index, item in enumerate(value):
            item_value = item.get("value") if isinstance(item, _Map) else item
            if isinstance(item_value, str):
                _check_regexes(item_value, f"{path}[{index}]", value.lines[index], checker)


def _check_endpoint(
    section: str, ctype: str, path: str, key: str, raw: str, line: int | None, checker: _Checker
) -> _Listener | None:
    value = _expand(raw, checker, line)
    if value is None:
        return None
    listens = key == "listen_address" or ctype in _LISTENERS.get(section, ())
    shown = f"{raw!r}" + (f" (= {value!r})" if value != raw else "")
    if "://" in value:
        if listens:
            checker.add(line, f"{path}: {shown}: a listening address is host:port, not a URL")
            return None
        error = _check_url(value) if not value.startswith(("dns://", "unix://", "tcp://")) else None
        if error:
            checker.add(line, f"{path}: {shown}: {error}")
        return None
    if section == "exporters" and ctype in _URL_EXPORTERS:
        checker.add(line, f"{path}: {shown}: the {ctype} exporter needs a URL such as http://host:port")
        return None
    parsed = _split_host_port(value)
    if isinstance(parsed, str):
        checker.add(line, f"{path}: {shown}: {parsed}")
        return None
    host, port = parsed
    return _Listener(path, line, host, port) if listens else None


def _check_listener_clashes(listeners: list[_Listener], checker: _Checker) -> None:
    for index, first in enumerate(listeners):
        for second in listeners[index + 1 :]:
            if first.port and first.port == second.port and (
                first.host == second.host or first.host in _WILDCARD_HOSTS or second.host in _WILDCARD_HOSTS
            ):
                checker.add(second.line, f"{second.where}: port {second.port} is already used by {first.where} "
                            f"(line {first.line})")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_app_agreement(
    doc: _Map, defined: dict[str, dict[str, str]], receivers_of: dict[str, set[str]], settings: Any, checker: _Checker
) -> None:
    """The app's OTLP protocol, port and host must reach an otlp receiver of every signal's pipeline."""
    otel = settings.otel
    protocol = "grpc" if otel.otlp_protocol == "grpc" else "http"
    target = urllib.parse.urlsplit(otel.otlp_signal_endpoint("traces"))
    app_port = target.port or (443 if target.scheme == "https" else 80)
    app_host = target.hostname or ""
    origin = (
        f"OTEL_EXPORTER_OTLP_ENDPOINT={otel.otlp_endpoint}" if otel.otlp_endpoint
        else f"the default endpoint {target.scheme}://{target.netloc}"
    )
    app_says = f"the app sends OTLP over {otel.otlp_protocol} to {app_host}:{app_port} ({origin})"
    receivers = doc.get("receivers")
    matching: list[str] = []
    mismatches: list[tuple[int | None, str]] = []
    for cid, ctype in defined["receivers"].items():
        if ctype != "otlp":
            continue
        settings_map = receivers.get(cid) if isinstance(receivers, _Map) else None
        protocols = settings_map.get("protocols") if isinstance(settings_map, _Map) else None
        if not isinstance(protocols, _Map) or protocol not in protocols:
            continue
        proto = protocols[protocol]
        line = protocols.lines[protocol]
        endpoint = proto.get("endpoint") if isinstance(proto, _Map) else None
        if endpoint is None:
            host, port = "localhost", _OTLP_DEFAULT_PORT[protocol]
        else:
            expanded = _expand(str(endpoint), checker, line)
            parsed = _split_host_port(expanded) if expanded else None
            if not isinstance(parsed, tuple):
                continue  # unresolvable or malformed: reported elsewhere
            host, port = parsed
            line = proto.lines["endpoint"]
        if port != app_port:
            mismatches.append((line, f"receivers.{cid}.protocols.{protocol} listens on port {port} but {app_says}"))
        elif _is_loopback(app_host) and host not in _WILDCARD_HOSTS and not _is_loopback(host):
            message = f"receivers.{cid}.protocols.{protocol} listens on {host}, not on loopback, but {app_says}"
            mismatches.append((line, message))
        else:
            matching.append(cid)
    if not matching:
        for line, message in mismatches:
            checker.add(line, message)
        if not mismatches:
            checker.add(doc.lines.get("receivers", doc.line), f"no otlp receiver enables protocols.{protocol}, but "
                        f"{app_says}; add receivers.otlp.protocols.{protocol}.endpoint")
        return
    if not receivers_of:
        return  # no usable pipelines: already reported
    line = doc["service"].lines["pipelines"]
    for signal_type in (_T, _M, _L):
        if not any(pid.split("/")[0] == signal_type and set(matching) & refs for pid, refs in receivers_of.items()):
            checker.add(line, f"service.pipelines: no {signal_type} pipeline receives from "
                        f"{', '.join(matching)}; the app's OTLP {signal_type} would be refused")


def _run_binary_validate(binary: str, path: Path, file: str) -> list[Problem]:
    try:
        done = subprocess.run(
            [binary, "validate", f"--config={path}"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [Problem(file, None, f"{binary} validate could not run: {exc}")]
    if done.returncode == 0:
        return []
    output = (done.stderr or done.stdout).strip().splitlines()[-5:]
    return [Problem(file, None, f"{Path(binary).name} validate failed (exit {done.returncode}): " + " | ".join(output))]


def find_collector_binary() -> str | None:
    """Path of ``AMAS_OTELCOL_BIN``, else of the first of :data:`COLLECTOR_BINARIES` on PATH; None if none."""
    explicit = os.environ.get("AMAS_OTELCOL_BIN")
    if explicit:
        return shutil.which(explicit)
    return next(filter(None, map(shutil.which, COLLECTOR_BINARIES)), None)


def validate_config(
    path: str | os.PathLike[str] = DEFAULT_CONFIG, *, settings: Any = None, use_binary: bool = True
) -> list[Problem]:
    """Problems found in the collector configuration at ``path``; empty when it is sound.

    ``settings`` (an :class:`amas_otel.config.Settings`) is what the OTLP
    protocol, port and host are compared with; it defaults to the settings in
    effect (:func:`amas_otel.config.get_settings`).  With ``use_binary`` and an
    installed collector (:func:`find_collector_binary`), the binary's own
    ``validate`` runs too, once the static checks pass.
    """
    file = os.fspath(path)
    checker = _Checker(file)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(file, None, f"cannot read the configuration: {exc}")]
    doc = _load(text, checker)
    if not isinstance(doc, _Map):
        if not checker.problems:
            checker.add(None, "expected a mapping with receivers, processors, exporters and service")
        return checker.problems
    for key in doc:
        if key not in (*_SECTIONS, "service"):
            checker.add(doc.lines[key], f"unknown top-level key {key!r} (expected {', '.join((*_SECTIONS, 'service'))})")
    defined = _check_components(doc, checker)
    receivers_of = _check_service(doc, defined, checker)
    _check_listener_clashes(_check_settings(doc, defined, checker), checker)
    if settings is None:
        from amas_otel.config import ConfigError, get_settings

        try:
            settings = get_settings()
        except ConfigError as exc:
            checker.add(None, f"cannot compare with the app's OTLP settings, they are invalid: {exc}")
    if settings is not None:
        _check_app_agreement(doc, defined, receivers_of, settings, checker)
    problems = sorted(checker.problems, key=lambda p: (p.line or 0, p.message))
    binary = find_collector_binary() if use_binary else None
    if binary and not problems:
        problems += _run_binary_validate(binary, Path(file), file)
    return problems


def run_collector(path: str | os.PathLike[str] = DEFAULT_CONFIG, *, args: Sequence[str] = ()) -> int:
    """Run the installed collector with ``path`` in the foreground; return its exit code.

    Raises :class:`CollectorNotInstalled` (message: how to install it) when no
    binary is found, and :class:`FileNotFoundError` when ``path`` does not exist.
    Ctrl-C / SIGTERM are passed on to the collector, which shuts down cleanly.
    """
    config = Path(path)
    if not config.is_file():
        raise FileNotFoundError(f"collector configuration {os.fspath(path)!r} does not exist")
    binary = find_collector_binary()
    if binary is None:
        raise CollectorNotInstalled()
    process = subprocess.Popen([binary, f"--config={config}", *args])

    def forward(signum: int, _frame: Any) -> None:
        process.send_signal(signum)

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, forward) if main_thread else None
    try:
        while True:
            try:
                return process.wait()
            except KeyboardInterrupt:
                process.send_signal(signal.SIGINT)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def _cmd_validate(options: argparse.Namespace) -> int:
    problems = validate_config(options.file, use_binary=not options.static_only)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{options.file}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    binary = None if options.static_only else find_collector_binary()
    checked = f"static checks and {Path(binary).name} validate" if binary else "static checks; no collector binary installed"
    print(f"{options.file}: OK ({checked})")
    return 0


def _cmd_run(options: argparse.Namespace) -> int:
    try:
        return run_collector(options.file, args=options.collector_args)
    except FileNotFoundError as exc:  # CollectorNotInstalled included
        print(exc, file=sys.stderr)
        return 127 if isinstance(exc, CollectorNotInstalled) else 2


def register_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``collector validate [FILE]`` and ``collector run [FILE]`` to an argparse CLI.

    Each leaf parser sets ``func``: call ``options.func(options)`` for the exit code.
    """
    parser = subparsers.add_parser(
        "collector",
        help="check or run the OpenTelemetry Collector configuration",
        description="Check or run an OpenTelemetry Collector configuration (default ./otel-collector.yaml).",
    )
    commands = parser.add_subparsers(dest="collector_command", metavar="{validate,run}", required=True)
    validate = commands.add_parser(
        "validate",
        help="check a collector configuration",
        description="Check a collector configuration statically (YAML, components, pipelines, endpoints, "
        "regular expressions, agreement with the app's OTLP settings) and, when otelcol-contrib or otelcol "
        "is installed, with its own validate command.  Exit status 1 when problems are found.",
    )
    validate.add_argument("file", nargs="?", default=DEFAULT_CONFIG, help=f"configuration file (default {DEFAULT_CONFIG})")
    validate.add_argument("--static-only", action="store_true", help="skip the collector binary's own validate")
    validate.set_defaults(func=_cmd_validate)
    run = commands.add_parser(
        "run",
        help="start the collector with a configuration",
        description="Start otelcol-contrib (or otelcol) with the configuration, in the foreground; "
        "says how to install it when it is missing (exit status 127).",
    )
    run.add_argument("file", nargs="?", default=DEFAULT_CONFIG, help=f"configuration file (default {DEFAULT_CONFIG})")
    run.add_argument("collector_args", nargs=argparse.REMAINDER, help="further arguments for the collector (after --)")
    run.set_defaults(func=_cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m amas_otel.collector validate|run [FILE]``."""
    parser = argparse.ArgumentParser(prog="amas-otel")
    commands = parser.add_subparsers(dest="command", required=True)
    register_cli(commands)
    options = parser.parse_args(["collector", *(sys.argv[1:] if argv is None else argv)])
    return options.func(options)


if __name__ == "__main__":
    sys.exit(main())
