"""Where an HTTP request came from, as the HTTP server semantic conventions read it.

* the request method against the *known* methods: ``_OTHER`` for any other,
  with the original kept for ``http.request.method_original``;
  ``OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS`` replaces the default list;
* ``url.scheme``, ``server.address`` / ``server.port`` and ``client.address``:
  from ``Forwarded`` (RFC 7239), else ``X-Forwarded-For`` / ``-Proto`` /
  ``-Host``, only when the connection's peer is a trusted proxy (the networks
  of ``RATE_LIMIT_TRUSTED_PROXIES``, the rate limiter's setting: one answer
  to "who is the client" for both); otherwise the ``Host`` header and the
  socket.  A forwarding header from any other peer is ignored: anyone can send one.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from amas_otel.semconv import KNOWN_HTTP_METHODS

__all__ = [
    "RequestOrigin",
    "client_address",
    "is_trusted",
    "known_http_methods",
    "normalise_method",
    "proxy_networks",
    "request_origin",
]


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

Networks = tuple[Any, ...]


def known_http_methods() -> frozenset[str]:
    """The known methods in effect: ``OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS`` (a full override), else the default."""
    from amas_otel.config import get_settings

    configured = get_settings().otel.http_known_methods
    return KNOWN_HTTP_METHODS if configured is None else frozenset(configured)


def normalise_method(method: str, known: frozenset[str]) -> tuple[str, str | None]:
    """``(http.request.method, http.request.method_original or None)``: case-sensitive, as the convention says."""
    return (method, None) if method in known else ("_OTHER", method)


def proxy_networks(trusted: Iterable[str]) -> Networks:
    """The networks of ``trusted`` (addresses or CIDR networks); a clear error naming a bad entry."""
    networks = []
    for entry in trusted:
        try:
            networks.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"trusted_proxies entry {entry!r} is not an IP address or network (e.g. 10.0.0.1, 10.0.0.0/8)"
            ) from None
    return tuple(networks)


def is_trusted(address: str, networks: Networks) -> bool:
    """True when ``address`` is an IP address inside one of ``networks``."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


class RequestOrigin(NamedTuple):
    """``url.scheme``, ``server.address``, ``server.port`` and ``client.address`` of one request (None: unknown)."""

    scheme: str
    server_address: str | None
    server_port: int | None
    client_address: str | None


def _peer(scope: Mapping[str, Any]) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


def _headers(scope: Mapping[str, Any]) -> dict[str, str]:
    """The request's headers by lower-case name, repeated lines joined with commas (RFC 9110 5.3)."""
    joined: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        joined[name] = value if name not in joined else f"{joined[name]},{value}"
    return joined


def _list(value: str | None) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()] if value else []


def _node(value: str) -> str:
    """The address of a ``Forwarded`` / ``X-Forwarded-For`` node: ``"[2001:db8::1]:4711"`` → ``2001:db8::1``."""
    value = value.strip().strip('"')
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value[1:]
    host, sep, port = value.rpartition(":")
    return host if sep and port.isdigit() and ":" not in host else value


@functools.lru_cache(maxsize=256)  # a service sees a handful of Host values: parsed once each
def _host_port(value: str | None) -> tuple[str | None, int | None]:
    """``Host`` / ``X-Forwarded-Host`` / ``Forwarded host=``: ``"example.com:8443"`` → ``("example.com", 8443)``."""
    if not value:
        return None, None
    value = value.strip().strip('"')
    if value.startswith("["):
        end = value.find("]")
        host, rest = (value[1:end], value[end + 1 :]) if end > 0 else (value[1:], "")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, sep, port_text = value.partition(":")
        if not sep:
            port_text = ""
    port = int(port_text) if port_text.isdigit() and 0 < int(port_text) < 65536 else None
    return (host or None), port


def _forwarded(value: str) -> list[dict[str, str]]:
    """RFC 7239 ``Forwarded`` elements, nearest-to-client first, each ``{parameter (lower case): value}``."""
    elements = []
    for element in value.split(","):
        pairs: dict[str, str] = {}
        for pair in element.split(";"):
            name, sep, raw = pair.partition("=")
            if sep:
                pairs[name.strip().lower()] = raw.strip().strip('"')
        elements.append(pairs)
    return elements


def _scheme(value: str | None) -> str | None:
    value = (value or "").strip().lower()
    return value if value in _DEFAULT_PORTS else None


def _client_hop(hops: list[str], networks: Networks) -> int | None:
    """Index of the client among ``hops`` (forwarded-for addresses): the nearest one that is not a trusted proxy."""
    for index in range(len(hops) - 1, -1, -1):
        if not is_trusted(hops[index], networks):
            return index
    return 0 if hops else None


def request_origin(
    scope: Mapping[str, Any], networks: Networks = (), headers: Mapping[str, str] | None = None
) -> RequestOrigin:
    """The request's :class:`RequestOrigin`.

    ``headers``: the request's headers by lower-case name, when the caller has
    them already (else read from ``scope``).  Forwarding headers count only when
    the peer is in ``networks``; the hop the client is found at (walking from the
    nearest proxy, past trusted ones) is the hop whose scheme and host are used.
    """
    peer = _peer(scope)
    scheme = scope.get("scheme") or "http"
    if headers is None:
        headers = _headers(scope)
    host = headers.get("host")
    client = peer
    if networks and peer is not None and is_trusted(peer, networks):
        forwarded = headers.get("forwarded")
        if forwarded:
            elements = _forwarded(forwarded)
            index = _client_hop([_node(e.get("for", "")) for e in elements], networks)
            if index is not None:
                chosen = elements[index]
                client = _node(chosen["for"]) if chosen.get("for") else peer
                scheme = _scheme(chosen.get("proto")) or scheme
                host = chosen.get("host") or host
        else:
            hops = [_node(hop) for hop in _list(headers.get("x-forwarded-for"))]
            index = _client_hop(hops, networks)
            if index is not None:
                client = hops[index]
            behind = len(hops) - 1 - index if index is not None else 0  # trusted hops between client and us
            protos, hosts = _list(headers.get("x-forwarded-proto")), _list(headers.get("x-forwarded-host"))
            if protos:
                scheme = _scheme(protos[max(len(protos) - 1 - behind, 0)]) or scheme
            if hosts:
                host = hosts[max(len(hosts) - 1 - behind, 0)]
    address, port = _host_port(host)
    if address is None:  # no Host header (HTTP/1.0): the socket the server listens on
        server = scope.get("server")
        if server:
            address, port = server[0], server[1]
    elif port is None:
        port = _DEFAULT_PORTS.get(scheme)
    return RequestOrigin(scheme, address, port, client)


def client_address(scope: Mapping[str, Any], networks: Networks = ()) -> str | None:
    """The client's address: :attr:`RequestOrigin.client_address` of :func:`request_origin`."""
    return request_origin(scope, networks).client_address
