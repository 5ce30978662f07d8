"""Serve an ASGI app with a real uvicorn server on a loopback port, in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


@contextmanager
def serve(app: Any, *, timeout: float = 10.0, **config: Any) -> Iterator[str]:
    """Run ``app`` on 127.0.0.1 (port chosen by the OS); yield its base URL.

    ``config`` adds or overrides ``uvicorn.Config`` options (e.g. ``backlog``).
    """
    # proxy_headers=False: uvicorn would otherwise rewrite the client address from
    # X-Forwarded-For itself for loopback peers, hiding what the app decides.
    options = {"log_level": "warning", "lifespan": "on", "access_log": False, "proxy_headers": False, **config}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
