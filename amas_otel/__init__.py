"""amas-otel: OpenTelemetry-native observability and resilience for Python services.

>>> import amas_otel
>>> amas_otel.configure()          # providers, exporters, resource — once
>>> tracer = amas_otel.get_tracer(__name__)
>>> log = amas_otel.get_logger(__name__, component="billing")
"""

from __future__ import annotations

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("amas-otel")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"

from amas_otel.config import ConfigError, Settings, get_settings, load_settings
from amas_otel.logging import get_logger
from amas_otel.sdk import configure, shutdown
from amas_otel.tracing import get_meter, get_tracer, traced

__all__ = [
    "__version__",
    "ConfigError",
    "Settings",
    "configure",
    "shutdown",
    "get_settings",
    "load_settings",
    "get_tracer",
    "get_meter",
    "get_logger",
    "traced",
]
