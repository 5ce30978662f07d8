"""Serve an ASGI app with a real uvicorn server on a loopback port: in a thread, or a server process."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
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


@contextmanager
def serve_process(command: list[str], cwd: Path, env: dict[str, str], port: int) -> Iterator[subprocess.Popen[str]]:
    """Run a server ``command`` (listening on 127.0.0.1:``port``) until its ``/docs`` answers; yield the process.

    Its output (stdout and stderr together) is the process's ``communicate()``; it is killed on the way out
    unless it has exited.
    """
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/docs", timeout=2)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    raise AssertionError(f"server did not start:\n{process.communicate()[0]}") from None
                time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
