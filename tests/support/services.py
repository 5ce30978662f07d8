"""Throwaway PostgreSQL and Redis servers for the test session.

Each server runs from Debian's binaries (installed by ``./scripts/test``) on a free
loopback port, with its data in a temporary directory, and is stopped and deleted
when the session ends, so no run shares state with another or with a machine-wide
service.  ``AMAS_TEST_POSTGRES_DSN`` and ``AMAS_TEST_REDIS_URL`` point the tests at
existing servers instead.  A server that cannot be started is an error naming what
is missing, never a skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support import free_port

__all__ = ["ServiceUnavailable", "postgres_server", "redis_server"]

_START_TIMEOUT_SECONDS = 30.0
_INSTALL_HINT = "install it with `apt-get install {package}` (./scripts/test does so when run as root)"


class ServiceUnavailable(RuntimeError):
    """A test service could not be started; the message says what is missing."""


def _postgres_bindir() -> Path:
    """The directory holding initdb and postgres: ``AMAS_TEST_PG_BINDIR``, Debian's newest, or PATH."""
    candidates = [os.environ.get("AMAS_TEST_PG_BINDIR", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda path: int(path.split("/")[-2]), reverse=True)
    found = shutil.which("initdb")
    candidates.append(str(Path(found).parent) if found else "")
    for candidate in filter(None, candidates):
        if (Path(candidate) / "initdb").is_file() and (Path(candidate) / "postgres").is_file():
            return Path(candidate)
    raise ServiceUnavailable("PostgreSQL's initdb and postgres were not found; " + _INSTALL_HINT.format(package="postgresql"))


def _service_user() -> dict[str, object]:
    """PostgreSQL refuses to run as root: as root, run it as Debian's ``postgres`` user.

    ``Popen(user=...)`` switches user in the child itself, so signals reach PostgreSQL
    directly (a ``runuser`` wrapper would not pass on SIGINT, orphaning the server)."""
    if os.geteuid() != 0:
        return {}
    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        raise ServiceUnavailable("running as root, and there is no 'postgres' user to run PostgreSQL as") from None
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def _wait_until(ready: Callable[[], bool], what: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceUnavailable(f"{what} exited with status {process.returncode} while starting:\n{_tail(log)}")
        if ready():
            return
        time.sleep(0.05)
    raise ServiceUnavailable(f"{what} did not accept connections within {_START_TIMEOUT_SECONDS:.0f}s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen, stop_signal: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(stop_signal)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def postgres_server() -> Iterator[str]:
    """A fresh PostgreSQL cluster on a loopback port; yields the DSN of its ``test`` database."""
    import psycopg

    bindir = _postgres_bindir()
    as_user = _service_user()
    workdir = Path(tempfile.mkdtemp(prefix="amas-test-postgres-"))
    try:
        if as_user:
            os.chown(workdir, as_user["user"], as_user["group"])
        data, log, port = workdir / "data", workdir / "server.log", free_port()
        subprocess.run(
            [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"],
            check=True,
            capture_output=True,
            text=True,
            cwd=workdir,
            **as_user,
        )
        with open(log, "wb") as log_file:
            process = subprocess.Popen(
                [
                    str(bindir / "postgres"), "-D", str(data), "-p", str(port),
                    "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={workdir}",
                    "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                **as_user,
            )
        try:
            admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"

            def accepts() -> bool:
                try:
                    psycopg.connect(admin, connect_timeout=1).close()
                    return True
                except psycopg.OperationalError:
                    return False

            _wait_until(accepts, f"PostgreSQL ({bindir / 'postgres'})", process, log)
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute("CREATE DATABASE test")
            yield f"postgresql://postgres@127.0.0.1:{port}/test"
        finally:
            _stop(process, signal.SIGINT)  # PostgreSQL's fast shutdown: it does not wait for clients to leave
    except subprocess.CalledProcessError as exc:
        raise ServiceUnavailable(f"initdb failed ({exc.returncode}): {exc.stderr or exc.stdout}") from exc
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def redis_server() -> Iterator[str]:
    """A fresh Redis on a loopback port, without persistence; yields its URL."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceUnavailable("redis-server was not found; " + _INSTALL_HINT.format(package="redis-server"))
    workdir = Path(tempfile.mkdtemp(prefix="amas-test-redis-"))
    try:
        log, port = workdir / "server.log", free_port()
        with open(log, "wb") as log_file:
            process = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir), "--save", "", "--appendonly", "no"],
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            url = f"redis://127.0.0.1:{port}/0"

            def accepts() -> bool:
                try:
                    with redis.Redis.from_url(url, socket_timeout=1) as client:
                        return bool(client.ping())
                except redis.ConnectionError:
                    return False

            _wait_until(accepts, f"Redis ({binary})", process, log)
            yield url
        finally:
            _stop(process)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
