"""The ``amas-otel`` command: inspect configuration, the project root, and the telemetry path.

::

    amas-otel config [--json]          resolved settings, secrets masked, with the source of each value
    amas-otel project-root [PATH]      the detected project root and the resource it yields
    amas-otel doctor                   is the collector reachable, is the Prometheus port free, which
                                       instrumentations are active; the configured health checks run
                                       once; the running application's circuit breakers and their state;
                                       which fast paths are on
    amas-otel collector build|validate|run   build amas-otelcol; check or run a collector configuration
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import urllib.parse
from collections.abc import Sequence

__all__ = ["main"]


def _cmd_config(args: argparse.Namespace) -> int:
    from amas_otel.config import load_settings

    from amas_otel.resource import describe_resource

    settings = load_settings()
    rows = settings.describe()
    resource = [(f"resource.{key}", value, source, "") for key, value, source in describe_resource(settings)]
    if args.json:
        print(json.dumps([dict(zip(("key", "value", "source", "env"), row)) for row in rows + resource], indent=2))
        return 0
    width = max(len(row[0]) for row in rows + resource)
    value_width = min(max(len(row[1]) for row in rows), 40)
    for key, value, source, env in rows:
        print(f"{key:<{width}}  {value:<{value_width}}  {source}" + (f"  [{env}]" if env and source == "default" else ""))
    if settings.files:
        print("\nfiles read: " + ", ".join(settings.files))
    print("\nresource (service identity, as configure() resolves it):")
    for key, value, source, _ in resource:
        print(f"{key:<{width}}  {value:<{value_width}}  {source}")
    return 0


def _cmd_project_root(args: argparse.Namespace) -> int:
    from amas_otel.config import OtelSettings
    from amas_otel.project_root import find_project_root, validate_project_structure
    from amas_otel.resource import build_resource

    root = find_project_root(args.path)
    print(root)
    if args.verbose:
        print(f"valid project structure: {validate_project_structure(root)}")
        for key, value in sorted(build_resource(OtelSettings(), project_root=root).attributes.items()):
            print(f"  {key} = {value}")
    return 0


def _tcp_reachable(host: str, port: int, timeout: float = 1.0) -> str | None:
    """None when a TCP connection succeeds, else the reason it did not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def _cmd_doctor(args: argparse.Namespace) -> int:
    from amas_otel.config import load_settings

    settings = load_settings()
    otel = settings.otel
    problems = 0

    def report(ok: bool, text: str) -> None:
        nonlocal problems
        problems += not ok
        print(("ok    " if ok else "FAIL  ") + text)

    uses_otlp = any("otlp" in otel.exporters(signal) for signal in ("traces", "metrics", "logs"))
    if uses_otlp:
        url = urllib.parse.urlsplit(otel.otlp_signal_endpoint("traces"))
        port = url.port or (443 if url.scheme == "https" else 80)
        reason = _tcp_reachable(url.hostname or "127.0.0.1", port)
        report(reason is None, f"collector at {url.hostname}:{port} ({otel.otlp_protocol})" + (f": {reason}" if reason else " is reachable"))
    else:
        print("info  no OTLP exporter configured: metrics on the embedded Prometheus endpoint, logs on stdout")

    from amas_otel.doctor import breaker_states, run_configured_checks

    metrics_url = args.metrics_url
    breakers = None
    if "prometheus" in otel.exporters("metrics"):
        host, port = settings.metrics.prometheus_host, settings.metrics.prometheus_port
        shown_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        metrics_url = metrics_url or f"http://{shown_host}:{port}{settings.metrics.prometheus_path}"
        try:
            with socket.socket() as probe:
                probe.bind((host, port))
            report(True, f"Prometheus port {host}:{port} is free (metrics at {settings.metrics.prometheus_path})")
        except OSError as exc:
            # Taken by the running application itself is fine: it answers with its metrics.
            breakers = breaker_states(metrics_url)
            if breakers is None:
                report(False, f"Prometheus port {host}:{port} is taken ({exc.strerror}); set PROMETHEUS_PORT")
            else:
                report(True, f"Prometheus port {host}:{port} is in use by an application serving its metrics at {metrics_url}")

    for verdict, text in run_configured_checks(settings):
        if verdict in ("ok", "FAIL"):
            report(verdict == "ok", text)
        else:
            print(f"{verdict:<6}{text}")

    if metrics_url is None:
        print("info  circuit breakers: metrics go to OTLP only; pass --metrics-url (the collector's Prometheus "
              "exporter, e.g. http://127.0.0.1:8889/metrics, or the app's /metrics)")
    else:
        if breakers is None:
            breakers = breaker_states(metrics_url)
        if breakers is None:
            print(f"info  circuit breakers: no application answers at {metrics_url} (start it, or pass --metrics-url)")
        elif not breakers:
            print(f"info  circuit breakers: none reported at {metrics_url}")
        for name, state in sorted((breakers or {}).items()):
            print(f"{'info' if state == 'closed' else 'warn':<6}circuit breaker {name}: {state}")

    from importlib.metadata import entry_points

    from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

    for entry_point in sorted(entry_points(group="opentelemetry_instrumentor"), key=lambda e: e.name):
        conflict = get_dist_dependency_conflicts(entry_point.dist) if entry_point.dist else None
        state = f"inactive: {conflict}" if conflict else "active under amas-otel-instrument"
        print(f"info  instrumentation {entry_point.name}: {state}")

    from amas_otel._fastpath import check_all

    # What configure() would decide here: on, or off and why (the public API then serves).
    for name, path in sorted(check_all().items()):
        print(f"info  fast path {name}: {path.reason}")
    return 1 if problems else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="amas-otel", description="Inspect and operate amas-otel telemetry.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    config = commands.add_parser("config", help="show the resolved settings and where each came from")
    config.add_argument("--json", action="store_true", help="print JSON instead of a table")
    config.set_defaults(func=_cmd_config)

    root = commands.add_parser("project-root", help="show the detected project root")
    root.add_argument("path", nargs="?", default=None, help="start directory (default: the working directory)")
    root.add_argument("-v", "--verbose", action="store_true", help="also show the resource attributes it yields")
    root.set_defaults(func=_cmd_project_root)

    doctor = commands.add_parser(
        "doctor",
        help="check the collector, the Prometheus port, instrumentations; run the configured health checks once; "
        "list the running application's circuit breakers",
    )
    doctor.add_argument(
        "--metrics-url",
        default=None,
        help="where the running application's metrics are read for its circuit breakers "
        "(default: the embedded endpoint; e.g. the app's /metrics or the collector's Prometheus exporter)",
    )
    doctor.set_defaults(func=_cmd_doctor)

    from amas_otel.collector import register_cli

    register_cli(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from amas_otel.config import ConfigError
    from amas_otel.project_root import ProjectRootError

    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, ProjectRootError) as exc:
        print(f"amas-otel {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
