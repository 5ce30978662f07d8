"""Outgoing HTTP through a circuit breaker, for ``requests``.

>>> session = breaker_session("payments_api", "https://pay.example.com/")
>>> session.get("https://pay.example.com/v1/charges")   # through breaker "payments_api"
>>> session.get("https://other.example.com/")           # not through it

Requests to URLs under the given prefixes go through the named breaker (from
the circuit breaker service).  Connection errors, timeouts and responses whose
status ``is_failure`` accepts (default: 5xx) count as failures; 5xx responses
are still returned to the caller.  When the caller gives no ``timeout=``, the
breaker's timeout is passed to requests, so a hanging dependency is actually
cut off rather than only measured.  A rejected request raises
:class:`BreakerOpenError`, which is both a
:class:`~amas_otel.breaker.CircuitBreakerOpenException` and a
``requests.ConnectionError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from amas_otel.breaker import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerOpenException,
    CircuitBreakerService,
    get_circuit_breaker_service,
)

__all__ = ["BreakerAdapter", "BreakerOpenError", "breaker_session"]


class BreakerOpenError(CircuitBreakerOpenException, requests.ConnectionError):
    """The breaker rejected the request before it was sent."""


class _FailedResponse(Exception):
    def __init__(self, response: requests.Response) -> None:
        self.response = response


def _server_error(status: int) -> bool:
    return status >= 500


class BreakerAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose ``send`` goes through ``breaker``."""

    def __init__(
        self,
        breaker: CircuitBreaker,
        *,
        is_failure: Callable[[int], bool] = _server_error,
        **adapter_kwargs: Any,
    ) -> None:
        super().__init__(**adapter_kwargs)
        self.breaker = breaker
        self.is_failure = is_failure

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.breaker.config.timeout
        try:
            return self.breaker.call(self._send, request, kwargs)
        except _FailedResponse as failed:
            return failed.response
        except CircuitBreakerOpenException as exc:
            raise BreakerOpenError(exc.breaker_name, exc.retry_after) from None

    def _send(self, request: requests.PreparedRequest, kwargs: dict[str, Any]) -> requests.Response:
        response = super().send(request, **kwargs)
        if self.is_failure(response.status_code):
            raise _FailedResponse(response)
        return response


def breaker_session(
    dependency: str,
    prefixes: str | Iterable[str],
    *,
    config: CircuitBreakerConfig | None = None,
    service: CircuitBreakerService | None = None,
    session: requests.Session | None = None,
    is_failure: Callable[[int], bool] = _server_error,
) -> requests.Session:
    """A session (new, or ``session``) whose requests to ``prefixes`` go through breaker ``dependency``."""
    breaker = (service or get_circuit_breaker_service()).create_breaker(dependency, config)
    session = session or requests.Session()
    adapter = BreakerAdapter(breaker, is_failure=is_failure)
    for prefix in [prefixes] if isinstance(prefixes, str) else prefixes:
        session.mount(prefix, adapter)
    return session
