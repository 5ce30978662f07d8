"""SDK wiring: providers, exporters, the Prometheus pull endpoint, bounded shutdown.

Only this module touches the OpenTelemetry *SDK*; everything else in amas-otel
talks to the API (``opentelemetry.trace``, ``opentelemetry.metrics``…), so it
works unchanged, as no-ops, when the SDK is disabled or configured elsewhere.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from os import PathLike
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, ConsoleLogRecordExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace import sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from amas_otel._sanitize import RecordIsolatingLogExporter
from amas_otel._sanitize import register as register_sanitize_counts
from amas_otel.config import ConfigError, OtelSettings, Settings, load_settings, set_active_settings
from amas_otel.resource import build_resource

__all__ = [
    "configure",
    "configure_on_first_use",
    "add_hooks",
    "flush",
    "shutdown",
    "is_configured",
    "prometheus_endpoint",
]

_log = logging.getLogger("amas_otel")

#: Hooks run as ``hook(settings, state)`` once the providers exist and amas-otel's
#: own logging, redaction and correlation are wired (:func:`_wire_capabilities`),
#: before the exporting processors are attached and before the providers become
#: global: processors a hook adds see every span and record first, and a hook
#: that raises leaves nothing configured.
_on_configure: list[Callable[[Settings, "_State"], None]] = []
#: Hooks run as ``hook(error)`` when configuring on first use fails on bad
#: settings, after logging made itself safe without them (a pipeline at a
#: stricter redaction level): the application keeps running.
_on_first_use_error: list[Callable[[Exception], None]] = []


@dataclass
class _State:
    settings: Settings
    resource: Resource
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    logger_provider: LoggerProvider | None = None
    prometheus_server: WSGIServer | None = None
    prometheus_url: str | None = None
    shut_down: bool = False
    #: The entry point whose first use configured the process; None for an explicit configure().
    first_use: str | None = None
    #: A flush that ran out of time and may still be exporting (to a collector that does not answer).
    stuck_flush: threading.Thread | None = None


_lock = threading.RLock()
_state: _State | None = None
# True once the first-use decision is taken (configured, set up elsewhere, or failed): the fast path.
_first_use_settled = False
_first_use_running: str | None = None  # the entry point configuring right now


def add_hooks(
    *,
    on_configure: Callable[[Settings, "_State"], None] | None = None,
    on_first_use_error: Callable[[Exception], None] | None = None,
) -> None:
    """Register an extension's hooks (once each), run after amas-otel's own pieces: see ``_on_configure`` and ``_on_first_use_error``."""
    for hooks, hook in ((_on_configure, on_configure), (_on_first_use_error, on_first_use_error)):
        if hook is not None and hook not in hooks:
            hooks.append(hook)


def is_configured() -> bool:
    """True once :func:`configure` has set up the providers (and until :func:`shutdown`)."""
    return _state is not None and not _state.shut_down


def prometheus_endpoint() -> str | None:
    """URL of the embedded Prometheus endpoint, when it is serving."""
    return _state.prometheus_url if _state else None


def configure(
    *,
    service_name: str | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    config_files: Iterable[str | PathLike[str]] | None = None,
    settings: Settings | None = None,
) -> Settings:
    """Set up tracing, metrics and logs for this process, once.

    Settings are resolved by :func:`amas_otel.config.load_settings` (explicit
    ``overrides`` > environment > YAML > defaults) unless ``settings`` is given.
    Calling again with the same resolved settings returns them and does
    nothing; calling with different ones raises :class:`RuntimeError`, since
    OpenTelemetry's global providers can be set only once per process.
    Telemetry failures (a port in use, no collector) are logged, never raised;
    configuration errors raise :class:`~amas_otel.config.ConfigError` before
    anything is changed.
    """
    global _state, _first_use_settled
    if settings is None:
        merged = {section: dict(values) for section, values in (overrides or {}).items()}
        if service_name is not None:
            merged.setdefault("otel", {})["service_name"] = service_name
        settings = load_settings(merged, config_files=config_files)
    with _lock:
        if _state is not None:
            if _state.shut_down:
                raise RuntimeError("amas_otel was shut down; configure() can set providers up once per process")
            if settings != _state.settings:
                how = (
                    f"on the first use of {_state.first_use}, from the environment and config files"
                    if _state.first_use
                    else "with other settings"
                )
                raise RuntimeError(
                    f"amas_otel is already configured {how}; OpenTelemetry providers can be set only once "
                    "per process: call amas_otel.configure(...) before any other amas_otel call, or give "
                    "these settings as environment variables or in config/*.yaml"
                )
            return _state.settings
        from amas_otel._fastpath import check_all

        check_all()  # each fast path on only if its versions were tested and its self-test passes
        state = _build(settings)
        state.first_use = _first_use_running
        try:
            # Logging, redaction and correlation are set up before the exporting
            # processors below, so those see spans and records already cleaned;
            # settings they reject leave nothing set up.
            _wire_capabilities(settings, state)
            for hook in list(_on_configure):
                hook(settings, state)
        except BaseException:
            _stop(state, 0.5)
            raise
        _attach_exporters(state)
        _publish(state)
        # A pre-forking server (gunicorn --preload) runs this in the master.
        from amas_otel._fastpath.fork import refresh_process_after_fork

        refresh_process_after_fork(state.tracer_provider, state.meter_provider, state.logger_provider)
        _state = state
        _first_use_settled = True
        set_active_settings(settings)
        atexit.register(shutdown)
        # atexit never runs when a terminating signal's default action ends the
        # process (uvicorn re-raises SIGTERM with it once it has stopped serving).
        from amas_otel.signals import shutdown_on_signals

        shutdown_on_signals()
        _log.debug(
            "amas_otel configured: service.name=%s, traces=%s, metrics=%s, logs=%s, prometheus=%s, by %s",
            state.resource.attributes.get("service.name"),
            ",".join(settings.otel.exporters("traces")) or "none",
            ",".join(settings.otel.exporters("metrics")) or "none",
            ",".join(settings.otel.exporters("logs")) or "stdout only",
            state.prometheus_url or "off",
            f"the first use of {state.first_use}" if state.first_use else "configure()",
        )
        return settings


def configure_on_first_use(entry_point: str) -> None:
    """What every amas_otel entry point calls first: :func:`configure` from the resolved settings, once.

    ``entry_point`` names the caller (``"get_logger"``…) for messages.  Nothing
    happens when the process is configured already, or when the application
    set up OpenTelemetry itself (a global tracer provider exists): then only
    the capabilities that need no providers (logging and its redaction) set
    themselves up on their own first use.  Bad settings do not stop the
    application: they are logged once, naming every problem, telemetry stays
    off, and each capability makes itself safe through ``_on_first_use_error``
    hooks.  Thread-safe: a caller racing the first configuration waits for it.
    """
    global _first_use_settled, _first_use_running
    if _first_use_settled:
        return
    with _lock:
        if _first_use_settled or _first_use_running:  # done, or re-entered from a configure hook
            return
        _first_use_running = entry_point
        try:
            if _state is None and isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
                configure()
        except Exception as exc:  # noqa: BLE001 - telemetry set-up must not take the application down
            from amas_otel.logging.pipeline import configure_without_settings

            configure_without_settings(exc)
            for hook in list(_on_first_use_error):
                hook(exc)
            _log.error(
                "amas_otel: not configured, telemetry is off (first use of %s): %s; "
                "run `amas-otel config` to see every setting",
                entry_point,
                exc,
            )
        finally:
            _first_use_running = None
            _first_use_settled = True


def _wire_capabilities(settings: Settings, state: _State) -> None:
    """amas-otel's own pieces on the new providers, in one visible place.

    Redaction needs nothing here: the providers were built with
    RedactingSpanProcessor / RedactingLogRecordProcessor as their chains
    (:func:`_build`), and configuring logging installs the redactor they use
    (and validates ``LOG_REDACT_PATTERNS`` now: a bad pattern fails
    configure(), not a later export).  Logging then adds the correlation span
    processor.  Imported here: those modules import this one for
    :func:`configure_on_first_use`.
    """
    from amas_otel.logging.pipeline import configure_from_sdk

    configure_from_sdk(
        settings,
        tracer_provider=state.tracer_provider,
        logger_provider=state.logger_provider,
        meter_provider=state.meter_provider,
        first_use=state.first_use is not None,
    )


def _build(settings: Settings) -> _State:
    """Providers for ``settings``, not yet global and with no span or log exporters."""
    otel = settings.otel
    state = _State(settings=settings, resource=build_resource(otel))
    if otel.sdk_disabled:
        return state

    readers: list[MetricReader] = []
    for name in otel.exporters("metrics"):
        if name == "prometheus":
            readers.append(_start_prometheus(settings, state))
        else:
            readers.append(
                PeriodicExportingMetricReader(
                    _metric_exporter(name, otel),
                    # The SDK's own variables win; the AMAS ones are the fallback.
                    export_interval_millis=otel.metric_export_interval or settings.metrics.custom_metrics_interval * 1000,
                    export_timeout_millis=otel.metric_export_timeout or otel.otlp_timeout * 1000,
                )
            )
    from amas_otel.metrics import metric_views
    from amas_otel.redaction import RedactingLogRecordProcessor, RedactingSpanProcessor

    # Every processor added to these providers gets spans and records redacted (amas_otel.redaction).
    state.tracer_provider = TracerProvider(
        resource=state.resource,
        sampler=_sampler(otel),
        shutdown_on_exit=False,
        active_span_processor=RedactingSpanProcessor(),
    )
    state.meter_provider = MeterProvider(
        resource=state.resource,
        metric_readers=readers,
        views=metric_views(settings.metrics.cardinality_limit),
        shutdown_on_exit=False,
    )
    state.logger_provider = LoggerProvider(
        resource=state.resource, shutdown_on_exit=False, multi_log_record_processor=RedactingLogRecordProcessor()
    )
    return state


def _attach_exporters(state: _State) -> None:
    otel = state.settings.otel
    if state.tracer_provider is not None:
        for name in otel.exporters("traces"):
            state.tracer_provider.add_span_processor(_span_processor(name, otel))
    if state.logger_provider is not None:
        for name in otel.exporters("logs"):
            # A record the exporter cannot encode costs that record, not the batch (see _sanitize).
            exporter = RecordIsolatingLogExporter(_log_exporter(name, otel))
            state.logger_provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    if state.meter_provider is not None:
        register_sanitize_counts(state.meter_provider)


def _publish(state: _State) -> None:
    if state.tracer_provider is None:
        return
    trace.set_tracer_provider(state.tracer_provider)
    metrics.set_meter_provider(state.meter_provider)
    set_logger_provider(state.logger_provider)
    _quiet_exporter_logs()


# --- exporters --------------------------------------------------------------


def _otlp_kwargs(otel: OtelSettings, signal: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "endpoint": otel.otlp_signal_endpoint(signal),
        "headers": dict(otel.otlp_headers or {}),
        "timeout": otel.otlp_timeout,
    }
    if otel.otlp_protocol == "grpc":
        kwargs["insecure"] = urllib.parse.urlsplit(kwargs["endpoint"]).scheme == "http"
    return kwargs


def _span_processor(name: str, otel: OtelSettings) -> BatchSpanProcessor:
    if name == "console":
        return BatchSpanProcessor(ConsoleSpanExporter())
    if otel.otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return BatchSpanProcessor(OTLPSpanExporter(**_otlp_kwargs(otel, "traces")))
    # The SDK's HTTP exporter with a direct protobuf encoder (the same bytes for
    # a fraction of the CPU), fed spans encoded as they end, while that fast path
    # is on: see amas_otel._fastpath.otlp_spans.  Else the SDK's own.
    from amas_otel._fastpath.otlp_spans import SPAN_EXPORT, EncodingBatchSpanProcessor, FastOTLPSpanExporter

    if SPAN_EXPORT.enabled():
        return EncodingBatchSpanProcessor(FastOTLPSpanExporter(**_otlp_kwargs(otel, "traces")))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTPSpanExporter

    return BatchSpanProcessor(HTTPSpanExporter(**_otlp_kwargs(otel, "traces")))


def _metric_exporter(name: str, otel: OtelSettings) -> Any:
    if name == "console":
        return ConsoleMetricExporter()
    if otel.otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    return OTLPMetricExporter(**_otlp_kwargs(otel, "metrics"))


def _log_exporter(name: str, otel: OtelSettings) -> Any:
    if name == "console":
        return ConsoleLogRecordExporter()
    if otel.otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    return OTLPLogExporter(**_otlp_kwargs(otel, "logs"))


def _sampler(otel: OtelSettings) -> sampling.Sampler:
    ratio = 1.0 if otel.traces_sampler_arg is None else otel.traces_sampler_arg
    root = {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "traceidratio": sampling.TraceIdRatioBased(ratio),
    }[otel.traces_sampler.removeprefix("parentbased_")]
    return sampling.ParentBased(root) if otel.traces_sampler.startswith("parentbased_") else root


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # a scrape every few seconds is not news


class _ThreadingWSGIServer(WSGIServer):
    daemon_threads = True

    def process_request(self, request: Any, client_address: Any) -> None:
        # One thread per scrape, so a slow scraper never blocks another.
        thread = threading.Thread(target=self._serve_one, args=(request, client_address), daemon=True)
        thread.start()

    def _serve_one(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - a broken scrape must not reach the app
            pass
        finally:
            self.shutdown_request(request)


def _start_prometheus(settings: Settings, state: _State) -> MetricReader:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import REGISTRY, make_wsgi_app

    reader = PrometheusMetricReader()
    metrics_app = make_wsgi_app(REGISTRY)
    path = settings.metrics.prometheus_path

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != path:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [f"metrics are served at {path}\n".encode()]
        return metrics_app(environ, start_response)

    host, port = settings.metrics.prometheus_host, settings.metrics.prometheus_port
    try:
        server = make_server(host, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    except OSError as exc:
        _log.warning(
            "amas_otel: cannot serve Prometheus metrics on %s:%s (%s); set PROMETHEUS_PORT to a free port "
            "or export through OTLP; the application carries on without the endpoint",
            host,
            port,
            exc.strerror or exc,
        )
        return reader
    threading.Thread(target=server.serve_forever, name="amas-otel-prometheus", daemon=True).start()
    state.prometheus_server = server
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    state.prometheus_url = f"http://{shown_host}:{server.server_port}{path}"
    return reader


class _EveryNSeconds(logging.Filter):
    """Let one record per logger through every ``interval`` seconds.

    An unreachable collector makes the OTLP exporters log on every batch, and
    hostile ``baggage`` headers make the propagator log on every request; one
    line a minute says the same without flooding the application's logs.
    """

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self._interval = interval
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        last = self._last.get(record.name)
        if last is not None and now - last < self._interval:
            return False
        self._last[record.name] = now
        return True


_exporter_filter = _EveryNSeconds()


def _quiet_exporter_logs() -> None:
    for name in list(logging.Logger.manager.loggerDict):
        if name.startswith(("opentelemetry.exporter.otlp", "opentelemetry.sdk._shared_internal", "opentelemetry.baggage")):
            logger = logging.getLogger(name)
            if _exporter_filter not in logger.filters:
                logger.addFilter(_exporter_filter)


# --- shutdown ---------------------------------------------------------------


def flush(timeout: float | None = None) -> bool:
    """Export every buffered span, log record and metric now, waiting at most ``timeout`` seconds.

    What a server's shutdown path calls (``instrument_app``'s ASGI lifespan
    does): the providers keep running, so a process that serves again (a test
    client, a second server) loses nothing.  ``timeout`` defaults to
    ``AMAS_SHUTDOWN_TIMEOUT_SECONDS``; True when everything was exported in time.
    """
    state = _state
    if state is None or state.shut_down:
        return True
    budget = state.settings.otel.shutdown_timeout if timeout is None else timeout
    deadline_ms = max(int(budget * 1000), 1)
    worker = _run_bounded(
        "amas-otel-flush",
        budget,
        (
            lambda: state.tracer_provider and state.tracer_provider.force_flush(deadline_ms),
            lambda: state.meter_provider and state.meter_provider.force_flush(deadline_ms),
            lambda: state.logger_provider and state.logger_provider.force_flush(deadline_ms),
        ),
    )
    if worker.is_alive():
        state.stuck_flush = worker
        _log.warning("amas_otel: telemetry did not flush within %.1fs", budget)
        return False
    return True


def shutdown(timeout: float | None = None) -> bool:
    """Flush and stop every provider, waiting at most ``timeout`` seconds.

    ``timeout`` defaults to ``AMAS_SHUTDOWN_TIMEOUT_SECONDS`` (1 s).  The stock
    SDK retries an unreachable collector for many seconds; here the flush runs
    in a daemon thread that is abandoned when time is up, so process exit is
    never held hostage by telemetry.  Returns True when everything flushed in time.
    """
    with _lock:
        state = _state
        if state is None or state.shut_down:
            return True
        state.shut_down = True
    budget = state.settings.otel.shutdown_timeout if timeout is None else timeout
    if state.stuck_flush is not None and state.stuck_flush.is_alive():
        # The server's shutdown path already spent the budget on a flush that is
        # still waiting for the collector: one budget for the whole exit.
        budget = 0.0
    finished = _stop(state, budget)
    if not finished:
        _log.warning("amas_otel: telemetry did not flush within %.1fs; the rest is dropped", budget)
    return finished


def _stop(state: _State, budget: float) -> bool:
    """Stop ``state``'s providers and endpoint in a daemon thread given ``budget`` seconds."""
    deadline_ms = max(int(budget * 1000), 1)
    worker = _run_bounded(
        "amas-otel-shutdown",
        budget,
        (
            lambda: state.tracer_provider and state.tracer_provider.shutdown(),
            lambda: state.meter_provider and state.meter_provider.shutdown(timeout_millis=deadline_ms),
            lambda: state.logger_provider and state.logger_provider.shutdown(),
            lambda: state.prometheus_server and (state.prometheus_server.shutdown(), state.prometheus_server.server_close()),
        ),
    )
    return not worker.is_alive()


def _run_bounded(name: str, budget: float, steps: Iterable[Callable[[], Any]]) -> threading.Thread:
    """Run ``steps`` in order in a daemon thread given ``budget`` seconds; the thread (alive: out of time).

    The thread is abandoned when time is up (the stock SDK retries an
    unreachable collector for many seconds): exit is never held hostage by telemetry.
    """

    def run_all() -> None:
        for step in steps:
            try:
                step()
            except Exception:  # noqa: BLE001 - flushing or stopping must not raise into atexit or a server
                _log.debug("amas_otel: error during %s", name, exc_info=True)

    worker = threading.Thread(target=run_all, name=name, daemon=True)
    worker.start()
    worker.join(budget)
    return worker
