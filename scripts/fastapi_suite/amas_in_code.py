"""pytest plugin for scripts/fastapi-suite's in-code run: what an application does with amas-otel in code.

``amas_otel.configure()`` once, then ``instrument_app(app, metrics_path="", health=False)`` on every
``fastapi.FastAPI`` the suite creates, right after its ``__init__`` (routes, middleware and handlers the
test adds later come after, as in an application).  Loaded with ``-p amas_in_code``.

FastAPI is patched when it is imported (a post-import hook), never imported here: importing it before
pytest has registered its plugins would keep pytest from rewriting their assertions.
"""

from __future__ import annotations

from typing import Any

import wrapt

__all__ = ["pytest_configure"]


def _patch(module: Any) -> None:
    from amas_otel.fastapi import instrument_app

    cls = module.FastAPI
    original = cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        instrument_app(self, metrics_path="", health=False)

    cls.__init__ = __init__


def pytest_configure(config: Any) -> None:
    import amas_otel

    amas_otel.configure()
    wrapt.register_post_import_hook(_patch, "fastapi")
