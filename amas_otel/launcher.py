"""``amas-otel-instrument``: run any Python program auto-instrumented by amas-otel.

::

    amas-otel-instrument uvicorn myapp:app --port 8000

Works like ``opentelemetry-instrument`` (and reuses it): the program starts
with every installed instrumentation (FastAPI, requests, …) enabled and
amas-otel's providers, exporters, logging and redaction configured.  The
configuration is checked before the program starts, so a bad setting stops
the launch with a message instead of a half-instrumented service.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from typing import NoReturn

__all__ = ["main", "launch_environment"]

_USAGE = """usage: amas-otel-instrument COMMAND [ARGS...]

Run COMMAND (a Python program: uvicorn, gunicorn, python app.py, ...) with
amas-otel auto-instrumentation.  Configuration comes from the environment
(OTEL_*, LOG_*, HEALTH_CHECK_*, CIRCUIT_BREAKER_*, PROMETHEUS_*, ...) and
config/*.yaml; see `amas-otel config` for the resolved values.

  -h, --help    show this message and exit
"""


def launch_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment variables the launched program gets, on top of ``environ``."""
    env = dict(os.environ if environ is None else environ)
    env.setdefault("OTEL_PYTHON_DISTRO", "amas_otel")
    env.setdefault("OTEL_PYTHON_CONFIGURATOR", "amas_otel")
    # Stable HTTP semantic conventions: http.server.request.duration in seconds.
    env.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    return env


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_USAGE, end="", file=sys.stdout if args else sys.stderr)
        raise SystemExit(0 if args else 2)
    if args[0].startswith("-"):
        print(f"amas-otel-instrument: unknown option {args[0]!r}\n\n{_USAGE}", end="", file=sys.stderr)
        raise SystemExit(2)
    if shutil.which(args[0]) is None and not os.path.exists(args[0]):
        print(f"amas-otel-instrument: command {args[0]!r} not found on PATH", file=sys.stderr)
        raise SystemExit(127)

    from amas_otel.config import ConfigError, load_settings

    try:
        load_settings()
    except ConfigError as exc:
        print(f"amas-otel-instrument: configuration error, not starting {args[0]!r}:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None

    os.environ.update(launch_environment())
    from opentelemetry.instrumentation.auto_instrumentation import run

    sys.argv = ["amas-otel-instrument", *args]
    run()
    raise SystemExit(0)  # run() execs the command; reaching here means it returned
