"""Helpers the tests share: loopback servers, receivers and ports."""

from __future__ import annotations

import signal
import socket
import subprocess

__all__ = ["free_port", "terminate"]


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def terminate(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM (a server flushes its telemetry and exits), SIGKILL when it has not exited after ``timeout`` s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
