"""Setting up the logging pipeline: structlog and the standard library's root logger, through one processor chain.

:func:`configure_logging` builds the chain from :mod:`amas_otel.logging.processors`
and :mod:`amas_otel.logging.bridge`, installs it for structlog loggers and
standard-library records (uvicorn, libraries) alike, and keeps what the audit
logger needs (:func:`active_pipeline`).  :func:`configure_from_sdk` is what
:func:`amas_otel.configure` calls with its providers.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any

import structlog

from amas_otel import semconv
from amas_otel.config import ConfigError, LoggingSettings, environment_setting, get_settings
from amas_otel.logging.bridge import OTelLogExport, record_counter
from amas_otel.logging.correlation import CorrelationSpanProcessor
from amas_otel.logging.processors import (
    CorrelationFields,
    ExceptionFields,
    RecordFields,
    RecordState,
    console_renderer,
    json_renderer,
)
from amas_otel.redaction import Redactor, SecurityLevel, configure_redaction

__all__ = [
    "LogLevel",
    "LogFormat",
    "LoggingConfig",
    "Pipeline",
    "RecordSteps",
    "configure_logging",
    "configure_from_sdk",
    "configure_without_settings",
    "active_pipeline",
    "ensure_logging",
    "get_logger",
    "route_server_loggers",
]

_log = logging.getLogger("amas_otel.logging")

Processor = Callable[[Any, str, Any], Any]


def _accepted(name: str) -> tuple[str, ...]:
    return next(f.metadata["choices"] for f in dataclasses.fields(LoggingSettings) if f.name == name)


#: The accepted ``LOG_LEVEL`` values, as the settings define them (:class:`LoggingConfig` takes these or their names).
LogLevel = enum.Enum("LogLevel", {value: value for value in _accepted("level")}, type=str, module=__name__)  # type: ignore[misc]
#: The accepted ``LOG_FORMAT`` values.
LogFormat = enum.Enum("LogFormat", {value.upper(): value for value in _accepted("format")}, type=str, module=__name__)  # type: ignore[misc]


@dataclass(frozen=True)
class LoggingConfig(LoggingSettings):
    """The ``LOG_*`` settings (:class:`~amas_otel.config.LoggingSettings`) plus what only code can give.

    ``allow_keys`` extends the ``maximum`` level's allow-list; ``stream`` is
    where lines go (default: ``sys.stdout``, the embedded default).  Every
    field is parsed as the settings are: strings or enum members, a bad value
    raises :class:`~amas_otel.config.ConfigError` naming it.
    """

    allow_keys: tuple[str, ...] = ()
    stream: IO[str] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        keys = self.allow_keys
        object.__setattr__(self, "allow_keys", (keys,) if isinstance(keys, str) else tuple(keys))

    @classmethod
    def from_settings(cls, settings: LoggingSettings | None = None) -> LoggingConfig:
        """The configuration described by ``LOG_*`` settings (``get_settings().logging`` by default)."""
        settings = get_settings().logging if settings is None else settings
        return cls(**{f: getattr(settings, f) for f in LoggingSettings.__dataclass_fields__})


@dataclass(frozen=True)
class Pipeline:
    """What :func:`configure_logging` installed."""

    config: LoggingConfig
    redactor: Redactor
    #: The whole chain, renderer last (the audit logger runs it itself: audit records bypass the level filter).
    processors: tuple[Processor, ...]
    stream: IO[str]
    handler: logging.Handler


class RecordSteps:
    """amas-otel's steps in one processor, for a chain with nothing of the user's between them.

    What ``[fields, correlation, exceptions, redaction, export]`` do one after
    the other, through the same step objects, with the record's time,
    context and span looked up once and handed to each rather than found
    again per step (structlog's idiom: the fast variant chosen once at set-up).
    ``correlation`` None leaves the trace ids and context values out.
    """

    def __init__(
        self,
        fields: RecordFields,
        correlation: CorrelationFields | None,
        exceptions: ExceptionFields,
        redaction: Processor,
        export: OTelLogExport,
        *,
        state: RecordState | None = None,
    ) -> None:
        self._fill = fields.fill
        self._correlate = None if correlation is None else correlation.fill
        self._exceptions = exceptions.__call__
        self._redact = redaction
        self._export = export.export
        self._state = RecordState() if state is None else state

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        now = time.time_ns()
        event_dict = self._fill(logger, method_name, event_dict, now)
        level = event_dict["level"]
        ctx, span, ids = self._state.current()
        if self._correlate is not None:
            event_dict = self._correlate(event_dict, ctx, ids)
        if "exc_info" in event_dict or "stack_info" in event_dict:  # the only keys ExceptionFields acts on
            event_dict = self._exceptions(logger, method_name, event_dict)
            # The ids it may have given the record (a server's report of a request's exception).
            ctx, span, ids = self._state.lookup(event_dict)
        event_dict = self._redact(logger, method_name, event_dict)
        self._export(event_dict, level, now, ctx, span, ids)
        return event_dict


_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error", "gunicorn.access")
_active: Pipeline | None = None
_root_level: int | None = None  # the root logger's level as amas-otel last set it


def active_pipeline() -> Pipeline | None:
    """The pipeline :func:`configure_logging` installed last, or None before it ran."""
    return _active


def configure_logging(
    config: LoggingSettings | None = None,
    *,
    processors: Iterable[Processor] = (),
    logger_provider: Any = None,
    meter_provider: Any = None,
) -> LoggingConfig:
    """Set up structlog and the standard library's root logger; may be called again to reconfigure.

    ``config`` defaults to :meth:`LoggingConfig.from_settings`.  ``processors``
    are your own structlog processors: they run after amas-otel's fields
    (level, timestamp, trace ids, context values, exceptions) and before
    redaction, export and rendering, so what they add is redacted and
    exported like the rest.  Records are exported through
    ``logger_provider`` and counted on ``meter_provider`` (default: the
    global OpenTelemetry providers).  Invalid patterns raise
    :class:`~amas_otel.config.ConfigError` before anything changes.
    """
    global _active, _root_level
    if config is None:
        config = LoggingConfig.from_settings()
    elif not isinstance(config, LoggingConfig):
        config = LoggingConfig.from_settings(config)
    redactor = Redactor(config.security_level, config.redact_patterns, allow_keys=config.allow_keys)
    user_processors = list(processors)
    configure_redaction(redactor)

    stream = config.stream or sys.stdout
    if config.enable_metrics:
        from opentelemetry.metrics import get_meter_provider

        record_counter.register(meter_provider or get_meter_provider())
    state = RecordState()
    fields = RecordFields(state=state)
    correlation = CorrelationFields(state=state) if config.enable_correlation else None
    exceptions = ExceptionFields(state=state)
    # This pipeline's redactor, bound: the lines follow configure_logging's
    # settings even while another redactor is the process's for a moment.
    redaction = redactor.structlog_processor
    export = OTelLogExport(
        logger_provider=logger_provider, counter=record_counter if config.enable_metrics else None, state=state
    )
    chain: list[Processor]
    if user_processors:
        # Bound ``__call__`` methods: calling an instance would go through its type's call slot first.
        chain = [fields.__call__, *([correlation.__call__] if correlation else [])]
        chain += [exceptions.__call__, *user_processors, redaction, export.__call__]
    else:
        chain = [RecordSteps(fields, correlation, exceptions, redaction, export, state=state).__call__]
    renderer = json_renderer().__call__ if config.format == "json" else console_renderer()
    level = getattr(logging, config.level)
    structlog.configure(
        processors=[*chain, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_LoggerFactory(stream),
        cache_logger_on_first_use=True,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *chain],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    if _active is not None:
        root.removeHandler(_active.handler)
    root.addHandler(handler)
    if root.level in (logging.WARNING, _root_level):  # Python's default, or amas-otel's own
        root.setLevel(level)
        _root_level = level
    elif root.level != level:
        # The application set the root logger's level itself before: its choice stays, said once.
        _log.info(
            "amas_otel: the root logger's level %s, set by the application, is kept; LOG_LEVEL=%s applies to structlog loggers",
            logging.getLevelName(root.level),
            config.level,
        )
    _active = Pipeline(config, redactor, (*chain, renderer), stream, handler)
    route_server_loggers()
    return config


def configure_from_sdk(settings: Any, *, tracer_provider: Any, logger_provider: Any, meter_provider: Any, first_use: bool) -> None:
    """Logging, redaction and span correlation for :func:`amas_otel.configure`, on its providers.

    Configured on first use after the application called
    :func:`configure_logging` itself: its pipeline stays (exporting through
    the providers set up now), and so does its redactor for spans and the
    other signals.
    """
    kept = _active.config if first_use and _active is not None else None
    if kept is None:
        configure_logging(
            LoggingConfig.from_settings(settings.logging), logger_provider=logger_provider, meter_provider=meter_provider
        )
    else:
        configure_redaction(_active.redactor)  # type: ignore[union-attr]
    if (kept or settings.logging).enable_correlation and tracer_provider is not None:
        tracer_provider.add_span_processor(CorrelationSpanProcessor())


def route_server_loggers() -> None:
    """Route the servers' loggers (uvicorn, gunicorn) through amas-otel's pipeline, when it owns the root logger.

    :func:`configure_logging` does it; call again once the server has set its
    own handlers afterwards — uvicorn does when it starts, after
    ``amas-otel-instrument`` configured amas-otel: its handler would print
    tracebacks (exception messages, secrets included) unredacted.
    """
    if _active is None or _active.handler not in logging.getLogger().handlers:
        return  # the application's own logging set-up since: its choice
    for name in _UVICORN_LOGGERS:
        server_logger = logging.getLogger(name)
        if not server_logger.propagate and not server_logger.handlers:
            # Silenced by the server itself (uvicorn --no-access-log): routing
            # it to the root logger would turn those logs back on.
            continue
        server_logger.handlers.clear()
        server_logger.propagate = True


def get_logger(name: str | None = None, component: str | None = None) -> Any:
    """A structlog logger whose records carry ``logger=name`` and, when given, ``amas.component``.

    Safe before :func:`amas_otel.configure`: the logger's first use (its first
    record, ``bind``…) configures amas-otel from the resolved settings when
    nothing has yet (:func:`amas_otel.sdk.configure_on_first_use`), so no
    record is ever written unredacted.  Getting a logger does nothing, so
    module-level loggers leave an explicit ``configure(...)`` at start-up in charge.
    """
    return _FirstUseLogger((name,), {semconv.COMPONENT: component} if component else {})


class _FirstUseLogger:
    """What :func:`get_logger` returns: structlog's logger, once logging is set up.

    The first attribute asked for (``info``, ``bind``…) runs
    :func:`ensure_logging`, then comes from ``structlog.get_logger``; while
    structlog caches loggers on first use (as :func:`configure_logging` sets
    it to), the attribute is kept on this object, so later calls cost what a
    cached structlog logger costs.
    """

    def __init__(self, args: tuple[Any, ...], values: dict[str, Any]) -> None:
        self._args = args
        self._values = values

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        ensure_logging(f"get_logger({self._args[0]!r})")
        attribute = getattr(structlog.get_logger(*self._args, **self._values).bind(), name)
        if structlog.get_config()["cache_logger_on_first_use"]:
            self.__dict__[name] = attribute
        return attribute

    def __repr__(self) -> str:
        return f"<amas_otel logger {self._args[0]!r}{' ' + repr(self._values) if self._values else ''}>"


_first_use_lock = threading.Lock()


def ensure_logging(entry_point: str) -> None:
    """Set logging up before its first record: :func:`amas_otel.configure` on first use, else from the settings.

    Does nothing once :func:`configure_logging` has run (through
    ``configure()`` or called by the application).  When the application set
    up OpenTelemetry itself, logging is configured from the ``LOG_*`` settings
    on the global providers; when the settings are invalid, with stricter
    redaction than the default (see :func:`configure_without_settings`).
    """
    if _active is not None:
        return
    from amas_otel.sdk import configure_on_first_use

    configure_on_first_use(entry_point)
    with _first_use_lock:
        if _active is not None:
            return
        try:
            configure_logging(LoggingConfig.from_settings())
        except ConfigError as exc:
            configure_without_settings(exc)


def configure_without_settings(error: Exception) -> None:
    """Logging when the settings cannot be resolved (``error``): audit on, INFO, and redaction
    stricter than the default (fail closed): ``high``, or ``maximum`` when ``LOG_SECURITY_LEVEL`` says so.

    ``high`` rather than always ``maximum`` keeps the error that names the bad
    settings readable: ``maximum`` would blank every ``NAME: value`` in it.
    """
    del error  # the settings' problems are reported by whoever resolved them
    if _active is None:
        wanted = environment_setting(LoggingSettings, "security_level")
        level = SecurityLevel.MAXIMUM if wanted == SecurityLevel.MAXIMUM.value else SecurityLevel.HIGH
        configure_logging(LoggingConfig(security_level=level))


class _NamedWriteLogger(structlog.WriteLogger):
    """structlog's fast file logger, remembering the name given to :func:`get_logger`."""

    def __init__(self, file: IO[str], name: str | None) -> None:
        super().__init__(file)
        self.name = name


class _LoggerFactory:
    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        return _NamedWriteLogger(self._stream, args[0] if args and isinstance(args[0], str) else None)
