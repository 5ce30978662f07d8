"""Health check types: what one check observes, and how.

Every check is an object with ``async probe(timeout) -> dict``.  The dict's
optional ``"status"`` (healthy / degraded / unhealthy) and ``"message"`` are
the verdict; every other key is an observed value shown by
``/health/detailed``.  Raising means unhealthy.  The service
(:mod:`amas_otel.health.service`) bounds each probe by its timeout, retries
it, and turns the outcome into a :class:`HealthCheckResult`.

Blocking work (DB-API drivers, ``requests``, file systems) runs in a daemon
thread of its own, never on the event loop.  A check keeps at most one such
thread: while a call hangs, later attempts wait on that same call instead of
starting another, so a dependency that never answers costs one thread, not one
per probe.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import enum
import inspect
import os
import shutil
import socket
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import psutil

__all__ = [
    "HealthStatus",
    "HealthCheck",
    "DatabaseHealthCheck",
    "CacheHealthCheck",
    "ExternalAPIHealthCheck",
    "FileSystemHealthCheck",
    "MemoryHealthCheck",
    "DiskHealthCheck",
    "NetworkHealthCheck",
    "ServiceHealthCheck",
]


class HealthStatus(enum.StrEnum):
    """Verdict of one check or of the whole service; ``str()`` and f-strings give the value (``healthy``)."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"

    @property
    def ietf(self) -> str:
        """The IETF health-check draft's word: pass, warn or fail."""
        return _IETF[self]

    @classmethod
    def parse(cls, value: Any) -> HealthStatus:
        """Accept a :class:`HealthStatus` or its value (also ``pass``/``warn``/``fail``, ``ok``, any case)."""
        if isinstance(value, cls):
            return value
        text = str(value).strip().lower()
        found = _ALIASES.get(text)
        if found is None:
            raise ValueError(
                f"health status {value!r} is not one of healthy, degraded, unhealthy (or pass, warn, fail)"
            )
        return found


_IETF = {HealthStatus.HEALTHY: "pass", HealthStatus.DEGRADED: "warn", HealthStatus.UNHEALTHY: "fail"}
_ALIASES = {s.value: s for s in HealthStatus} | {v: s for s, v in _IETF.items()} | {
    "ok": HealthStatus.HEALTHY,
    "up": HealthStatus.HEALTHY,
    "down": HealthStatus.UNHEALTHY,
}


def _spawn(fn: Callable[[], Any], name: str) -> concurrent.futures.Future:
    """Run ``fn`` in a new daemon thread (with the caller's context, so spans nest)."""
    future: concurrent.futures.Future = concurrent.futures.Future()
    context = contextvars.copy_context()

    def target() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = context.run(fn)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting probe
            future.set_exception(exc)
        else:
            future.set_result(result)

    threading.Thread(target=target, name=f"amas-health-{name}", daemon=True).start()
    return future


class HealthCheck:
    """Base of every check.  Subclasses implement :meth:`probe`.

    ``type`` names the kind of dependency (``database``, ``cache``…), shown as
    the IETF ``componentType`` and the ``amas.health.check.type`` span attribute.
    """

    type: str = "service"

    def __init__(self) -> None:
        self._inflight: concurrent.futures.Future | None = None
        self._inflight_lock = threading.Lock()

    async def probe(self, timeout: float) -> dict[str, Any]:
        """Observe the dependency; ``timeout`` is the seconds this attempt may take."""
        raise NotImplementedError

    async def _blocking(self, fn: Callable[[], Any]) -> Any:
        """Await ``fn()`` run in this check's thread, joining a call still in flight."""
        with self._inflight_lock:
            future = self._inflight
            if future is None or future.done():
                future = self._inflight = _spawn(fn, self.type)
        # Cancelling the wrapper (timeout) leaves the running thread alone.
        return await asyncio.wrap_future(future)


# --- database -----------------------------------------------------------------


