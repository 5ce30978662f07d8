"""SIGTERM, as every rolling deploy and pod stop sends it, flushes the last batch.

Real uvicorn and gunicorn processes on loopback, a loopback OTLP receiver:
N requests, then SIGTERM; every span and log record of those requests and a
final metrics export must arrive, and the process must still end the way the
server meant it to (killed by SIGTERM, or gunicorn's master exiting 0).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO, free_port, python_env
from tests.support.asgi_server import serve_process
from tests.support.otlp import OtlpReceiver, attributes

BIN = Path(sys.executable).parent
REQUESTS = 20

# instrument_app and amas_otel.configure() called by the application itself.
_CONFIGURED_APP = textwrap.dedent(
    """
    import os
    import amas_otel
    from fastapi import FastAPI
    from amas_otel.fastapi import instrument_app
    from amas_otel.logging import get_logger

    amas_otel.configure()
    app = FastAPI()
    log = get_logger("shutdown-test")

    @app.get("/work/{n}")
    async def work(n: int):
        log.info("working", n=n)
        return {"n": n, "pid": os.getpid()}

    instrument_app(app, log_requests="all")
    """
)

# A plain FastAPI application: amas-otel-instrument does all the wiring.
_PLAIN_APP = textwrap.dedent(
    """
    import logging
    import os
    from fastapi import FastAPI

    app = FastAPI()
    log = logging.getLogger("shutdown-test")

    @app.get("/work/{n}")
    async def work(n: int):
        log.warning("working %d", n)
        return {"n": n, "pid": os.getpid()}
    """
)


def _environment(receiver: OtlpReceiver, tmp_path: Path, **extra: str) -> dict[str, str]:
    return python_env(
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]),
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_SERVICE_NAME="shutdown-test",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_LOGS_EXPORTER="otlp",
        PROMETHEUS_ENABLED="false",
        AMAS_CONFIG_FILES="",
        # Nothing leaves on a timer during the test: whatever arrives was flushed at shutdown.
        OTEL_BSP_SCHEDULE_DELAY="60000",
        OTEL_BLRP_SCHEDULE_DELAY="60000",
        AMAS_CUSTOM_METRICS_INTERVAL="600",
        AMAS_SHUTDOWN_TIMEOUT_SECONDS="5",
        **extra,
    )


def _serve_then_terminate(command: list[str], tmp_path: Path, env: dict[str, str], port: int) -> tuple[int, str, set[int]]:
    """Send REQUESTS requests (a connection each), SIGTERM the server, wait for it to exit.

    Returns the exit status, the output and the PIDs of the processes that served.
    """
    with serve_process(command, tmp_path, env, port) as process:
        served = set()
        for n in range(REQUESTS):
            answer = requests.get(f"http://127.0.0.1:{port}/work/{n}", timeout=5).json()
            assert answer["n"] == n
            served.add(answer["pid"])
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
        return process.returncode, output, served


def _work_spans(receiver: OtlpReceiver) -> list[tuple[int, int]]:
    """(request number, process.pid of the span's resource) of every request span received."""
    return sorted(
        (int(attributes(span.attributes)["url.path"].rsplit("/", 1)[1]), attributes(group.resource.attributes)["process.pid"])
        for request in receiver.of("/v1/traces")
        for group in request.resource_spans
        for scope in group.scope_spans
        for span in scope.spans
        if attributes(span.attributes).get("url.path", "").startswith("/work/")
    )


def _records(receiver: OtlpReceiver, text: str) -> int:
    return sum(1 for record in receiver.log_records() if text in record.body.string_value)


def _metric_export_pids(receiver: OtlpReceiver) -> set[int]:
    return {
        attributes(group.resource.attributes)["process.pid"]
        for request in receiver.of("/v1/metrics")
        for group in request.resource_metrics
    }


def _assert_delivered(receiver: OtlpReceiver, served: set[int]) -> None:
    # The receiver answered each export before the process exited: nothing to wait for.
    spans = _work_spans(receiver)
    assert [n for n, _ in spans] == list(range(REQUESTS))
    # Each span names the process that served it (gunicorn --preload: the worker, not the master).
    assert {pid for _, pid in spans} == served
    assert _records(receiver, "working") == REQUESTS
    assert "http.server.request.duration" in receiver.metric_names()
    # Every serving process sent its final metrics export.
    assert served <= _metric_export_pids(receiver)


def test_uvicorn_sigterm_flushes_instrument_app_telemetry(tmp_path: Path, otlp_receiver: OtlpReceiver) -> None:
    (tmp_path / "configured_app.py").write_text(_CONFIGURED_APP)
    port = free_port()
    command = [str(BIN / "uvicorn"), "configured_app:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    returncode, output, served = _serve_then_terminate(command, tmp_path, _environment(otlp_receiver, tmp_path), port)
    assert returncode == -signal.SIGTERM, output  # still ends the way uvicorn meant it to
    _assert_delivered(otlp_receiver, served)
    # One request line per request from instrument_app(log_requests="all") as well.
    assert _records(otlp_receiver, "request") >= REQUESTS


# With the lifespan, the application's shutdown path flushes; without it, the SIGTERM hook configure() installed.
@pytest.mark.parametrize("lifespan", ["on", "off"])
def test_launcher_sigterm_flushes_auto_instrumented_telemetry(tmp_path: Path, otlp_receiver: OtlpReceiver, lifespan: str) -> None:
    (tmp_path / "plain_app.py").write_text(_PLAIN_APP)
    port = free_port()
    command = [
        str(BIN / "amas-otel-instrument"),
        str(BIN / "uvicorn"), "plain_app:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        "--lifespan", lifespan,
    ]
    returncode, output, served = _serve_then_terminate(command, tmp_path, _environment(otlp_receiver, tmp_path), port)
    assert returncode == -signal.SIGTERM, output
    _assert_delivered(otlp_receiver, served)


@pytest.mark.parametrize("preload", [False, True], ids=["workers-import", "preload"])
def test_gunicorn_sigterm_flushes_every_worker(tmp_path: Path, otlp_receiver: OtlpReceiver, preload: bool) -> None:
    (tmp_path / "configured_app.py").write_text(_CONFIGURED_APP)
    port = free_port()
    command = [
        str(BIN / "gunicorn"), "configured_app:app", "--bind", f"127.0.0.1:{port}", "--workers", "2",
        "--worker-class", "uvicorn.workers.UvicornWorker", "--graceful-timeout", "20", "--log-level", "warning",
        *(["--preload"] if preload else []),
    ]
    returncode, output, served = _serve_then_terminate(command, tmp_path, _environment(otlp_receiver, tmp_path), port)
    assert returncode == 0, output  # gunicorn's master exits 0 after a graceful stop
    _assert_delivered(otlp_receiver, served)


# --- any other program: the SIGTERM hook amas_otel.configure() installs ----------------------

_PROGRAM = textwrap.dedent(
    """
    import signal, sys, time
    import amas_otel

    if sys.argv[1] == "own-handler":
        def own(signum, frame):
            print("own handler ran", flush=True)
            sys.exit(3)
        signal.signal(signal.SIGTERM, own)
    amas_otel.configure()
    tracer = amas_otel.get_tracer("program")
    jobs = amas_otel.get_meter("program").create_counter("program.jobs")
    for n in range({requests}):
        with tracer.start_as_current_span("job", attributes={{"url.path": f"/work/{{n}}"}}):
            jobs.add(1)
    print("ready", flush=True)
    time.sleep(60)
    """
).format(requests=REQUESTS)


def _run_program(tmp_path: Path, env: dict[str, str], mode: str) -> tuple[int, str, float]:
    """Start the program, SIGTERM it once it is ready; (returncode, output, seconds from SIGTERM to exit)."""
    (tmp_path / "program.py").write_text(_PROGRAM)
    process = subprocess.Popen(
        [sys.executable, "program.py", mode], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        lines = []
        for line in process.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if line.strip() == "ready":
                break
        else:
            raise AssertionError("".join(lines))
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
        return process.returncode, "".join(lines) + output, time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)


def _job_spans(receiver: OtlpReceiver) -> int:
    return sum(1 for span in receiver.spans() if span.name == "job")


def test_sigterm_flushes_a_plain_program_and_still_kills_it(tmp_path: Path, otlp_receiver: OtlpReceiver) -> None:
    returncode, output, _ = _run_program(tmp_path, _environment(otlp_receiver, tmp_path), "default")
    assert returncode == -signal.SIGTERM, output
    assert _job_spans(otlp_receiver) == REQUESTS
    assert "program.jobs" in otlp_receiver.metric_names()


def test_sigterm_hook_chains_the_programs_own_handler(tmp_path: Path, otlp_receiver: OtlpReceiver) -> None:
    returncode, output, _ = _run_program(tmp_path, _environment(otlp_receiver, tmp_path), "own-handler")
    # The program's handler decided: it ran and chose the exit status; its sys.exit ran atexit, which flushed.
    assert returncode == 3 and "own handler ran" in output, output
    assert _job_spans(otlp_receiver) == REQUESTS


def test_sigterm_flush_is_bounded_by_the_shutdown_timeout(tmp_path: Path, otlp_receiver: OtlpReceiver) -> None:
    from tests.support.health_servers import SilentServer

    black_hole = SilentServer()  # accepts the export and never answers
    try:
        env = _environment(otlp_receiver, tmp_path)
        env.update(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{black_hole.port}", AMAS_SHUTDOWN_TIMEOUT_SECONDS="1")
        returncode, output, seconds = _run_program(tmp_path, env, "default")
    finally:
        black_hole.close()
    assert returncode == -signal.SIGTERM, output
    assert seconds < 5, seconds  # 1 s budget, margin for a loaded machine; the SDK alone would retry for ~10 s
    assert "did not flush within 1.0s" in output, output


def test_one_shutdown_budget_for_the_lifespan_flush_and_the_signal_hook(tmp_path: Path, otlp_receiver: OtlpReceiver) -> None:
    from tests.support.health_servers import SilentServer

    (tmp_path / "configured_app.py").write_text(_CONFIGURED_APP)
    port = free_port()
    black_hole = SilentServer()  # the collector accepts and never answers: every flush runs out of time
    try:
        env = _environment(otlp_receiver, tmp_path)
        env.update(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{black_hole.port}", AMAS_SHUTDOWN_TIMEOUT_SECONDS="2")
        command = [str(BIN / "uvicorn"), "configured_app:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        with serve_process(command, tmp_path, env, port) as process:
            requests.get(f"http://127.0.0.1:{port}/work/1", timeout=5)
            sent = time.monotonic()
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=30)
            seconds = time.monotonic() - sent
    finally:
        black_hole.close()
    assert process.returncode == -signal.SIGTERM, output
    # The lifespan flush spends the 2 s; the signal hook's shutdown after it does not wait 2 s more.
    assert 1.5 < seconds < 3.5, seconds
