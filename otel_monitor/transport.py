"""An OTLP/HTTP transport on the standard library's ``http.client``.

The SDK's HTTP client sends each export through a pluggable transport
(``opentelemetry.exporter.http.transport``); its own are ``requests`` and
urllib3. Importing urllib3 costs a process about 20 ms at start (its URL
parser's regular expressions, its TLS helpers, its connection pools); an
export is one POST on a kept-alive connection, which ``http.client`` does
alone. This transport keeps idle connections per scheme, host and port,
verifies TLS as urllib3 does with the same certificate settings, and reports
the failures the SDK's client retries (refused, reset or closed connections,
a peer that does not speak HTTP, a name that does not resolve, a connect
timeout) as connection errors.
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.exporter.http.transport._base import BaseHTTPResult, BaseHTTPTransport

from .guard import renew_after_fork


class ConnectFailed(ConnectionError):
    """The connection could not be opened (refused, unresolvable, timed out); the request was not sent."""


@dataclass(frozen=True, slots=True)
class HTTPClientResult(BaseHTTPResult):
    body: bytes = field(default=b"", compare=False)
    response_headers: Any = field(default=None, compare=False)  # http.client.HTTPMessage: case-insensitive

    def content(self) -> bytes:
        return self.body

    def headers(self) -> Mapping[str, str]:
        return self.response_headers if self.response_headers is not None else {}


class HTTPClientTransport(BaseHTTPTransport):
    """``verify``/``cert`` as the SDK's transports take them: a CA file or a bool, a certificate (and key)."""

    _MAX_IDLE = 4  # per origin: exports of one exporter run one at a time, a force_flush may add one

    def __init__(self, *, verify: bool | str = True, cert: str | tuple[str, str] | None = None,
                 **kwargs: Any) -> None:
        self.verify = verify
        self.cert = cert
        self._ssl_context: Any = None
        self._idle: dict[tuple[str, str, int], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock")

    def _context(self) -> Any:
        if self._ssl_context is None:
            import ssl

            context = ssl.create_default_context(cafile=self.verify if isinstance(self.verify, str) else None)
            if self.verify is False:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if isinstance(self.cert, tuple):
                context.load_cert_chain(self.cert[0], self.cert[1])
            elif self.cert:
                context.load_cert_chain(self.cert)
            self._ssl_context = context
        return self._ssl_context

    def _connection(self, origin: tuple[str, str, int], timeout: float | None) -> http.client.HTTPConnection:
        with self._lock:
            idle = self._idle.get(origin)
            if idle:
                connection = idle.pop()
                connection.timeout = timeout
                if connection.sock is not None:
                    connection.sock.settimeout(timeout)
                return connection
        scheme, host, port = origin
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=self._context())
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            connection.connect()
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise ConnectFailed(f"{type(error).__name__}: {error}") from error
        return connection

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                timeout: float | None = None, data: bytes | None = None) -> BaseHTTPResult:
        try:
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
            if scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"cannot send to {url!r}: not an http or https URL")
            origin = (scheme, parts.hostname, parts.port or (443 if scheme == "https" else 80))
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection = self._connection(origin, timeout)
        except Exception as error:  # noqa: BLE001 - reported to the SDK's client as a result, as urllib3's
            return HTTPClientResult(error=error)
        try:
            connection.request(method, target, body=data, headers=headers or {})
            response = connection.getresponse()
            body = response.read()
        except Exception as error:  # noqa: BLE001
            connection.close()
            return HTTPClientResult(error=error)
        if response.will_close:
            connection.close()
        else:
            with self._lock:
                idle = self._idle.setdefault(origin, [])
                if len(idle) < self._MAX_IDLE:
                    idle.append(connection)
                    connection = None  # type: ignore[assignment]
            if connection is not None:
                connection.close()
        return HTTPClientResult(status_code=response.status, reason=response.reason, body=body,
                                response_headers=response.headers)

    def is_connection_error(self, exception: Exception | None) -> bool:
        """Failures the SDK's client retries: the connection, not the answer or a read timeout."""
        if isinstance(exception, (ConnectionError, http.client.HTTPException, socket.gaierror)):
            return True
        return False

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def forget_inherited_connections(self) -> None:
        """After fork, in the child: drop the parent's connections without taking the lock it may have held.

        Closing the child's copy of a socket sends nothing to the peer, so the
        parent's connection lives on.
        """
        idle, self._idle = self._idle, {}
        self._lock = threading.Lock()
        for connections in idle.values():
            for connection in connections:
                if connection.sock is not None:
                    connection.sock.close()