def _is_async_callable(func: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(getattr(func, "__call__", None))


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class DatabaseHealthCheck(HealthCheck):
    """Open a connection with ``connect`` and run a trivial query (``SELECT 1``).

    ``connect`` is a DB-API connection factory (``lambda: psycopg.connect(dsn)``;
    run in a thread) or an ``async def`` returning an async connection
    (``psycopg.AsyncConnection.connect``, asyncpg's ``connect``).  The
    connection is closed after the query.  Observed: ``query_seconds``.
    """

    type = "database"

    def __init__(self, connect: Callable[[], Any], *, query: str = "SELECT 1") -> None:
        super().__init__()
        if not callable(connect):
            raise TypeError(f"connect: expected a callable returning a database connection, got {connect!r}")
        self._connect = connect
        self._query = query

    async def probe(self, timeout: float) -> dict[str, Any]:
        started = time.perf_counter()
        if _is_async_callable(self._connect):
            row = await self._async_query()
        else:
            row = await self._blocking(self._sync_query)
        return {"message": "query succeeded", "query_seconds": round(time.perf_counter() - started, 6), "row": row}

    def _sync_query(self) -> Any:
        connection = self._connect()
        if inspect.isawaitable(connection):
            if inspect.iscoroutine(connection):
                connection.close()
            raise TypeError("connect returned an awaitable; declare the factory with `async def`")
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(self._query)
                row = cursor.fetchone()
            finally:
                cursor.close()
        finally:
            connection.close()
        return _plain_row(row)

    async def _async_query(self) -> Any:
        connection = await self._connect()
        try:
            if hasattr(connection, "fetchval"):  # asyncpg
                return _plain_row(await connection.fetchval(self._query))
            cursor = await _maybe_await(connection.cursor())
            try:
                await cursor.execute(self._query)
                row = await cursor.fetchone()
            finally:
                await _maybe_await(cursor.close())
            return _plain_row(row)
        finally:
            await _maybe_await(connection.close())


def _plain_row(row: Any) -> Any:
    if isinstance(row, (tuple, list)):
        return [_plain_row(v) for v in row]
    return row if isinstance(row, (int, float, str, bool, type(None))) else repr(row)


# --- cache --------------------------------------------------------------------


class CacheHealthCheck(HealthCheck):
    """Redis ``PING`` plus a ``SET``/``GET``/``DEL`` round trip of a random key.

    ``client`` is a redis-py client (``redis.Redis`` — run in a thread — or
    ``redis.asyncio.Redis``), or a callable (sync or async) returning one.  The
    key expires on its own after a minute should the ``DEL`` not arrive.
    Observed: ``ping_seconds``, ``round_trip_seconds``.
    """

    type = "cache"

    def __init__(self, client: Any, *, key_prefix: str = "amas-otel:health:") -> None:
        super().__init__()
        self._client = client
        self._key_prefix = key_prefix

    async def _resolve(self) -> Any:
        client = self._client
        if callable(client) and not hasattr(client, "ping"):
            client = await _maybe_await(client())
        return client

    async def probe(self, timeout: float) -> dict[str, Any]:
        client = await self._resolve()
        # redis.asyncio's command methods are plain functions returning awaitables;
        # its execute_command is the coroutine function they all go through.
        if _is_async_callable(getattr(client, "execute_command", client.ping)):
            return await self._async_round_trip(client)
        return await self._blocking(lambda: self._sync_round_trip(client))

    def _key_value(self) -> tuple[str, str]:
        token = uuid.uuid4().hex
        return f"{self._key_prefix}{token}", token

    def _sync_round_trip(self, client: Any) -> dict[str, Any]:
        key, value = self._key_value()
        started = time.perf_counter()
        client.ping()
        pinged = time.perf_counter()
        client.set(key, value, ex=60)
        got = client.get(key)
        client.delete(key)
        return self._verdict(value, got, pinged - started, time.perf_counter() - pinged)

    async def _async_round_trip(self, client: Any) -> dict[str, Any]:
        key, value = self._key_value()
        started = time.perf_counter()
        await client.ping()
        pinged = time.perf_counter()
        await client.set(key, value, ex=60)
        got = await client.get(key)
        await client.delete(key)
        return self._verdict(value, got, pinged - started, time.perf_counter() - pinged)

    @staticmethod
    def _verdict(sent: str, got: Any, ping: float, round_trip: float) -> dict[str, Any]:
        if isinstance(got, bytes):
            got = got.decode("utf-8", "replace")
        observed = {"ping_seconds": round(ping, 6), "round_trip_seconds": round(round_trip, 6)}
        if got != sent:
            return {"status": HealthStatus.UNHEALTHY, "message": "value read back differs from value written", **observed}
        return {"message": "PING and SET/GET round trip succeeded", **observed}


# --- external API -------------------------------------------------------------

_requests_instrumented = False


def _instrument_requests() -> None:
    """Make sure ``requests`` emits OTel client spans (once per process)."""
    global _requests_instrumented
    if _requests_instrumented:
        return
    _requests_instrumented = True
    try:
        from opentelemetry.instrumentation.requests import RequestsInstrumentor

        instrumentor = RequestsInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()
    except Exception:  # noqa: BLE001 - checks work without client spans
        pass


def safe_url(url: str) -> str:
    """``url`` without credentials, query or fragment: fit to show in health output."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class ExternalAPIHealthCheck(HealthCheck):
    """HTTP ``GET url`` through instrumented ``requests`` (in a thread); healthy on an expected status.

    ``expected_status`` is one code or several (default 200).  ``headers``
    (e.g. an API key) are sent but never shown.  Observed: ``status_code``,
    ``response_seconds`` and the URL without credentials or query.

    ``check`` (e.g. ``check_payment_api``), when given, judges a
    response that has an expected status: it is called with the
    ``requests.Response`` (body read) and answers like a
    :class:`ServiceHealthCheck` function — a dict with ``status``/``message``
    and observed values, a status string, ``False`` for unhealthy, ``None`` or
    ``True`` for healthy; raising is unhealthy.  Sync (run in the check's
    thread) or async.
    """

    type = "external_api"

    def __init__(
        self,
        url: str,
        check: Callable[[Any], Any] | None = None,
        *,
        expected_status: int | Iterable[int] = 200,
        headers: Mapping[str, str] | None = None,
        verify: bool = True,
    ) -> None:
        super().__init__()
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url: expected an http:// or https:// URL with a host, got {safe_url(url)!r}")
        if check is not None and not _takes_one_argument(check):
            raise TypeError(f"check: expected a function taking the HTTP response, e.g. def check(response): ..., got {check!r}")
        self._check = check
        self._url = url
        codes = (expected_status,) if isinstance(expected_status, int) else tuple(expected_status)
        if not codes or not all(isinstance(c, int) and 100 <= c <= 599 for c in codes):
            raise ValueError(f"expected_status: expected HTTP status codes (100-599), got {expected_status!r}")
        self._expected = frozenset(codes)
        self._headers = dict(headers or {})
        self._verify = verify
        self._session: Any = None

    async def probe(self, timeout: float) -> dict[str, Any]:
        check = self._check
        if check is None or not _is_async_callable(check):
            return await self._blocking(lambda: self._get(timeout))
        observed = await self._blocking(lambda: self._get(timeout, judge=False))
        response = observed.pop("response", None)
        return observed if response is None else _judged(observed, await check(response))

    def _get(self, timeout: float, judge: bool = True) -> dict[str, Any]:
        import requests

        _instrument_requests()
        if self._session is None:
            self._session = requests.Session()
        started = time.perf_counter()
        try:
            response = self._session.get(
                self._url, headers=self._headers, timeout=timeout, verify=self._verify, allow_redirects=False
            )
        except requests.Timeout:
            raise TimeoutError(f"no answer within {timeout:g}s") from None
        response.close()
        observed = {
            "url": safe_url(self._url),
            "status_code": response.status_code,
            "response_seconds": round(time.perf_counter() - started, 6),
        }
        if response.status_code not in self._expected:
            expected = ", ".join(map(str, sorted(self._expected)))
            return {"status": HealthStatus.UNHEALTHY, "message": f"HTTP {response.status_code}, expected {expected}", **observed}
        if self._check is None:
            return {"message": f"HTTP {response.status_code}", **observed}
        if not judge:  # an async check: probe() awaits it on the event loop
            return {**observed, "response": response}
        return _judged(observed, self._check(response))


def _takes_one_argument(func: Callable[..., Any]) -> bool:
    if not callable(func):
        return False
    try:
        inspect.signature(func).bind(None)
    except TypeError:
        return False
    except ValueError:  # no signature to read (some builtins): let the call decide
        return True
    return True


def _judged(observed: dict[str, Any], verdict: Any) -> dict[str, Any]:
    """``observed`` plus what a custom ``check`` said of the response (``status``, ``message``, its own values)."""
    judged = _interpret(verdict)
    judged.setdefault("message", f"HTTP {observed['status_code']}")
    return {**observed, **judged}


# --- file system, memory, disk -------------------------------------------------


class FileSystemHealthCheck(HealthCheck):
    """``path`` exists and is readable; optionally writable (a real temporary
    file is created and removed) and with at least ``min_free_bytes`` free.
    Runs in a thread, since a stale network mount can block.  Observed:
    ``free_bytes``, ``total_bytes``, ``is_directory``."""

    type = "file_system"

    def __init__(self, path: str | os.PathLike[str], *, writable: bool = False, min_free_bytes: int = 0) -> None:
        super().__init__()
        self._path = os.fspath(path)
        self._writable = writable
        self._min_free = min_free_bytes

    async def probe(self, timeout: float) -> dict[str, Any]:
        return await self._blocking(self._inspect)

    def _inspect(self) -> dict[str, Any]:
        path = self._path
        if not os.path.exists(path):
            return {"status": HealthStatus.UNHEALTHY, "message": f"{path} does not exist", "path": path}
        observed: dict[str, Any] = {"path": path, "is_directory": os.path.isdir(path)}
        if not os.access(path, os.R_OK):
            return {"status": HealthStatus.UNHEALTHY, "message": f"{path} is not readable", **observed}
        if self._writable:
            directory = path if observed["is_directory"] else os.path.dirname(path) or "."
            try:
                with tempfile.NamedTemporaryFile(dir=directory, prefix=".amas-health-") as handle:
                    handle.write(b"ok")
                    handle.flush()
            except OSError as exc:
                return {"status": HealthStatus.UNHEALTHY, "message": f"{path} is not writable: {exc.strerror or exc}", **observed}
        usage = shutil.disk_usage(path)
        observed |= {"free_bytes": usage.free, "total_bytes": usage.total}
        if usage.free < self._min_free:
            return {
                "status": HealthStatus.UNHEALTHY,
                "message": f"{usage.free} bytes free, below the minimum {self._min_free}",
                **observed,
            }
        return {"message": "accessible" + (" and writable" if self._writable else ""), **observed}


def _usage_verdict(what: str, percent: float, maximum: float, warn: float | None) -> dict[str, Any]:
    observed = {"usage_percent": round(percent, 2), "max_usage_percent": maximum}
    if percent > maximum:
        return {"status": HealthStatus.UNHEALTHY, "message": f"{what} usage {percent:.1f}% above {maximum}%", **observed}
    if warn is not None and percent > warn:
        observed["warn_usage_percent"] = warn
        return {"status": HealthStatus.DEGRADED, "message": f"{what} usage {percent:.1f}% above {warn}%", **observed}
    return {"message": f"{what} usage {percent:.1f}%", **observed}


def _check_percent(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 100:
        raise ValueError(f"{name}: expected a percentage in (0, 100], got {value!r}")
    return float(value)


class _UsageCheck(HealthCheck):
    def __init__(self, max_usage_percent: float, warn_usage_percent: float | None) -> None:
        super().__init__()
        self._max = _check_percent("max_usage_percent", max_usage_percent)
        self._warn = None if warn_usage_percent is None else _check_percent("warn_usage_percent", warn_usage_percent)
        if self._warn is not None and self._warn > self._max:
            raise ValueError(
                f"warn_usage_percent: {warn_usage_percent!r} must not exceed max_usage_percent {max_usage_percent!r}"
            )


class MemoryHealthCheck(_UsageCheck):
    """System memory in use (psutil): unhealthy above ``max_usage_percent``,
    degraded above ``warn_usage_percent`` when given.  Observed: usage and
    available bytes."""

    type = "memory"

    def __init__(self, max_usage_percent: float = 90.0, *, warn_usage_percent: float | None = None) -> None:
        super().__init__(max_usage_percent, warn_usage_percent)

    async def probe(self, timeout: float) -> dict[str, Any]:
        # Reading /proc/meminfo takes microseconds: no thread needed.
        memory = psutil.virtual_memory()
        return _usage_verdict("memory", memory.percent, self._max, self._warn) | {
            "available_bytes": memory.available,
            "total_bytes": memory.total,
        }


class DiskHealthCheck(_UsageCheck):
    """Disk space in use on the file system of ``path`` (psutil), thresholds as
    :class:`MemoryHealthCheck`.  Runs in a thread (a stale mount can block)."""

    type = "disk"

    def __init__(
        self, path: str | os.PathLike[str] = "/", max_usage_percent: float = 90.0, *, warn_usage_percent: float | None = None
    ) -> None:
        super().__init__(max_usage_percent, warn_usage_percent)
        self._path = os.fspath(path)

    async def probe(self, timeout: float) -> dict[str, Any]:
        usage = await self._blocking(lambda: psutil.disk_usage(self._path))
        return _usage_verdict("disk", usage.percent, self._max, self._warn) | {
            "path": self._path,
            "free_bytes": usage.free,
            "total_bytes": usage.total,
        }


# --- network ------------------------------------------------------------------


class NetworkHealthCheck(HealthCheck):
    """Resolve ``host`` (DNS) and, when ``port`` is given, open and close a TCP
    connection to it.  Observed: ``addresses``, ``resolve_seconds``,
    ``connect_seconds``."""

    type = "network"

    def __init__(self, host: str, port: int | None = None) -> None:
        super().__init__()
        if not isinstance(host, str) or not host:
            raise ValueError(f"host: expected a host name or address, got {host!r}")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
            raise ValueError(f"port: expected a TCP port 1-65535, got {port!r}")
        self._host, self._port = host, port

    async def probe(self, timeout: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        infos = await loop.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM)
        resolved = time.perf_counter()
        observed: dict[str, Any] = {
            "host": self._host,
            "addresses": sorted({info[4][0] for info in infos}),
            "resolve_seconds": round(resolved - started, 6),
        }
        if self._port is None:
            return {"message": f"{self._host} resolves", **observed}
        _, writer = await asyncio.open_connection(self._host, self._port)
        observed |= {"port": self._port, "connect_seconds": round(time.perf_counter() - resolved, 6)}
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass  # the connection was made; a reset on close says nothing about reachability
        return {"message": f"TCP connect to {self._host}:{self._port} succeeded", **observed}


# --- service ------------------------------------------------------------------


class ServiceHealthCheck(HealthCheck):
    """Call ``func`` (sync — in a thread — or async) and judge what it returns.

    - a dict: its ``"status"`` (default healthy) and ``"message"``; other keys
      are observed values (``{"status": "degraded", "queue": 812}``);
    - a :class:`HealthStatus` or status string: that status;
    - ``False``: unhealthy; ``None``/``True``: healthy; anything else: healthy,
      shown as ``result``;
    - raising: unhealthy, with the exception as the message.
    """

    type = "service"

    def __init__(self, func: Callable[[], Any] | Callable[[], Awaitable[Any]]) -> None:
        super().__init__()
        if not callable(func):
            raise TypeError(f"check: expected a callable or a HealthCheck, got {func!r}")
        self._func = func

    async def probe(self, timeout: float) -> dict[str, Any]:
        if _is_async_callable(self._func):
            result = await self._func()
        else:
            result = await _maybe_await(await self._blocking(self._func))
        return _interpret(result)


def _interpret(result: Any) -> dict[str, Any]:
    if isinstance(result, Mapping):
        return dict(result)
    if isinstance(result, HealthStatus) or isinstance(result, str):
        return {"status": result}
    if result is False:
        return {"status": HealthStatus.UNHEALTHY, "message": "check returned False"}
    if result is None or result is True:
        return {}
    return {"result": result}
