"""OTLP/gRPC for the console: the trace, metrics and logs services on their own port (4317 by default).

grpcio serves the three ``Export`` methods through generic handlers on the
raw request bytes (no generated stubs), in a thread pool of its own beside
uvicorn.  Every request takes the same path as an OTLP/HTTP one
(:meth:`otel_monitor.console.app.Console.receive`): the same decoder,
validation, store and ``--db`` log.  Answers follow the OTLP specification:

* ``INVALID_ARGUMENT`` for a body that does not decode (not retried);
* ``UNAUTHENTICATED`` without the console's token, sent as metadata
  ``authorization: Bearer <token>`` (compared in constant time);
* ``RESOURCE_EXHAUSTED`` for a message over the body limit, compressed or
  inflated (grpcio checks both against ``grpc.max_receive_message_length``);
* success with ``partial_success`` saying how many items were refused and why.

gzip-compressed requests (``grpc-encoding: gzip``) are inflated by grpcio.
"""

from __future__ import annotations

import hmac
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

try:
    import grpc
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(f'OTLP/gRPC in the console needs its extra: pip install "otel-monitor[console]" ({exc})') from exc

from otel_monitor.otlp.decode import OTLPDecodeError

if TYPE_CHECKING:
    from otel_monitor.console.app import Console

_log = logging.getLogger("otel_monitor.console")

DEFAULT_GRPC_PORT = 4317  # the OTLP/gRPC default
SERVICES = {
    "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
    "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
    "logs": "opentelemetry.proto.collector.logs.v1.LogsService",
}
# Ingest holds the store's lock: more threads would only wait for it.
WORKERS = 4
# Requests beyond the workers wait in grpcio's queue up to this many, then get RESOURCE_EXHAUSTED.
MAX_CONCURRENT_RPCS = 64


class GrpcStartError(RuntimeError):
    """The gRPC port could not be opened; the message says which and why."""


def _bearer(metadata: Any) -> bytes | None:
    for key, value in metadata or ():
        if key == "authorization":
            raw = value.encode("latin-1") if isinstance(value, str) else value
            return raw[7:].strip() if raw[:7].lower() == b"bearer " else None
    return None


class GrpcReceiver:
    """The console's OTLP/gRPC server: :meth:`start`, then :meth:`stop` with the console."""

    def __init__(self, console: Console, host: str, port: int, workers: int = WORKERS) -> None:
        self.console = console
        self._token = console.token.encode() if console.token else None
        limit = console.max_body
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="otel-monitor-console-grpc")
        handlers = [
            grpc.method_handlers_generic_handler(
                service, {"Export": grpc.unary_unary_rpc_method_handler(self._export_handler(signal))}
            )
            for signal, service in SERVICES.items()
        ]
        self._server = grpc.server(
            self._pool,
            handlers=handlers,
            maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                # One console per port: never share it with another process by accident.
                ("grpc.so_reuseport", 0),
            ],
        )
        address = f"[{host.strip('[]')}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            self.port = self._server.add_insecure_port(address)
        except RuntimeError as exc:
            self._pool.shutdown(wait=False)
            raise GrpcStartError(f"cannot listen for OTLP/gRPC on {address}: {exc}") from None
        if not self.port:  # older grpcio answers 0 instead of raising
            self._pool.shutdown(wait=False)
            raise GrpcStartError(f"cannot listen for OTLP/gRPC on {address} (in use?)")
        self.host = host

    def start(self) -> None:
        self._server.start()

    def stop(self, grace: float = 2.0) -> None:
        """Refuse new calls, let running ones finish for ``grace`` seconds, then free the port and threads."""
        self._server.stop(grace).wait(grace + 1.0)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _export_handler(self, signal: str) -> Any:
        console = self.console

        def export(body: bytes, context: grpc.ServicerContext) -> bytes:
            if self._token is not None:
                supplied = _bearer(context.invocation_metadata())
                if supplied is None or not hmac.compare_digest(supplied, self._token):
                    context.abort(
                        grpc.StatusCode.UNAUTHENTICATED,
                        "missing or wrong token: send metadata 'authorization: Bearer <token>' "
                        "(OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20<token>)",
                    )
            try:
                outcome = console.receive(signal, body, "application/x-protobuf", None)
            except OTLPDecodeError as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            return outcome.response().SerializeToString()

        return export


__all__ = ["DEFAULT_GRPC_PORT", "SERVICES", "GrpcReceiver", "GrpcStartError"]
