"""A server process on a free loopback port for the benchmarks: start it, wait until it answers, stop it.

>>> port = free_port()
>>> with loopback_server([*uvicorn_argv, *listen_on(port)], f"http://127.0.0.1:{port}/api/data", env=env) as server:
...     load(port)                     # server.process, server.logs (the output, in a file)
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

__all__ = ["Server", "ServerDidNotStart", "free_port", "listen_on", "loopback_server"]


class ServerDidNotStart(RuntimeError):
    """The process exited or never answered; ``last_line`` is the last line it wrote."""

    def __init__(self, argv: list[str], output: str) -> None:
        lines = output.strip().splitlines()
        self.last_line = lines[-1] if lines else "no output"
        super().__init__(f"{' '.join(argv[:4])} … did not start: {output[-500:]}")


@dataclass(frozen=True)
class Server:
    process: subprocess.Popen[bytes]
    #: Everything the server wrote; a file, because a pipe nobody reads would block the server once full.
    logs: IO[bytes]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listen_on(port: int) -> list[str]:
    """uvicorn's options for listening on ``port`` of the loopback address."""
    return ["--host", "127.0.0.1", "--port", str(port)]


@contextmanager
def loopback_server(
    argv: list[str], ready_url: str, *, env: dict[str, str], cwd: str | os.PathLike[str] | None = None, timeout: float = 30.0
) -> Iterator[Server]:
    """Run ``argv`` until the block ends; ready once ``ready_url`` answers 200 (at most ``timeout`` s)."""
    with tempfile.TemporaryFile() as logs:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=logs, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while not _answers(ready_url):
                if process.poll() is not None or time.monotonic() > deadline:
                    logs.seek(0)
                    raise ServerDidNotStart(argv, logs.read().decode(errors="replace"))
                time.sleep(0.1)
            yield Server(process, logs)
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _answers(url: str) -> bool:
    try:
        # The first request may be slow (an instrumented app's first span, a cold import).
        with urllib.request.urlopen(url, timeout=15) as response:
            response.read()
            return response.status == 200
    except OSError:
        return False
