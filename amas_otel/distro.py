"""Entry points that make the stock ``opentelemetry-instrument`` use amas-otel.

Registered as ``opentelemetry_distro`` and ``opentelemetry_configurator``
named ``amas_otel``; select them with ``OTEL_PYTHON_DISTRO=amas_otel`` and
``OTEL_PYTHON_CONFIGURATOR=amas_otel`` (``amas-otel-instrument`` sets both).
"""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

import wrapt
from opentelemetry.instrumentation.distro import BaseDistro
from opentelemetry.sdk._configuration import _BaseConfigurator

__all__ = ["AmasDistro", "AmasConfigurator"]


class AmasDistro(BaseDistro):
    """Loads instrumentors with amas-otel's lean defaults.

    FastAPI applications get :func:`amas_otel.fastapi.instrument_fastapi`
    (one SERVER span and one duration measurement per request from a single
    pure-ASGI middleware) instead of OpenTelemetry's ``FastAPIInstrumentor``,
    whose generic ASGI middleware costs several times as much per request.
    ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=fastapi`` turns it off like any other.
    """

    def _configure(self, **kwargs: Any) -> None:
        # Settings come from amas_otel.config when the configurator runs.
        pass

    def load_instrumentor(self, entry_point: EntryPoint, **kwargs: Any) -> None:
        if entry_point.name == "fastapi":
            # Once the program imports FastAPI, not now: importing it (with Starlette
            # and AnyIO) before the program starts would also come before pytest
            # can rewrite the assertions of plugins such as anyio's
            # (PytestAssertRewriteWarning, an error under filterwarnings=error), and
            # costs start-up time in programs that never use it.
            wrapt.register_post_import_hook(_instrument_fastapi, "fastapi")
            return
        entry_point.load()().instrument(**kwargs)


def _instrument_fastapi(module: Any) -> None:
    from amas_otel.fastapi import instrument_fastapi

    instrument_fastapi()


class AmasConfigurator(_BaseConfigurator):
    """Runs :func:`amas_otel.configure` when auto-instrumentation starts."""

    def _configure(self, **kwargs: Any) -> None:
        from amas_otel.sdk import configure

        configure()
