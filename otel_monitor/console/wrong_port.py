"""A gRPC client on the OTLP/HTTP port gets an answer it can show, not a dropped connection.

uvicorn speaks HTTP/1.1 only: an OTLP/gRPC exporter pointed at 4318 opens
with the HTTP/2 preface (``PRI * HTTP/2.0``), h11 rejects it ("Invalid HTTP
request received.") and the exporter reports UNAVAILABLE with nothing to go
on.  :class:`GrpcAwareProtocol` recognises the preface and answers each call
over HTTP/2 (with the ``h2`` library) as gRPC does: a trailers-only response,
``grpc-status`` UNIMPLEMENTED and a ``grpc-message`` naming the gRPC port;
then it closes the connection with GOAWAY.  The console logs one line saying
where gRPC is (:func:`otel_monitor.console.app.grpc_hint`).
"""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.events

from otel_monitor.console.server import ReadDeadlineProtocol

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_UNIMPLEMENTED = "12"


class GrpcAwareProtocol(ReadDeadlineProtocol):
    """uvicorn's HTTP/1.1 protocol (with the console's limits) that answers HTTP/2 gRPC calls with a hint."""

    _sniffed = b""
    _h2: h2.connection.H2Connection | None = None
    _decided = False
    console: Any = None  # set by protocol_for

    def data_received(self, data: bytes) -> None:
        if self._h2 is not None:
            self._h2_received(data)
            return
        if self._decided:
            super().data_received(data)
            return
        seen = self._sniffed + data
        if len(seen) < len(PREFACE) and PREFACE.startswith(seen):
            self._sniffed = seen  # the preface split over reads: wait for the rest
            return
        self._decided, self._sniffed = True, b""
        if seen.startswith(PREFACE):
            self._h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
            self._h2.initiate_connection()
            self._h2_received(seen)
        else:
            super().data_received(seen)

    def _h2_received(self, data: bytes) -> None:
        conn = self._h2
        assert conn is not None
        try:
            events = conn.receive_data(data)
        except Exception:  # noqa: BLE001 - a broken HTTP/2 client: drop it, the console serves on
            self.transport.close()
            return
        answered = False
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                conn.send_headers(
                    event.stream_id,
                    [
                        (":status", "200"),
                        ("content-type", "application/grpc"),
                        ("grpc-status", _UNIMPLEMENTED),
                        ("grpc-message", _grpc_message(self._hint())),
                    ],
                    end_stream=True,
                )
                answered = True
        if answered:
            conn.close_connection()
        out = conn.data_to_send()
        if out:
            self.transport.write(out)
        if answered:
            self.transport.close()

    def _hint(self) -> str:
        from otel_monitor.console.app import grpc_hint

        if self.console is None:
            return "this is an OTLP/HTTP port: send OTLP/gRPC to port 4317"
        return grpc_hint(self.console)


def protocol_for(console: Any) -> type[GrpcAwareProtocol]:
    """The protocol class uvicorn serves ``console`` with (uvicorn builds one instance per connection)."""
    return type("ConsoleHTTPProtocol", (GrpcAwareProtocol,), {"console": console})


def _grpc_message(text: str) -> str:
    """``grpc-message`` is percent-encoded outside printable ASCII (and ``%`` itself)."""
    return "".join(ch if " " <= ch <= "~" and ch != "%" else "".join(f"%{b:02X}" for b in ch.encode()) for ch in text)


__all__ = ["PREFACE", "GrpcAwareProtocol", "protocol_for"]
