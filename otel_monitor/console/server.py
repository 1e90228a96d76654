"""The console's HTTP server settings: slow or idle clients cannot hold it.

uvicorn's HTTP/1.1 protocol waits for a request's headers and body as long
as the client likes, and every waiting connection holds a file descriptor:
a few thousand clients dribbling a byte now and then would keep OTLP ingest
out for everyone.  :class:`ReadDeadlineProtocol` (uvicorn's h11 protocol,
wrapped) gives each request :data:`READ_TIMEOUT_S` seconds from its first
byte, or from the end of the previous answer, to arrive whole, headers and
body; and above :data:`MAX_CONNECTIONS` open connections a new one closes
the connection that has waited longest for its request.  A connection whose
request is being answered is never closed.  uvicorn's own keep-alive timeout
closes idle connections sooner, and the size of an incomplete header block is
bounded (``h11_max_incomplete_event_size``).
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

READ_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 1024
MAX_HEADER_BYTES = 64 * 1024
KEEP_ALIVE_S = 5


class ReadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on reading each request and a cap on open connections."""

    _deadline: Any = None
    waiting_since = 0.0

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._start_reading()
        if len(self.connections) > MAX_CONNECTIONS:
            self._close_longest_waiting()

    def _start_reading(self) -> None:
        self.waiting_since = self.loop.time()
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(READ_TIMEOUT_S, self._read_expired)

    def reading(self) -> bool:
        """Still waiting for the client: no request yet, the last one answered, or its body incomplete."""
        cycle = self.cycle
        return cycle is None or cycle.response_complete or bool(getattr(cycle, "more_body", False))

    def _read_expired(self) -> None:
        self._deadline = None
        if self.reading() and not self.transport.is_closing():
            self.transport.close()

    def _close_longest_waiting(self) -> None:
        waiting = [
            c
            for c in self.connections
            if isinstance(c, ReadDeadlineProtocol) and c is not self and c.reading() and not c.transport.is_closing()
        ]
        if waiting:
            min(waiting, key=lambda c: c.waiting_since).transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._start_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().connection_lost(exc)


def server_options() -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config``."""
    return {
        "http": ReadDeadlineProtocol,
        "timeout_keep_alive": KEEP_ALIVE_S,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
    }
