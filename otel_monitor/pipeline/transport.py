"""An OTLP/HTTP transport on the standard library's ``http.client``.

The SDK's HTTP client sends each export through a pluggable transport
(``opentelemetry.exporter.http.transport``); its own are ``requests`` and
urllib3. Importing urllib3 costs a process about 20 ms at start (its URL
parser's regular expressions, its TLS helpers, its connection pools); an
export is one POST on a kept-alive connection, which ``http.client`` does
alone. This transport keeps idle connections per scheme, host and port
(checked before reuse, as urllib3 does), verifies TLS with the same
certificate settings (read again for each new connection, so rotated
certificates are picked up), and reports the failures the SDK's client
retries as connection errors.
"""

from __future__ import annotations

import http.client
import select
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.exporter.http.transport._base import BaseHTTPResult, BaseHTTPTransport

from otel_monitor.guard import renew_after_fork


class ConnectFailed(ConnectionError):
    """The connection could not be opened (refused, unresolvable, timed out, TLS refused); nothing was sent."""


class ConnectionLost(ConnectionError):
    """The connection failed while the request was sent or its answer read (reset, closed, not HTTP)."""


@dataclass(frozen=True, slots=True)
class HTTPClientResult(BaseHTTPResult):
    body: bytes = field(default=b"", compare=False)
    response_headers: Any = field(default=None, compare=False)  # http.client.HTTPMessage: case-insensitive

    def content(self) -> bytes:
        return self.body

    def headers(self) -> Mapping[str, str]:
        return self.response_headers if self.response_headers is not None else {}


def _still_open(connection: http.client.HTTPConnection) -> bool:
    """An idle connection the peer has not closed: nothing to read on it yet (as urllib3 checks before reuse)."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


class HTTPClientTransport(BaseHTTPTransport):
    """``verify``/``cert`` as the SDK's transports take them: a CA file or a bool, a certificate (and key).

    Failures are told apart as the SDK's default transport (``requests``)
    tells them: not reaching the receiver, or losing the connection before an
    answer, is a connection error, which the SDK's client retries; a receiver
    that does not answer in time is not. A receiver that answers (say 413)
    and closes before it has read the whole request is read, not retried.
    """

    _MAX_IDLE = 4  # per origin: exports of one exporter run one at a time, a force_flush may add one

    def __init__(self, *, verify: bool | str = True, cert: str | tuple[str, str] | None = None, **kwargs: Any) -> None:
        self.verify = verify
        self.cert = cert
        self._idle: dict[tuple[str, str, int], list[http.client.HTTPConnection]] = {}
        self._generation = 0  # bumped by close(): connections out at that moment are not kept after
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock")

    def _context(self) -> Any:
        """A TLS context for a new connection; built each time, so rotated certificates and CA files are read."""
        import ssl

        context = ssl.create_default_context(cafile=self.verify if isinstance(self.verify, str) else None)
        if self.verify is False:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if isinstance(self.cert, tuple):
            context.load_cert_chain(self.cert[0], self.cert[1])
        elif self.cert:
            context.load_cert_chain(self.cert)
        return context

    def _connection(self, origin: tuple[str, str, int], timeout: float | None) -> http.client.HTTPConnection:
        with self._lock:
            idle = self._idle.get(origin)
            while idle:
                connection = idle.pop()
                if _still_open(connection):
                    connection.timeout = timeout
                    connection.sock.settimeout(timeout)
                    return connection
                connection.close()
        scheme, host, port = origin
        try:
            if scheme == "https":
                connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=self._context())
            else:
                connection = http.client.HTTPConnection(host, port, timeout=timeout)
            connection.connect()
        except (OSError, http.client.HTTPException) as error:  # ssl.SSLError is an OSError
            raise ConnectFailed(f"{type(error).__name__}: {error}") from error
        return connection

    def _exchange(
        self,
        connection: http.client.HTTPConnection,
        method: str,
        target: str,
        headers: dict[str, str],
        data: bytes | None,
    ) -> tuple[http.client.HTTPResponse, bytes]:
        try:
            connection.request(method, target, body=data, headers=headers)
        except (BrokenPipeError, ConnectionResetError) as error:
            # The receiver may have answered and closed before reading everything (413, 401): read that answer.
            try:
                response = connection.getresponse()
                return response, response.read()
            except Exception:  # noqa: BLE001 - no answer: the send's failure is the one to report
                raise error from None
        response = connection.getresponse()
        return response, response.read()

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        data: bytes | None = None,
    ) -> BaseHTTPResult:
        try:
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
            if scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"cannot send to {url!r}: not an http or https URL")
            origin = (scheme, parts.hostname, parts.port or (443 if scheme == "https" else 80))
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            generation = self._generation
            connection = self._connection(origin, timeout)
        except Exception as error:  # noqa: BLE001 - reported to the SDK's client as a result, as its transports do
            return HTTPClientResult(error=error)
        try:
            response, body = self._exchange(connection, method, target, headers or {}, data)
        except TimeoutError as error:  # no answer in time: not a connection error, not retried
            connection.close()
            return HTTPClientResult(error=error)
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            lost = ConnectionLost(f"{type(error).__name__}: {error}")
            lost.__cause__ = error
            return HTTPClientResult(error=lost)
        except Exception as error:  # noqa: BLE001
            connection.close()
            return HTTPClientResult(error=error)
        kept = False
        if not response.will_close:
            with self._lock:
                idle = self._idle.setdefault(origin, [])
                if generation == self._generation and len(idle) < self._MAX_IDLE:
                    idle.append(connection)
                    kept = True
        if not kept:
            connection.close()
        return HTTPClientResult(
            status_code=response.status, reason=response.reason, body=body, response_headers=response.headers
        )

    def is_connection_error(self, exception: Exception | None) -> bool:
        """What the SDK's client retries: the receiver not reached, or the connection lost before an answer."""
        return isinstance(exception, ConnectionError)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
            self._generation += 1
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
        self._generation += 1
        for connections in idle.values():
            for connection in connections:
                if connection.sock is not None:
                    connection.sock.close()
